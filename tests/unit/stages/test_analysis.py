"""The analysis stage end to end on synthetic runs (per-sample outcomes included)."""

from __future__ import annotations

import numpy as np
import pytest

from harness.analysis.outcomes import collect
from harness.api.plugins import catalog
from harness.config.registry import AnalysisSettings, DecomposerUse
from harness.stages.analyse import analyse, cell_tests
from helpers import TARGETS, USES, synthetic_run


@pytest.fixture(scope="module")
def analysed():
    data, *_ = synthetic_run()
    out, failures = analyse(data, USES, catalog(), AnalysisSettings(bootstrap=40, permutations=2000))
    return data, out, failures


def test_every_decomposition_is_fitted_named_and_checked(analysed):
    data, out, failures = analysed
    assert failures == []
    assert list(out["decompositions"]) == ["pca", "pca_ordinal", "factor_analysis", "nmf", "ica"]
    for key, dec in out["decompositions"].items():
        ids = list(dec["labels"])
        assert dec["n_components"]["k"] == len(ids) and len(dec["n_components"]["eigenvalues"]) == 5
        assert set(dec["scores"]) == set(data.sources)
        assert all(dec["label_evidence"][c] for c in ids)
        boot = dec["stability"]["bootstrap"]
        assert boot["n"] + boot["n_failed"] == 40 and boot["fixed_targets"] == []
        for c in ids:
            lo, hi = boot["loadings_ci"][c]["add"]
            assert lo <= hi
        assert set(dec["stability"]["leave_one_source_out"]["congruence"][ids[0]]) == set(data.sources)
        assert set(dec["stability"]["verdict"].values()) <= {"stable", "unstable", "untested"}
    assert out["decompositions"]["nmf"]["labels"]["C1"] == "maths"  # the registry's name wins
    pca = out["decompositions"]["pca"]
    # The strongest planted component is maths (gains of 0 to 0.4 on add/words/order): C1 says so.
    assert "arithmetic" in pca["labels"]["C1"] and pca["stability"]["verdict"]["C1"] == "stable"
    assert out["decompositions"]["pca_ordinal"]["normalisation"] == "ordinal"


def test_trait_tests_find_the_planted_trait(analysed):
    data, out, _ = analysed
    rows = [r for r in out["correlations"] if r["decomposer"] == "pca"]
    assert {(r["trait"], r["component"]) for r in rows} == {(t, c) for t in ("maths_share", "noise_a", "noise_b")
                                                               for c in ("C1", "C2")}
    best = min(rows, key=lambda r: r["p"])
    assert (best["trait"], best["component"]) == ("maths_share", "C1") and abs(best["spearman"]) > 0.9
    for r in rows:
        assert set(r) >= {"trait", "component", "spearman", "pearson", "p", "q", "decomposer"}
        assert r["q"] >= r["p"]
    # Six sources: an exact test over 720 orderings, smallest attainable p 2/720.
    assert out["trait_tests"]["pca"]["min_p"] == pytest.approx(2 / 720)
    by_target = {(r["trait"], r["target"]): r for r in out["target_correlations"]}
    assert by_target["maths_share", "add"]["spearman"] > 0.9


def test_cells_are_tested_pairwise_against_the_base(analysed):
    data, out, _ = analysed
    tests = out["cell_tests"]
    assert set(tests) == set(data.sources) and all(set(row) == set(TARGETS) for row in tests.values())
    assert tests["src0"]["add"]["method"] == "mcnemar"
    assert tests["src0"]["add"]["p"] == 1.0 and not tests["src0"]["add"]["significant"]  # no planted effect
    assert tests["src5"]["add"]["significant"] and tests["src5"]["add"]["delta"] > 0.3
    assert all(t["q"] >= t["p"] for row in tests.values() for t in row.values())


def test_similarity_and_prediction_sections(analysed):
    data, out, _ = analysed
    sim = out["similarity_test"]["similarity"]
    assert sim["all_pairs"]["n_pairs"] == 30 and sim["excluding_in_domain"]["n_pairs"] == 30  # no shared names
    pred = out["prediction"]
    assert set(pred["per_source"]) == set(data.sources) and "score" in pred and "baseline_score" in pred


def test_bootstrap_resamples_documents_shared_by_all_models():
    """With every model given identical outcomes the resampled transfer is exactly 0 whatever the
    documents drawn: pairing across models is kept."""
    data, samples, *_ = synthetic_run(n_sources=4)
    for s in data.sources:
        samples[s] = samples["base"]
    data.outcomes = collect(samples, data.sources, TARGETS)
    data.transfer = {s: {t: 0.0 for t in TARGETS} for s in data.sources}
    base, adapters = data.outcomes.cell_means({t: np.random.default_rng(1).integers(0, 120, 120) for t in TARGETS})
    assert np.all(adapters == base)
    tests = cell_tests(data.outcomes, AnalysisSettings())
    assert all(t["p"] == 1.0 for row in tests.values() for t in row.values())


def test_a_failing_decomposer_is_recorded_and_the_rest_go_on():
    data, *_ = synthetic_run(n_sources=4)
    uses = [DecomposerUse(name="pca", names={"C9": "x"}), DecomposerUse(name="pca", alias="ok")]
    out, failures = analyse(data, uses, catalog(), AnalysisSettings(bootstrap=0))
    assert list(out["decompositions"]) == ["ok"]
    assert failures[0]["plugin"] == "pca" and "names given for C9" in failures[0]["error"]
    assert out["decompositions"]["ok"]["stability"]["bootstrap"] is None


def skips(out: dict) -> dict:
    return {(s["analysis"], s.get("plugin")): s["reason"] for s in out["skipped"]}


def test_one_source_skips_what_needs_more_sources_and_fails_nothing():
    data, *_ = synthetic_run(n_sources=1)
    out, failures = analyse(data, USES[:1], catalog(), AnalysisSettings(bootstrap=20, permutations=720))
    assert failures == []
    skipped = skips(out)
    assert set(skipped) == {("decompose", "pca"), ("target_trait_tests", None), ("similarity_test", "similarity"),
                            ("prediction", None)}
    assert "needs at least 2 sources" in skipped["decompose", "pca"] and "has 1" in skipped["decompose", "pca"]
    assert out["decompositions"] == {} and out["correlations"] == [] and out["prediction"] is None
    assert out["cell_tests"]["src0"]["add"]["method"] == "mcnemar"  # one source is enough for these


def test_two_sources_decompose_and_skip_what_needs_three():
    data, *_ = synthetic_run(n_sources=2)
    out, failures = analyse(data, [DecomposerUse(name="pca", n_components=1)], catalog(),
                            AnalysisSettings(bootstrap=20, permutations=720))
    assert failures == []
    skipped = skips(out)
    assert set(skipped) == {("leave_one_source_out", "pca"), ("trait_tests", "pca"), ("target_trait_tests", None),
                            ("similarity_test", "similarity"), ("prediction", None)}
    stability = out["decompositions"]["pca"]["stability"]
    assert stability["bootstrap"]["n"] > 0 and stability["leave_one_source_out"] is None
    assert stability["skipped"] == {"leave_one_source_out": skipped["leave_one_source_out", "pca"]}


def test_a_real_error_in_an_analysis_is_a_failure_not_a_skip():
    """Only NotApplicable is a skip: a ValueError from inside the prediction (a negative penalty that
    got past validation) is a failure."""
    data, *_ = synthetic_run()
    settings = AnalysisSettings.model_construct(**{**AnalysisSettings().model_dump(), "ridge_alpha": -1.0})
    out, failures = analyse(data, [], catalog(), settings)
    assert [f["stage"] for f in failures] == ["prediction"] and "alpha must be >= 0" in failures[0]["error"]
    assert out["prediction"] is None and ("prediction", None) not in skips(out)
