"""Twin contrasts: numbers equal a hand computation (1 and 3 seeds per twin), the power check on
planted twin effects, the false-positive rate on nulls, and a capped generation target skipped."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as st

from harness.analysis.outcomes import Outcomes
from harness.analysis.stats import mcnemar_exact
from harness.analysis.twins import TargetInfo, twin_contrasts, two_level_test

LABELS = ["negative", "positive"]
PAIR = {"source": "skewed", "twin_of": "balanced", "statistic": "class_balance",
        "differs": {"class_balance": [0.9, 0.5]}}


def build(preds: dict[str, np.ndarray], gold: np.ndarray, target: str = "sst"):
    """Outcomes and per-sample logs of a classification target from predicted labels per model.

    ``preds``: replicate model name -> predicted label per document (n,). Model names are
    ``source`` or ``source@seedR``; rows follow the dict's order after the base row.
    """
    models = list(preds)
    sources = list(dict.fromkeys(m.split("@")[0] for m in models))
    rows = {s: [1 + i for i, m in enumerate(models) if m.split("@")[0] == s] for s in sources}
    base = np.zeros_like(gold)
    values = np.array([base == gold, *[(p == gold) for p in preds.values()]], dtype=float)
    out = Outcomes(sources=sources, values={target: values})
    out.models, out.rows = models, rows
    samples = {m: {target: [{"doc_id": j, "target": int(gold[j]), "prediction": int(p[j]),
                             "correct": float(p[j] == gold[j])} for j in range(len(gold))]}
               for m, p in preds.items()}
    return out, samples


def rows_of(result, measure, label=None):
    return [r for r in result if r["measure"] == measure and r["label"] == label]


def test_one_seed_equals_mcnemar_by_hand():
    gold = np.array([0, 1] * 10)
    twin = np.array([0, 1] * 10)
    src = twin.copy()
    src[[0, 2, 4, 6, 8, 10]] = 1  # six negatives now predicted positive
    src[[1]] = 0  # one positive now negative
    out, samples = build({"skewed": src, "balanced": twin}, gold)
    result = twin_contrasts([PAIR], out, samples, {"sst": TargetInfo("multiple_choice", LABELS)})
    share = rows_of(result, "label_share", "positive")[0]
    assert share["delta"] == pytest.approx((src == 1).mean() - (twin == 1).mean())  # 0.25
    # Positive-share indicator: 6 documents 0 -> 1, 1 document 1 -> 0: McNemar on 7 discordant pairs.
    assert share["p"] == pytest.approx(st.binomtest(1, 7, 0.5).pvalue)
    assert share["n_seeds"] == [1, 1] and share["n_docs"] == 20 and share["method"] == "mcnemar"
    transfer = rows_of(result, "transfer")[0]
    assert transfer["delta"] == pytest.approx((src == gold).mean() - (twin == gold).mean())
    assert transfer["p"] == pytest.approx(mcnemar_exact(twin == gold, src == gold)["p"])
    bias = rows_of(result, "majority_bias", "positive")[0]  # positive is predicted most, pooled
    assert bias["delta"] == share["delta"]
    # BH over all contrasts of the study: q_(i) = min_{j>=i} p_(j) m / j.
    ps = np.array([r["p"] for r in result])
    assert [r["q"] for r in result] == pytest.approx(list(st.false_discovery_control(ps)))
    assert {r["source"] for r in result} == {"skewed"} and all(r["skipped"] is None for r in result)


def test_three_seeds_equal_the_formula_by_hand():
    rng = np.random.default_rng(3)
    n = 30
    gold = rng.integers(0, 2, n)
    preds = {f"skewed@seed{r}": rng.integers(0, 2, n) | (rng.random(n) < 0.3) for r in range(3)}
    preds |= {f"balanced@seed{r}": rng.integers(0, 2, n) for r in range(3)}
    out, samples = build(preds, gold)
    result = twin_contrasts([PAIR], out, samples, {"sst": TargetInfo("multiple_choice", LABELS)})
    share = rows_of(result, "label_share", "positive")[0]
    a = np.array([preds[f"skewed@seed{r}"] == 1 for r in range(3)], dtype=float)
    b = np.array([preds[f"balanced@seed{r}"] == 1 for r in range(3)], dtype=float)
    # By hand: seed means, their pooled variance, the paired per-document difference.
    ma, mb = a.mean(axis=1), b.mean(axis=1)
    s2 = (((ma - ma.mean()) ** 2).sum() + ((mb - mb.mean()) ** 2).sum()) / 4
    d = a.mean(axis=0) - b.mean(axis=0)
    v_seed, v_doc = s2 * (2 / 3), d.var(ddof=1) / n
    df = (v_seed + v_doc) ** 2 / (v_seed**2 / 4 + v_doc**2 / (n - 1))
    t = d.mean() / np.sqrt(v_seed + v_doc)
    assert share["delta"] == pytest.approx(ma.mean() - mb.mean())
    assert share["p"] == pytest.approx(2 * st.t.sf(abs(t), df))
    half = st.t.ppf(0.975, df) * np.sqrt(v_seed + v_doc)
    assert share["ci"] == pytest.approx([d.mean() - half, d.mean() + half])
    assert share["n_seeds"] == [3, 3] and share["method"] == "seeds_and_documents_t"
    transfer = rows_of(result, "transfer")[0]
    acc_a, acc_b = (a == gold).mean(), (b == gold).mean()  # a, b are 0/1 positive indicators
    assert transfer["delta"] == pytest.approx(acc_a - acc_b)


def test_one_seed_against_three_borrows_the_seed_spread():
    a = np.array([[1.0, 0, 1, 1, 0, 1]])
    b = np.array([[0.0, 0, 1, 0, 0, 1], [1, 0, 1, 0, 0, 0], [0, 0, 0, 0, 1, 1]])
    test = two_level_test(a, b)
    mb = b.mean(axis=1)
    s2 = ((mb - mb.mean()) ** 2).sum() / 2  # only the twin's seeds estimate the spread
    d = a[0] - b.mean(axis=0)
    se2 = s2 * (1 + 1 / 3) + d.var(ddof=1) / 6
    df = se2**2 / ((s2 * 4 / 3) ** 2 / 2 + (d.var(ddof=1) / 6) ** 2 / 5)
    assert test["p"] == pytest.approx(2 * st.t.sf(abs(d.mean()) / np.sqrt(se2), df))


def simulate(rng, n: int, seeds: int, effect: float, seed_sd: float):
    """One study: a balanced twin predicting "positive" on 45% of documents and a skewed twin on
    45% + ``effect``, with documents shared (a latent per-document tendency both twins see) and
    per-model noise, plus a training-seed shift of SD ``seed_sd`` (in z units) per replicate."""
    gold = np.repeat([0, 1], n // 2)
    tendency = rng.normal(size=n) + 0.5 * (gold - 0.5)
    preds = {}
    for name, share in (("skewed", 0.45 + effect), ("balanced", 0.45)):
        cut = np.sqrt(1.0625 + 0.5 + seed_sd**2) * st.norm.ppf(1 - share)
        for r in range(seeds):
            shift = rng.normal(0, seed_sd)
            p = (tendency + rng.normal(size=n) * 0.5 ** 0.5 + shift > cut).astype(int)
            preds[name if seeds == 1 else f"{name}@seed{r}"] = p
    return build(preds, gold)


@pytest.mark.parametrize(("seeds", "seed_sd"), [(1, 0.0), (3, 0.10)])
def test_power_check_and_false_positive_rate(seeds, seed_sd):
    """POWER CHECK (issue 17, Done when). Planted effect: the class-balance twin predicts
    "positive" on 15 percentage points more of n = 200 documents than its balanced twin (45% vs
    60% expected share). 1 seed per twin (paired McNemar), and 3 seeds per twin with a seed
    shift of SD 0.10 z-units per replicate (about 3 points of positive share between seeds). Over 200
    simulated studies each, the label-share contrast must reach p < 0.05 in >= 80%; over 200 null
    studies (both twins 45%, same noise) p < 0.05 in <= 5%, for the label share and the transfer
    contrast alike."""
    rng = np.random.default_rng(17)
    info = {"sst": TargetInfo("multiple_choice", LABELS)}
    hits, false_pos, false_pos_transfer = 0, 0, 0
    n_studies = 200
    for _ in range(n_studies):
        out, samples = simulate(rng, 200, seeds, 0.15, seed_sd)
        result = twin_contrasts([PAIR], out, samples, info)
        hits += rows_of(result, "label_share", "positive")[0]["p"] < 0.05
        out, samples = simulate(rng, 200, seeds, 0.0, seed_sd)
        result = twin_contrasts([PAIR], out, samples, info)
        false_pos += rows_of(result, "label_share", "positive")[0]["p"] < 0.05
        false_pos_transfer += rows_of(result, "transfer")[0]["p"] < 0.05
    power, fpr, fpr_t = hits / n_studies, false_pos / n_studies, false_pos_transfer / n_studies
    print(f"seeds={seeds}: power {power:.3f}, FPR label share {fpr:.3f}, FPR transfer {fpr_t:.3f}")
    assert power >= 0.80
    assert fpr <= 0.05 and fpr_t <= 0.05


def test_capped_generation_target_skips_the_length_contrast():
    n = 10
    outputs = {"long": " Mia starts with 5. 5 + 3 = 8. 8 - 2 = 6", "short": " 6"}
    samples = {name: {"wp": [{"doc_id": j, "target": "6", "prediction": "6" if name == "short" or j % 2 else "5",
                              "output": text, "correct": 1.0} for j in range(n)]}
               for name, text in outputs.items()}
    out = Outcomes(sources=["long", "short"], values={"wp": np.ones((3, n))})
    pair = {"source": "long", "twin_of": "short", "statistic": "completion_length",
            "differs": {"rationale": [True, False]}}
    info = {"wp": TargetInfo("generation", max_gen_toks=8)}
    tokens = lambda text: len(text.split()) + text.count(".")  # noqa: E731 - a stand-in tokenizer, words and dots
    result = twin_contrasts([pair], out, samples, info, count_tokens=tokens)
    length = rows_of(result, "output_length")[0]
    assert length["delta"] is None and length["p"] is None
    assert length["skipped"] == ("wp caps outputs at 8 tokens; 100% of outputs hit it: a length contrast "
                                 "would measure the cap")
    adherence = rows_of(result, "format_adherence")[0]
    assert adherence["skipped"] is None and adherence["delta"] == 0.0
    # Without a tokenizer, the twins' training completions longer than the cap say the same.
    result = twin_contrasts([pair], out, samples, info, completion_tokens={"long": 24.0, "short": 2.0})
    assert "below a twin's mean completion of 24 tokens" in rows_of(result, "output_length")[0]["skipped"]
    # An uncapped target gets the number: 14 words against 1.
    result = twin_contrasts([pair], out, samples, {"wp": TargetInfo("generation", max_gen_toks=64)},
                            count_tokens=tokens)
    assert rows_of(result, "output_length")[0]["delta"] == pytest.approx(13.0)
