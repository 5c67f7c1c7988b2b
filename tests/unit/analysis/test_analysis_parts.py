"""Normalisation, number of components, stability and per-sample alignment: each against a
hand-computed or planted answer."""

from __future__ import annotations

import numpy as np
import pytest

from harness.analysis import dimensionality, stability
from harness.analysis.normalise import ahp_log_priority, normalise, win_rates
from harness.analysis.outcomes import collect
from harness_plugins.decomposers.pca import PCA


def planted(n=40, p=12, k=2, noise=0.05, seed=0):
    """Simple-structure loadings (each target on one component), component scores of distinct
    spread, plus noise: the answer a decomposer should find."""
    rng = np.random.default_rng(seed)
    L = np.zeros((k, p))
    for j in range(p):
        L[j % k, j] = rng.uniform(0.6, 1.0) * rng.choice([-1, 1])
    F = rng.normal(size=(n, k)) * np.linspace(3, 1, k)
    return F @ L + noise * rng.normal(size=(n, p)), L, F


# --- normalisation -------------------------------------------------------------------------------

def test_raw_relative_and_zscore():
    X = np.array([[0.1, -0.2], [0.3, 0.0], [-0.1, 0.2]])
    base = np.array([0.5, 0.4])
    assert normalise("raw", X) is not None and np.array_equal(normalise("raw", X), X)
    np.testing.assert_allclose(normalise("relative", X, base), X / base)
    Z = normalise("zscore", X)
    np.testing.assert_allclose(Z.mean(axis=0), 0, atol=1e-12)
    np.testing.assert_allclose(Z.std(axis=0, ddof=1), 1)
    # A target no source moved stays 0 rather than 0/0.
    assert np.all(normalise("zscore", np.array([[0.1, 0.2], [0.1, 0.3]]))[:, 0] == 0)


@pytest.mark.parametrize("kind, kwargs, message", [
    ("relative", {"base": np.array([0.0, 0.4])}, "base scores 0 (t0)"),
    ("relative", {}, "needs the base scores"),
    ("ordinal", {}, "per-sample outcomes"),
    ("log", {}, "unknown normalisation 'log'"),
])
def test_normalise_errors_say_what_to_do(kind, kwargs, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        normalise(kind, np.ones((2, 2)), targets=["t0", "t1"], **kwargs)


def test_win_rates_count_ties_half():
    y = np.array([[1, 1, 0, 0], [1, 0, 1, 0]], dtype=float)  # one win each, two ties
    W = win_rates(y)
    np.testing.assert_allclose(W, [[0.5, 0.5], [0.5, 0.5]])
    y = np.array([[1, 1, 1, 0], [0, 0, 1, 0]], dtype=float)  # model 0 wins 2, ties 2
    np.testing.assert_allclose(win_rates(y), [[0.5, 0.75], [0.25, 0.5]])


def test_ahp_priorities_order_models_and_ignore_the_metric_scale():
    rng = np.random.default_rng(0)
    base = rng.normal(size=200)
    better, same, worse = base + 0.5 + 0.1 * rng.normal(size=200), base.copy(), base - 0.3
    y = np.vstack([base, better, same, worse])
    scores = ahp_log_priority(y)
    assert scores[0] > 0 and scores[1] == pytest.approx(0, abs=1e-9) and scores[2] < 0
    # Only "who did better on this document" enters: a monotone rescaling changes nothing.
    np.testing.assert_allclose(ahp_log_priority(np.exp(3 * y)), scores, atol=1e-12)
    # The priority vector solves the eigen-equation of the clipped win-ratio matrix.
    W = np.clip(win_rates(y), 1e-3, 1 - 1e-3)
    A = W / W.T
    v = np.exp(np.concatenate([[0.0], scores]))
    lam = (A @ v) / v
    np.testing.assert_allclose(lam, lam[0], rtol=1e-9)


# --- how many components -----------------------------------------------------------------------------

def test_eigenvalues_are_pca_variances():
    X = np.random.default_rng(1).normal(size=(6, 4))
    np.testing.assert_allclose(dimensionality.eigenvalues(X), PCA(n_components=4).fit(X).explained_variance_, atol=1e-12)


def test_variance_threshold_and_fixed():
    X, _, _ = planted(k=3, noise=0.01)
    k, scree = dimensionality.choose(0.9, X)
    cumulative = np.array(scree["cumulative"])
    assert cumulative[k - 1] >= 0.9 and (k == 1 or cumulative[k - 2] < 0.9)
    assert dimensionality.choose(2, X)[0] == 2 and dimensionality.choose(None, X)[0] is None
    assert "note" not in dimensionality.choose(2, X)[1]
    k, scree = dimensionality.choose(13, X)
    assert k == 12 and scree["note"] == "n_components=13 capped at 12: a 40 x 12 matrix has rank at most 12"


def _decompose(name, n_components, X, **use):
    from harness.analysis.decompose import decompose
    from harness.api.plugins import catalog
    from harness.config.registry import AnalysisSettings, DecomposerUse

    sources, targets = [f"s{i}" for i in range(len(X))], [f"t{j}" for j in range(X.shape[1])]
    use = DecomposerUse(name=name, **({} if n_components == "default" else {"n_components": n_components}), **use)
    return decompose(use, catalog().get("decomposer", name).obj, sources, targets, X, None, None, {},
                     AnalysisSettings(bootstrap=0))


@pytest.mark.parametrize("name", ["pca", "factor_analysis", "ica"])
def test_as_many_components_as_sources_are_capped_at_the_centred_rank(name):
    """Six sources span five centred directions: a sixth component would explain exactly nothing,
    yet be named and correlated with traits. The count is capped, and the result says so."""
    X, _, _ = planted(n=6, p=8, k=2, noise=0.2, seed=3)
    dec = _decompose(name, 6, X)
    assert dec["n_components"]["k"] == len(dec["labels"]) == len(dec["explained_variance_ratio"]) == 5
    assert dec["n_components"]["note"] == ("n_components=6 capped at 5: a centred 6 x 8 matrix has at most "
                                           "min(n_sources - 1, n_targets) = 5 components with non-zero variance")
    assert min(dec["explained_variance_ratio"]) > 1e-6


def test_nmf_does_not_centre_so_it_may_keep_one_part_per_source():
    X, _, _ = planted(n=6, p=8, k=2, noise=0.2, seed=3)
    dec = _decompose("nmf", 6, X)
    assert dec["n_components"]["k"] == 6 and "note" not in dec["n_components"]
    assert _decompose("nmf", 9, X)["n_components"]["note"].startswith("n_components=9 capped at 6: a 6 x 8 matrix")


def test_default_count_is_parallel_analysis_with_the_scree():
    """Left unset, a decomposition keeps what beats Horn's parallel analysis, not every centred
    direction (which always lets some noise component correlate with a trait)."""
    X, _, _ = planted(n=12, p=8, k=2, noise=0.1, seed=5)
    dec = _decompose("pca", "default", X)
    n = dec["n_components"]
    assert n["method"].startswith("parallel analysis") and n["requested"] == "parallel"
    assert n["k"] == n["retained_by_test"] == 2 and len(n["eigenvalues"]) == 8
    # An explicit null still asks for the decomposer's own default: every centred direction.
    assert _decompose("pca", None, X)["n_components"]["k"] == 8


@pytest.mark.parametrize("k", [2, 3, 4])
def test_parallel_analysis_finds_the_planted_number(k):
    X, _, _ = planted(n=30, p=12, k=k, noise=0.1, seed=k)
    chosen, scree = dimensionality.choose("parallel", X, seed=0)
    assert chosen == k and scree["retained_by_test"] == k
    assert len(scree["parallel_thresholds"]) == len(scree["correlation_eigenvalues"]) == 12


def test_parallel_analysis_on_noise_retains_nothing_usually():
    retained = [dimensionality.choose("parallel", np.random.default_rng(s).normal(size=(12, 6)), seed=s)[1]["retained_by_test"]
                for s in range(20)]
    # Null data: the first eigenvalue beats its 95th-percentile threshold about 5% of the time.
    assert sum(r > 0 for r in retained) <= 3


# --- stability ------------------------------------------------------------------------------------

def test_congruence_and_alignment_undo_order_and_sign():
    rng = np.random.default_rng(2)
    R = rng.normal(size=(3, 7))
    candidate = np.vstack([-R[2], R[0], -R[1]]) + 1e-3 * rng.normal(size=(3, 7))
    aligned, phi = stability.align(R, candidate)
    np.testing.assert_allclose(aligned, R, atol=1e-2)
    assert np.all(phi > 0.999)
    assert stability.congruence(R[:1], R[:1])[0, 0] == pytest.approx(1.0)
    # Fewer components than the reference: the unmatched one is NaN, not invented.
    aligned, phi = stability.align(R, candidate[:2])
    assert np.isnan(phi).sum() == 1 and np.isnan(aligned).any()


def test_bootstrap_and_leave_one_out_on_a_clear_structure():
    X, _, _ = planted(n=20, p=8, k=2, noise=0.05)
    ref = PCA(n_components=2).fit(X).components_
    rng_noise = lambda rng: X + 0.05 * rng.normal(size=X.shape)  # noqa: E731
    fit = lambda M, k: PCA(n_components=k).fit(M).components_  # noqa: E731
    boot = stability.bootstrap(fit, rng_noise, ref, [f"t{j}" for j in range(8)], ["C1", "C2"], 100)
    assert boot["n"] == 100 and boot["congruence"]["C1"]["p05"] > 0.95
    lo, hi = boot["loadings_ci"]["C1"]["t0"]
    assert lo <= ref[0, 0] <= hi
    loso = stability.leave_one_source_out(fit, X, [f"s{i}" for i in range(20)], ref, ["C1", "C2"],
                                          max_k=lambda n, p: min(n - 1, p))
    assert set(loso["congruence"]["C1"]) == {f"s{i}" for i in range(20)} and loso["min"]["C2"] > 0.95
    assert stability.verdict(boot, loso, "C1") == "stable"


def test_noise_components_are_called_unstable():
    X = np.random.default_rng(5).normal(size=(6, 5))
    fit = lambda M, k: PCA(n_components=k).fit(M).components_  # noqa: E731
    ref = fit(X, 3)
    boot = stability.bootstrap(fit, lambda rng: X + 0.7 * rng.normal(size=X.shape), ref,
                               [f"t{j}" for j in range(5)], ["C1", "C2", "C3"], 100)
    loso = stability.leave_one_source_out(fit, X, [f"s{i}" for i in range(6)], ref, ["C1", "C2", "C3"],
                                          max_k=lambda n, p: min(n - 1, p))
    assert stability.verdict(boot, loso, "C3") == "unstable"
    assert stability.verdict(None, None, "C1") == "untested"


# --- per-sample alignment ---------------------------------------------------------------------------

def test_collect_aligns_documents_and_flags_non_mean_metrics():
    def log(values, docs=None):
        return [{"doc_id": d, "correct": v} for d, v in zip(docs or range(len(values)), values)]

    samples = {"base": {"a": log([1, 0, 0, 1]), "b": log([0.2, 0.4]), "c": log([1, 1])},
               "s1": {"a": log([1, 1, 0], docs=[3, 0, 1]), "b": log([0.6, 0.4])},  # s1 on a: doc 2 missing
               "s2": {"a": log([0, 0, 0, 0]), "b": log([0.2, 0.2])}}
    cells = {"base": {"a": {"value": 0.5}, "b": {"value": 0.9}}, "s1": {}, "s2": {}}
    out = collect(samples, ["s1", "s2"], ["a", "b", "c"], cells)
    np.testing.assert_array_equal(out.values["a"], [[1, 0, 1], [1, 0, 1], [0, 0, 0]])  # docs 0, 1, 3
    assert out.skipped == {"c": "no per-sample log for s1, s2"}
    assert "b" in out.not_mean and "a" not in out.not_mean  # base's b is 0.9, its samples average 0.3
    base, adapters = out.cell_means()
    np.testing.assert_allclose(base, [2 / 3, 0.3])
    np.testing.assert_allclose(adapters, [[2 / 3, 0.5], [0.0, 0.2]])
