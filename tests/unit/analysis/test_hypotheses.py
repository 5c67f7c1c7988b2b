"""H1-H5 verdicts on hand-built results dicts of the shapes the other analyses produce
(twin contrasts, prediction comparisons, trait tests, decompositions): every branch of every rule."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import false_discovery_control, norm

from harness.analysis.hypotheses import (
    NOT_SUPPORTED,
    NOT_TESTABLE,
    SUPPORTED,
    HypothesisSettings,
    assess,
    detectable_correlation,
    h1,
    h2,
    h3,
    h4,
    h5,
)
from harness.api.plugins import catalog
from harness.config.registry import AnalysisSettings, DecomposerUse
from harness.stages.analyse import analyse
from helpers import synthetic_run

S = HypothesisSettings(permutations=50_000)
TARGETS6 = ["sst2", "nli_t", "add", "words", "pos", "order"]


def twin(source="skewed", twin_of="balanced", statistic="class_balance", target="sst2", measure="label_share",
         delta=0.4, p=0.001, q=0.004, ci=(0.3, 0.5), skipped=None, differs=None, label="positive"):
    return {"source": source, "twin_of": twin_of, "statistic": statistic,
            "differs": differs if differs is not None else {"class_balance": [0.9, 0.5]}, "target": target,
            "measure": measure, "label": label if measure == "label_share" else None, "delta": delta, "ci": list(ci) if ci else None, "p": p, "q": q,
            "significant": q is not None and q < 0.05, "n_docs": 200, "n_seeds": [1, 1], "method": "paired",
            "skipped": skipped}


# The skewed twin trains on 90% positive rows, its balanced twin on 50%: "positive" is the label the
# skewed one over-represents (what the analysis stage records in results["twins"]).
SHARES = {"skewed": {"negative": 0.1, "positive": 0.9}, "balanced": {"negative": 0.5, "positive": 0.5}}
PAIRS = [{"source": "skewed", "twin_of": "balanced", "statistic": "class_balance", "label_shares": SHARES},
         {"source": "balanced", "twin_of": "skewed", "statistic": "class_balance", "label_shares": SHARES}]


def results(**kw) -> dict:
    base = {"sources": ["skewed", "balanced"], "targets": TARGETS6, "traits": {}, "twins": PAIRS,
            "kinds": {"sst2": "multiple_choice", "nli_t": "multiple_choice", "words": "generation"}}
    return {**base, **kw}


# --- H1 -------------------------------------------------------------------------------------------

def test_h1_supported_when_the_significant_contrasts_go_the_predicted_way():
    out = h1(results(twin_contrasts=[twin(), twin(target="nli_t", delta=0.05, p=0.4, q=0.5)]), S)
    assert out["verdict"] == SUPPORTED and out["effect"]["value"] == pytest.approx(0.4)
    assert out["effect"]["ci"] == [0.3, 0.5]
    assert out["p"] == pytest.approx(min(2 * 0.001, 0.4))  # Simes over the two rows
    assert "skewed vs balanced on sst2" in out["reason"]


def test_h1_reads_the_label_the_source_over_represents():
    # The source is the balanced one: it has more "negative" rows than its skewed twin, so the claim
    # predicts it answers "negative" more (a positive delta on that label's share).
    row = twin(source="balanced", twin_of="skewed", label="negative", differs={"class_balance": [0.5, 0.9]})
    out = h1(results(twin_contrasts=[row]), S)
    assert out["verdict"] == SUPPORTED and out["effect"]["value"] == pytest.approx(0.4)
    assert out["effect"]["ci"] == [pytest.approx(0.3), pytest.approx(0.5)]
    # The share of the label it has fewer of is not what the claim predicts: that row is left out.
    other = h1(results(twin_contrasts=[twin(source="balanced", twin_of="skewed", label="positive")]), S)
    assert other["verdict"] == NOT_TESTABLE
    # Pairs that record no label shares cannot say which label a twin over-represents.
    bare = h1(results(twin_contrasts=[twin()], twins=[{"source": "skewed", "twin_of": "balanced"}]), S)
    assert bare["verdict"] == NOT_TESTABLE


def test_h1_not_supported_when_nothing_is_significant_or_a_significant_one_is_of_the_wrong_sign():
    weak = h1(results(twin_contrasts=[twin(delta=0.02, p=0.3, q=0.3)]), S)
    assert weak["verdict"] == NOT_SUPPORTED and "no contrast is significant" in weak["reason"]
    wrong = h1(results(twin_contrasts=[twin(), twin(target="nli_t", delta=-0.3, p=0.002, q=0.004)]), S)
    assert wrong["verdict"] == NOT_SUPPORTED and "1 of 2 significant" in wrong["reason"]


def test_h1_uses_only_the_over_represented_label_share_on_classification_targets():
    rows = [twin(target="words"), twin(measure="transfer"), twin(measure="majority_bias"), twin(label="negative")]
    out = h1(results(twin_contrasts=rows), S)
    assert out["verdict"] == NOT_TESTABLE
    assert out["reason"].startswith("twins differ in class balance, but no classification target")


def test_h1_not_testable_without_twins_nor_a_fallback():
    out = h1(results(), S)
    assert out["verdict"] == NOT_TESTABLE and out["reason"].startswith("no twin differs in class balance")
    assert out["p"] is None and out["effect"]["value"] is None


def _fallback(n, bias):
    sources = [f"s{i}" for i in range(n)]
    share = np.linspace(0.5, 0.95, n)
    return results(sources=sources, traits={s: {"majority_share": float(share[i]),
                                                "behaviour_majority_bias_shift": float(bias[i])}
                                            for i, s in enumerate(sources)})


def test_h1_fallback_association_across_sources():
    out = h1(_fallback(8, np.linspace(0, 0.3, 8)), S)
    assert out["verdict"] == SUPPORTED and out["test"].startswith("fallback without twins")
    assert out["effect"]["value"] == pytest.approx(1.0) and out["p"] == pytest.approx(2 / math.factorial(8))
    against = h1(_fallback(8, np.linspace(0.3, 0, 8)), S)  # perfectly significant, but negative
    assert against["verdict"] == NOT_SUPPORTED and "not positive" in against["reason"]
    few = h1(_fallback(4, np.linspace(0, 0.3, 4)), S)
    assert few["verdict"] == NOT_TESTABLE and f"{2 / 24:.3g}" in few["reason"]  # 4 sources: smallest p 2/4!


# --- H2 -------------------------------------------------------------------------------------------

def length_twin(**kw):
    return twin(**{"source": "rationale", "twin_of": "plain", "statistic": "completion_length", "target": "words",
                   "measure": "output_length", "delta": 12.0, "ci": (8.0, 16.0), "differs": {"rationale": [True, False]},
                   **kw})


def test_h2_supported_by_a_length_twin_on_a_generation_target():
    out = h2(results(twin_contrasts=[length_twin()]), S)
    assert out["verdict"] == SUPPORTED and out["effect"]["value"] == 12.0 and out["p"] == 0.001


def test_h2_not_supported_when_the_contrast_is_not_significant():
    out = h2(results(twin_contrasts=[length_twin(delta=0.5, p=0.6, q=0.7)]), S)
    assert out["verdict"] == NOT_SUPPORTED


def test_h2_capped_contrasts_do_not_count_and_the_reason_quotes_the_cap():
    cap = "word_problems caps outputs at 8 tokens; 93% of outputs hit it: a length contrast would measure the cap"
    out = h2(results(twin_contrasts=[length_twin(delta=None, p=None, q=None, ci=None, skipped=cap)]), S)
    assert out["verdict"] == NOT_TESTABLE and cap in out["reason"]
    # One uncapped contrast is enough to test.
    both = h2(results(twin_contrasts=[length_twin(delta=None, p=None, q=None, ci=None, skipped=cap),
                                      length_twin(target="order")]), S)
    assert both["verdict"] == SUPPORTED


def test_h2_fallback_without_twins():
    sources = [f"s{i}" for i in range(7)]
    traits = {s: {"completion_tokens_mean": 5.0 + i, "behaviour_output_length_shift": 0.5 * i} for i, s in enumerate(sources)}
    out = h2(results(sources=sources, traits=traits), S)
    assert out["verdict"] == SUPPORTED and "no twin differs in completion length" in out["reason"]


# --- H3 -------------------------------------------------------------------------------------------

def comparison(a="statistics", b="similarity", metric="spearman", difference=0.2, ci=(0.05, 0.35), p=0.01):
    return {"a": a, "b": b, "metric": metric, "difference": difference, "ci": list(ci), "p": p, "n_targets": 6}


def test_h3_supported_not_supported_and_reversed_rows():
    out = h3(results(prediction={"comparisons": [comparison()]}), S)
    assert out["verdict"] == SUPPORTED and out["effect"]["value"] == 0.2 and out["p"] == 0.01
    rev = h3(results(prediction={"comparisons": [comparison("similarity", "statistics", difference=-0.2,
                                                            ci=(-0.35, -0.05))]}), S)
    assert rev["verdict"] == SUPPORTED and rev["effect"]["ci"] == [0.05, 0.35]
    assert h3(results(prediction={"comparisons": [comparison(p=0.3)]}), S)["verdict"] == NOT_SUPPORTED
    worse = h3(results(prediction={"comparisons": [comparison(difference=-0.2, ci=(-0.3, -0.1), p=0.01)]}), S)
    assert worse["verdict"] == NOT_SUPPORTED and "not better" in worse["reason"]


def test_h3_falls_back_to_ndcg_and_says_so():
    out = h3(results(prediction={"comparisons": [comparison(metric="ndcg_at_k")]}), S)
    assert out["verdict"] == SUPPORTED and "ndcg_at_k" in out["test"] and "no spearman row" in out["test"]


def test_h3_not_testable_with_the_reason_from_not_compared_or_skipped():
    out = h3(results(prediction={"comparisons": [], "not_compared": {"similarity": "no pair similarity traits"}}), S)
    assert out["verdict"] == NOT_TESTABLE and out["reason"] == "similarity: no pair similarity traits"
    none = h3(results(prediction=None, skipped=[{"analysis": "prediction", "reason": "needs at least 3 sources"}]), S)
    assert none["verdict"] == NOT_TESTABLE and none["reason"] == "prediction was not run: needs at least 3 sources"


# --- H4 -------------------------------------------------------------------------------------------

def quality(n, ps, min_p=1e-4, **kw):
    sources = [f"s{i}" for i in range(n)]
    rows = [{"trait": "duplicate_rate", "target": TARGETS6[j], "n": n, "spearman": 0.1 * (j + 1), "p": p,
             "q": None} for j, p in enumerate(ps)]
    return results(sources=sources, traits={s: {"duplicate_rate": 0.01 * i} for i, s in enumerate(sources)},
                   target_correlations=rows, trait_tests={"targets": {"min_p": min_p}}, **kw)


def test_h4_not_testable_without_quality_traits():
    out = h4(results(traits={"a": {"majority_share": 0.5}}), S)
    assert out["verdict"] == NOT_TESTABLE and out["reason"].startswith("no quality traits")


def test_h4_not_supported_when_quality_is_associated_or_predicts():
    out = h4(quality(12, [0.001, 0.5, 0.7]), S)
    assert out["verdict"] == NOT_SUPPORTED and out["p"] == pytest.approx(0.003)  # Simes: 3 * 0.001 / 1
    beats = h4(quality(12, [0.5, 0.7], prediction={"comparisons": [comparison("quality", "mean_row", p=0.002)]}), S)
    assert beats["verdict"] == NOT_SUPPORTED and beats["p"] == pytest.approx(3 * 0.001)  # one-sided 0.002 / 2
    assert "quality predictor vs mean_row" in beats["test"]


def test_h4_not_testable_when_the_study_could_not_detect_a_large_effect():
    out = h4(quality(8, [0.4, 0.6, 0.8]), S)
    expected = math.tanh((norm.ppf(1 - 0.05 / 3 / 2) + norm.ppf(0.8)) * math.sqrt(1.06 / 5))
    assert detectable_correlation(8, 0.05 / 3, 0.8) == pytest.approx(expected)
    assert out["verdict"] == NOT_TESTABLE and f"{expected:.2f} > 0.5" in out["reason"]


def test_h4_supported_only_with_the_power_to_detect_a_large_effect():
    out = h4(quality(60, [0.6, 0.8]), S)
    assert detectable_correlation(60, 0.025, 0.8) < 0.5
    assert out["verdict"] == SUPPORTED and out["p"] == pytest.approx(0.8)
    # The same numbers with a permutation floor above level/m cannot support the null claim.
    assert h4(quality(60, [0.6, 0.8], min_p=0.03), S)["verdict"] == NOT_TESTABLE


# --- H5 -------------------------------------------------------------------------------------------

def decomposition(retained=2, verdicts=("stable", "stable"), skipped=None):
    ids = [f"C{i + 1}" for i in range(max(1, retained))]
    return {"n_components": {"requested": "parallel", "k": len(ids), "retained_by_test": retained},
            "labels": {c: c for c in ids}, "loadings": {c: dict.fromkeys(TARGETS6, 0.1) for c in ids},
            "scores": {"s0": {}, "s1": {}}, "stability": {"verdict": dict(zip(ids, verdicts)), "skipped": skipped or {}}}


def test_h5_every_branch():
    assert h5(results(decompositions={"pca": decomposition()}), S)["verdict"] == SUPPORTED
    none = h5(results(decompositions={"pca": decomposition(0, ("unstable",))}), S)
    assert none["verdict"] == NOT_SUPPORTED and "keeps no component" in none["reason"]
    many = h5(results(decompositions={"pca": decomposition(4, ("stable",) * 4)}), S)
    assert many["verdict"] == NOT_SUPPORTED and "not a few" in many["reason"]
    shaky = h5(results(decompositions={"pca": decomposition(2, ("stable", "unstable"))}), S)
    assert shaky["verdict"] == NOT_SUPPORTED and "C2 is unstable" in shaky["reason"]
    untested = h5(results(decompositions={"pca": decomposition(1, ("untested",), {"bootstrap": "turned off"})}), S)
    assert untested["verdict"] == NOT_TESTABLE and "bootstrap: turned off" in untested["reason"]
    fixed = decomposition()
    del fixed["n_components"]["retained_by_test"]
    assert "parallel analysis" in h5(results(decompositions={"pca": fixed}), S)["reason"]
    small = h5(results(decompositions={}, skipped=[{"analysis": "decompose", "plugin": "pca",
                                                    "reason": "a decomposition needs at least 2 sources"}]), S)
    assert small["verdict"] == NOT_TESTABLE and small["reason"] == "no decomposition: a decomposition needs at least 2 sources"


# --- all together ---------------------------------------------------------------------------------

def test_q_values_are_scipys_benjamini_hochberg_over_the_hypotheses_with_a_p():
    res = results(twin_contrasts=[twin(p=0.01, q=0.01)], prediction={"comparisons": [comparison(p=0.03)]},
                  decompositions={"pca": decomposition()}, **{k: v for k, v in quality(8, [0.2, 0.9]).items()
                                                               if k in ("target_correlations", "trait_tests")})
    res["traits"] = {"skewed": {"duplicate_rate": 0.1}}
    out = assess(res, S)
    assert [h["id"] for h in out] == ["H1", "H2", "H3", "H4", "H5"]
    ps = [h["p"] for h in out if h["p"] is not None]
    assert len(ps) == 3  # H1, H3, H4; H2 untestable, H5 has no p
    assert [h["q"] for h in out if h["p"] is not None] == pytest.approx(list(false_discovery_control(ps, method="bh")))
    assert all(h["q"] is None for h in out if h["p"] is None)


def test_the_analysis_stage_reports_hypotheses_read_from_its_own_decomposition():
    data, *_ = synthetic_run()
    out, failures = analyse(data, [DecomposerUse(name="pca", n_components="parallel")], catalog(),
                            AnalysisSettings(bootstrap=20, permutations=720))
    assert failures == []
    by_id = {h["id"]: h for h in out["hypotheses"]}
    dec = out["decompositions"]["pca"]
    assert by_id["H5"]["effect"]["value"] == dec["n_components"]["retained_by_test"]
    assert by_id["H5"]["verdict"] in (SUPPORTED, NOT_SUPPORTED)
    # No twins, no prediction comparisons, no quality traits in the synthetic study: said so.
    assert by_id["H3"]["verdict"] == by_id["H4"]["verdict"] == NOT_TESTABLE


def test_a_results_json_gives_the_analysis_its_targets_kinds():
    from harness.stages.analyse import from_results
    from helpers import make_results

    assert from_results(make_results()).kinds == {"pos": "multiple_choice", "words": "generation"}


def test_the_fallback_averages_a_behaviour_trait_over_a_sources_seed_replicates():
    res = _fallback(8, np.linspace(0, 0.3, 8))
    for i in range(8):  # behaviour filed per replicate model: seeds 0 and 1 around the planted value
        bias = res["traits"][f"s{i}"].pop("behaviour_majority_bias_shift")
        res["traits"][f"s{i}@seed0"] = {"behaviour_majority_bias_shift": bias - 0.01}
        res["traits"][f"s{i}@seed1"] = {"behaviour_majority_bias_shift": bias + 0.01}
    out = h1(res, S)
    assert out["verdict"] == SUPPORTED and out["effect"]["value"] == pytest.approx(1.0)
