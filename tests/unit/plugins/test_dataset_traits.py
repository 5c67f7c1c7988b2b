"""Dataset traits (class distribution, token lengths, lexical, linguistic, quality) on fixtures whose
answers are computed by hand here, independently of the plugins' code."""

from __future__ import annotations

import collections
import csv
import math

import pytest

from harness.api.tasks import Example, GeneratedTask, classification_example
from harness.api.traits import SourceData
from harness_plugins.traits.class_distribution import ClassDistribution
from harness_plugins.traits.completion_length import CompletionLength
from harness_plugins.traits.lexical import Lexical
from harness_plugins.traits.linguistic import Linguistic, sentences, syllables
from harness_plugins.traits.quality import Quality
from helpers import SHARED_DATA


class ThreeWay(GeneratedTask):
    name = "three_way"
    kind = "multiple_choice"
    labels = ("a", "b", "c")


class Gen(GeneratedTask):
    name = "gen"
    kind = "generation"


def make(examples: list[Example], task=None, tokenizer=None, model=None) -> SourceData:
    source = SourceData("s", task or ThreeWay(), examples, tokenizer)
    source.model = model  # a field of SourceData; set as an attribute so this works either way
    return source


def labelled(labels: list[int]) -> SourceData:
    return make([classification_example(f"p{i}", ThreeWay.labels, y) for i, y in enumerate(labels)])


class WhitespaceTokenizer:
    """Tokens are whitespace-separated words: lengths known by eye."""

    def __call__(self, texts, add_special_tokens=True):
        assert add_special_tokens is False
        if isinstance(texts, str):
            return {"input_ids": list(range(len(texts.split())))}
        return {"input_ids": [list(range(len(t.split()))) for t in texts]}


def assert_well_formed(trait, out):
    assert tuple(out) == trait.outputs
    assert all(v is None or (isinstance(v, float) and math.isfinite(v)) for v in out.values()), out


# --- class distribution -------------------------------------------------------------------------

def test_class_distribution_of_a_known_distribution():
    trait = ClassDistribution()
    out = trait.compute(labelled([0, 0, 1, 2]))  # shares 1/2, 1/4, 1/4
    assert_well_formed(trait, out)
    assert out["class_entropy"] == pytest.approx(1.5)  # 1/2*1 + 2 * 1/4*2 bits
    assert out["class_entropy_normalised"] == pytest.approx(1.5 / math.log2(3))
    assert out["majority_share"] == pytest.approx(0.5)
    assert out["class_count"] == 3
    assert out["imbalance_ratio"] == pytest.approx(2.0)  # 2 / 1


def test_imbalance_ratio_ignores_absent_classes():
    out = ClassDistribution().compute(labelled([0, 0, 0, 1]))  # class 2 never occurs
    assert out["imbalance_ratio"] == pytest.approx(3.0)
    assert out["class_count"] == 2
    assert ClassDistribution().compute(labelled([2, 2]))["imbalance_ratio"] == 1.0


def test_class_traits_of_generation_are_none():
    out = ClassDistribution().compute(make([Example("2+2=", " 4\n", answer="4")], Gen()))
    assert set(out) == set(ClassDistribution.outputs) and set(out.values()) == {None}


def test_class_distribution_of_sst2_matches_an_independent_count():
    path = SHARED_DATA / "sst2" / "train.tsv"
    if not path.is_file():
        pytest.skip(f"{path} is absent: the shared SST-2 data is not on this machine")
    from harness_plugins.tasks.sst2 import SST2

    with open(path, newline="", encoding="utf-8") as fh:
        counts = collections.Counter(row["label"] for row in csv.DictReader(fh, delimiter="\t"))
    n = sum(counts.values())
    assert n == 3000
    task = SST2(data_files={"train": str(path)})
    out = ClassDistribution().compute(SourceData("sst2", task, task.examples("train", n)))
    shares = [c / n for c in counts.values()]
    assert out["class_entropy"] == pytest.approx(-sum(p * math.log2(p) for p in shares))
    assert out["class_entropy_normalised"] == pytest.approx(out["class_entropy"])  # log2(2) = 1
    assert out["majority_share"] == pytest.approx(max(counts.values()) / n)
    assert out["class_count"] == len(counts) == 2
    assert out["imbalance_ratio"] == pytest.approx(max(counts.values()) / min(counts.values()))


# --- token lengths -------------------------------------------------------------------------------

def test_length_median_and_nearest_rank_p90_on_known_lengths():
    # completions of 1..10 words; prompts of 1 word nine times and 20 words once
    examples = [Example(" ".join(["w"] * (20 if i == 10 else 1)), " " + " ".join(["x"] * i)) for i in range(1, 11)]
    trait = CompletionLength()
    out = trait.compute(make(examples, tokenizer=WhitespaceTokenizer()))
    assert_well_formed(trait, out)
    assert out["completion_tokens_mean"] == pytest.approx(5.5)
    assert out["completion_tokens_median"] == 5.5  # (5 + 6) / 2
    assert out["completion_tokens_p90"] == 9  # ceil(0.9 * 10) = 9th smallest, no interpolation
    assert out["prompt_tokens_mean"] == pytest.approx(2.9)  # (9 + 20) / 10
    assert out["prompt_tokens_median"] == 1
    assert out["prompt_tokens_p90"] == 1  # the 9th smallest of nine 1s and a 20
    five = trait.compute(make(examples[:5], tokenizer=WhitespaceTokenizer()))
    assert five["completion_tokens_p90"] == 5  # ceil(4.5) = 5th of 1..5


def test_token_lengths_with_the_real_tokenizer(real_tokenizer_dir):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(real_tokenizer_dir)
    examples = [Example("Review: fine\nSentiment:", " positive"),
                Example("x", " negative and more words"),
                Example("What is 12 + 30?", " 42\n", answer="42"),
                Example("Translate: le chat noir est sur la table", " The black cat is on the table.")]
    count = lambda text: len(tok(text, add_special_tokens=False)["input_ids"])  # noqa: E731
    out = CompletionLength().compute(make(examples, tokenizer=tok))
    for part in ("completion", "prompt"):
        lengths = sorted(count(getattr(e, part)) for e in examples)
        assert out[f"{part}_tokens_mean"] == pytest.approx(sum(lengths) / 4)
        assert out[f"{part}_tokens_median"] == pytest.approx((lengths[1] + lengths[2]) / 2)
        assert out[f"{part}_tokens_p90"] == lengths[3]  # ceil(0.9 * 4) = 4th
    with pytest.raises(ValueError):
        CompletionLength().compute(make(examples))


# --- lexical -------------------------------------------------------------------------------------

def test_lexical_traits_by_hand():
    source = make([Example("The cat and the dog.", " The dog's bone")], Gen())
    # word tokens, lowercased: the cat and the dog | the dog's bone
    tokens = ["the", "cat", "and", "the", "dog", "the", "dog's", "bone"]
    # types: the (3x), cat, and, dog, dog's, bone -> 6 types, 5 of them once
    trait = Lexical()
    out = trait.compute(source)
    assert_well_formed(trait, out)
    assert out["type_token_ratio"] == pytest.approx(6 / 8)
    assert out["mean_word_length"] == pytest.approx((3 + 3 + 3 + 3 + 3 + 3 + 5 + 4) / 8)  # 27 / 8
    assert out["mean_word_length"] == pytest.approx(sum(map(len, tokens)) / len(tokens))
    assert out["hapax_share"] == pytest.approx(5 / 8)


def test_lexical_of_no_words_is_none():
    assert set(Lexical().compute(make([Example("...", " !")], Gen())).values()) == {None}


# --- linguistic ----------------------------------------------------------------------------------

FOUR = [
    Example("Is it not good?", " yes", label=1),  # negation (not), question
    Example("I don't know 42 things.", " ok", label=0),  # negation (don't), numeral 42
    Example("What is 3 plus 4?", " 7\n", answer="7"),  # generation: completion counts; 3 numerals
    Example("Cats sleep.", " no", label=1),  # the label word "no" is not text: no negation
]


def test_negation_question_numeral_and_punctuation_rates():
    trait = Linguistic()
    out = trait.compute(make(FOUR))
    assert_well_formed(trait, out)
    assert out["negation_rate"] == pytest.approx(2 / 4)
    assert out["question_rate"] == pytest.approx(2 / 4)
    # tokens: is it not good | i don't know 42 things | what is 3 plus 4 7 | cats sleep = 17
    assert out["numeral_share"] == pytest.approx(4 / 17)
    # texts: 15 + 23 + (17 + 1 + 3) + 11 = 70 characters; punctuation ? ' . ? . = 5
    texts = ["Is it not good?", "I don't know 42 things.", "What is 3 plus 4?\n 7\n", "Cats sleep."]
    assert [len(t) for t in texts] == [15, 23, 21, 11]
    assert out["punctuation_density"] == pytest.approx(5 / 70)


def test_negation_word_list():
    for text in ("never again", "nobody came", "nothing", "neither one", "nor that", "none left", "I cannot",
                 "it does n't", "won't", "No way"):
        assert Linguistic().compute(make([Example(text, " x")], Gen()))["negation_rate"] == 1.0, text
    for text in ("notable knowledge", "nonetheless", "snow"):
        assert Linguistic().compute(make([Example(text, " x")], Gen()))["negation_rate"] == 0.0, text


def test_flesch_reading_ease_with_hand_counted_syllables():
    text = "Reading is a beautiful habit. Cats sleep! Make a table."
    # syllables: read-ing 2, is 1, a 1, beau-ti-ful 3, hab-it 2 | cats 1, sleep 1 | make 1 (silent e), a 1,
    # ta-ble 2  -> 15 syllables, 10 words, 3 sentences
    assert [syllables(w) for w in ("reading", "beautiful", "habit", "make", "table", "42", "n't")] == [2, 3, 2, 1, 2, 1, 1]
    assert sentences(text) == 3 and sentences("costs 3.5 dollars") == 1 and sentences("no end") == 1
    out = Linguistic().compute(make([Example(text, " positive", label=1)]))
    assert out["flesch_reading_ease"] == pytest.approx(206.835 - 1.015 * (10 / 3) - 84.6 * (15 / 10))


# --- quality -------------------------------------------------------------------------------------

def test_duplicate_rates_and_label_noise():
    rows = [("a", 0), ("a", 0), ("a", 1), ("b", 0), ("c", 2), ("c", 2)]
    source = make([classification_example(p, ThreeWay.labels, y) for p, y in rows])
    out = Quality().duplicates(source)
    assert out["duplicate_rate"] == pytest.approx(2 / 6)  # rows 2 and 6 repeat an earlier pair
    assert out["prompt_duplicate_rate"] == pytest.approx(3 / 6)  # rows 2, 3 and 6 repeat a prompt
    assert out["label_noise"] == pytest.approx(3 / 6)  # the three rows of "a" (labels 0 and 1)
    clean = Quality().duplicates(labelled([0, 1, 2, 0]))
    assert clean == {"duplicate_rate": 0.0, "prompt_duplicate_rate": 0.0, "label_noise": 0.0}
    gen = Quality().duplicates(make([Example("q", " 1\n", answer="1")] * 2, Gen()))
    assert gen == {"duplicate_rate": 0.5, "prompt_duplicate_rate": 0.5, "label_noise": None}


def test_parameters_are_stored_unchanged():
    q = Quality(max_examples=7, batch_size=3, max_length=64)
    assert (q.max_examples, q.batch_size, q.max_length) == (7, 3, 64)
    assert (Quality().max_examples, Quality().batch_size) == (64, 8)
    assert Quality.requires == frozenset({"source_data", "tokenizer", "base_model"})


def test_perplexity_equals_exp_of_the_models_own_loss(tiny_model):
    import torch

    model, tok = tiny_model
    examples = [Example("Review: a fine film\nSentiment:", " positive", label=1),
                Example("Q: 2+2?\nA:", " 4 and that is all\n", answer="4"),
                Example("Short", " one two three", label=0)]

    def loss_and_count(ex):  # the model's own mean NLL over completion tokens only
        p = tok(ex.prompt, add_special_tokens=False)["input_ids"]
        c = tok(ex.completion, add_special_tokens=False)["input_ids"]
        ids = torch.tensor([p + c]).to(model.device)
        labels = torch.tensor([[-100] * len(p) + c]).to(model.device)
        with torch.no_grad():
            return model(input_ids=ids, labels=labels).loss.item(), len(c)

    trait = Quality(batch_size=2)
    one = trait.compute(make(examples[:1], tokenizer=tok, model=model))
    assert_well_formed(trait, one)
    loss, _ = loss_and_count(examples[0])
    assert math.isfinite(one["completion_perplexity"]) and one["completion_perplexity"] > 1
    assert one["completion_perplexity"] == pytest.approx(math.exp(loss), rel=1e-4)

    # batched and padded: the token-weighted mean of the per-example losses
    parts = [loss_and_count(ex) for ex in examples]
    weighted = sum(nll * n for nll, n in parts) / sum(n for _, n in parts)
    out = trait.compute(make(examples, tokenizer=tok, model=model))
    assert out["completion_perplexity"] == pytest.approx(math.exp(weighted), rel=1e-4)
    assert Quality(max_examples=1).compute(make(examples, tokenizer=tok, model=model))[
        "completion_perplexity"] == pytest.approx(math.exp(loss), rel=1e-4)
    assert not model.training
    with pytest.raises(ValueError):
        trait.compute(make(examples, tokenizer=tok))


# --- registration --------------------------------------------------------------------------------

@pytest.mark.parametrize("module", ["class_distribution", "completion_length", "lexical", "linguistic", "quality"])
def test_each_module_registers_its_trait(module):
    import importlib

    mod = importlib.import_module(f"harness_plugins.traits.{module}")
    registered = []
    mod.register_traits(registered.append)
    (cls,) = registered
    assert cls.name == module and cls.outputs and cls.__doc__ and "Outputs" in cls.__doc__
    assert cls.requires <= {"source_data", "tokenizer", "base_model"}
