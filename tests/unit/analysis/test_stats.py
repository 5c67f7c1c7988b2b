"""harness.analysis.stats against scipy, and the permutation p-values against their own definition."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as st

from harness.analysis import stats


def _abs_r(a, b, axis=-1):
    """|Pearson r| along ``axis``, vectorised, for scipy.stats.permutation_test."""
    a = a - a.mean(axis, keepdims=True)
    b = b - b.mean(axis, keepdims=True)
    return np.abs((a * b).sum(axis) / np.sqrt((a * a).sum(axis) * (b * b).sum(axis)))


def _abs_rho(a, b, axis=-1):
    return _abs_r(st.rankdata(a, axis=axis), st.rankdata(b, axis=axis), axis)


def test_correlations_equal_scipy_with_and_without_ties():
    rng = np.random.default_rng(0)
    for x, y in [(rng.normal(size=15), rng.normal(size=15)),
                 (rng.integers(0, 4, 20).astype(float), rng.integers(0, 3, 20).astype(float))]:
        assert stats.spearman(x, y) == pytest.approx(st.spearmanr(x, y).statistic, abs=1e-12)
        assert stats.pearson(x, y) == pytest.approx(st.pearsonr(x, y).statistic, abs=1e-12)
    np.testing.assert_array_equal(stats.rankdata([3, 1, 3, 2]), [3.5, 1, 3.5, 2])


def test_correlations_are_nan_when_undefined():
    assert math.isnan(stats.spearman([1, 1, 1, 1], [1, 2, 3, 4]))
    assert math.isnan(stats.pearson([0.1, 0.1, 0.1], [1, 2, 3]))  # constant, even with float dust
    assert math.isnan(stats.pearson([1, 2], [2, 1]))
    assert math.isnan(stats.spearman([1, 2], [1, 2]))


@pytest.mark.parametrize("n", [4, 5, 6])
@pytest.mark.parametrize("method", ["spearman", "pearson"])
def test_exact_p_equals_scipy_pairings(n, method):
    rng = np.random.default_rng(n)
    x, Y = rng.normal(size=n), rng.normal(size=(n, 3))
    Y[:, 2] = x + 0.3 * rng.normal(size=n)  # a correlated column, so small p-values are covered too
    if n == 5:
        x = np.array([1.0, 2.0, 2.0, 3.0, 5.0])  # ties: average ranks, and an asymmetric null
    res = stats.permutation_test(x, Y, method=method)
    assert res.exact and res.n_permutations == math.factorial(n)
    statistic = _abs_rho if method == "spearman" else _abs_r
    for j in ([2] if n == 6 else range(3)):  # scipy takes seconds per column at n = 6
        ref = st.permutation_test((x, Y[:, j]), statistic, vectorized=True, permutation_type="pairings",
                                  n_resamples=np.inf, alternative="greater")
        assert res.p[j] == pytest.approx(ref.pvalue, abs=1e-12)


def test_min_p_for_four_sources_is_one_twelfth():
    x = np.arange(4.0)
    res = stats.permutation_test(x, np.column_stack([x, -x, x**2]))
    assert res.exact and res.min_p == pytest.approx(1 / 12)
    np.testing.assert_allclose(res.p, 1 / 12)  # a perfect correlation reaches the floor, no lower
    assert stats.permutation_test(np.arange(3.0), np.arange(3.0)).min_p == pytest.approx(1 / 3)


def test_monte_carlo_p_close_to_exact_and_never_zero():
    rng = np.random.default_rng(7)
    x = rng.normal(size=7)
    Y = np.column_stack([x, x + 0.5 * rng.normal(size=7), rng.normal(size=7), rng.normal(size=7)])
    exact = stats.permutation_test(x, Y, max_permutations=5040)
    mc = stats.permutation_test(x, Y, max_permutations=5000, seed=3)
    assert exact.exact and not mc.exact and mc.n_permutations == 5000
    assert mc.min_p == pytest.approx(1 / 5001)
    np.testing.assert_allclose(mc.p, exact.p, atol=0.02)
    assert (mc.p >= 1 / 5001).all() and mc.p[0] > 0  # perfect correlation: small, never 0


def test_columns_are_tested_independently_and_reproducibly():
    rng = np.random.default_rng(1)
    x, Y = rng.normal(size=12), rng.normal(size=(12, 5))
    Y[:, 4] = 3.0  # constant: no correlation, no p
    both = stats.permutation_test(x, Y, method="pearson", max_permutations=3000, seed=5)
    assert np.isnan(both.r[4]) and np.isnan(both.p[4])
    for j in range(4):
        one = stats.permutation_test(x, Y[:, j], method="pearson", max_permutations=3000, seed=5)
        assert one.p[0] == both.p[j] and one.r[0] == pytest.approx(st.pearsonr(x, Y[:, j]).statistic)
    again = stats.permutation_test(x, Y, method="pearson", max_permutations=3000, seed=5)
    np.testing.assert_array_equal(again.p, both.p)
    with pytest.raises(ValueError):
        stats.permutation_test(x, np.full((12, 1), np.nan))


def test_bh_equals_scipy_and_handles_nan():
    rng = np.random.default_rng(2)
    p = np.concatenate([rng.uniform(size=40), rng.uniform(0, 0.01, 10), [0.5, 0.5, 1.0]])
    q = stats.bh_qvalues(p)
    np.testing.assert_allclose(q, st.false_discovery_control(p), rtol=0, atol=1e-15)
    order = np.argsort(p)
    assert (np.diff(q[order]) >= 0).all() and (q <= 1).all() and (q >= p).all()

    with_nan = p.copy()
    with_nan[[3, 17]] = np.nan
    qn = stats.bh_qvalues(with_nan)
    assert np.isnan(qn[[3, 17]]).all()
    ok = ~np.isnan(with_nan)  # NaNs do not count in m
    np.testing.assert_allclose(qn[ok], st.false_discovery_control(with_nan[ok]), atol=1e-15)
    assert np.isnan(stats.bh_qvalues([np.nan, np.nan])).all() and len(stats.bh_qvalues([])) == 0


def handwritten_bh(p):
    """bh_qvalues as it was before it called scipy: the step-up formula over the non-NaN entries."""
    p = np.asarray(p, dtype=float)
    q = np.full(p.shape, np.nan)
    ok = ~np.isnan(p)
    m = int(ok.sum())
    if m == 0:
        return q
    order = np.argsort(p[ok])
    scaled = p[ok][order] * m / np.arange(1, m + 1)
    out = np.empty(m)
    out[order] = np.minimum(np.minimum.accumulate(scaled[::-1])[::-1], 1.0)
    q[ok] = out
    return q


@pytest.mark.parametrize("seed", range(20))
def test_bh_equals_its_handwritten_formula_with_nans_and_ties(seed):
    rng = np.random.default_rng(seed)
    m = int(rng.integers(1, 60))
    p = [rng.uniform(size=m), rng.uniform(0, 0.05, m), np.round(rng.uniform(size=m), 1)][seed % 3]  # rounded: ties
    p[rng.uniform(size=m) < 0.2] = np.nan
    p[rng.uniform(size=m) < 0.1] = 1.0
    q = stats.bh_qvalues(p)
    old = handwritten_bh(p)
    np.testing.assert_array_equal(np.isnan(q), np.isnan(p))
    # scipy scales by p * (m / i), the old formula by (p * m) / i: a rounding apart at most.
    np.testing.assert_allclose(q, old, rtol=1e-14, atol=0)
    # One family whatever the shape; None is a test that was not run, like NaN.
    np.testing.assert_allclose(stats.bh_qvalues(p.reshape(1, -1)), old.reshape(1, -1), rtol=1e-14, atol=0)
    as_list = [None if np.isnan(v) else float(v) for v in p]
    np.testing.assert_allclose(stats.bh_qvalues(as_list), old, rtol=1e-14, atol=0)


def test_bh_keeps_the_edge_cases_of_its_handwritten_formula():
    for p in ([], [np.nan], [None, None], [0.3], [0.0, 0.0, 1.0], [[0.01, np.nan], [0.04, 0.5]]):
        q, old = stats.bh_qvalues(p), handwritten_bh(p)
        assert q.shape == old.shape
        np.testing.assert_allclose(q, old, rtol=1e-14, atol=0)


@pytest.mark.parametrize("n01,n10,same", [(7, 2, 20), (0, 5, 3), (13, 13, 0), (1, 0, 9), (30, 11, 50)])
def test_mcnemar_equals_binomtest_on_discordant_pairs(n01, n10, same):
    a = np.array([0] * n01 + [1] * n10 + [1] * same)
    b = np.array([1] * n01 + [0] * n10 + [1] * same)
    res = stats.mcnemar_exact(a, b)
    assert (res["n01"], res["n10"]) == (n01, n10)
    assert res["p"] == pytest.approx(st.binomtest(n01, n01 + n10, 0.5).pvalue, rel=1e-12)
    assert stats.mcnemar_exact([1, 0, 1], [1, 0, 1])["p"] == 1.0  # no discordant pair


def test_mcnemar_equals_its_doubled_binomial_tail_for_every_count_to_30():
    for n01 in range(31):
        for n10 in range(31):
            a = np.array([0] * n01 + [1] * n10 + [1, 0])  # one concordant pair of each kind
            b = np.array([1] * n01 + [0] * n10 + [1, 0])
            n = n01 + n10
            # The formula mcnemar_exact used before it called binomtest.
            old = 1.0 if n == 0 else min(1.0, 2.0 * float(st.binom.cdf(min(n01, n10), n, 0.5)))
            res = stats.mcnemar_exact(a, b)
            assert (res["n01"], res["n10"]) == (n01, n10)
            # Equal by symmetry of Binomial(n, 1/2); scipy sums the tails apart, so up to rounding.
            assert res["p"] == pytest.approx(old, rel=1e-15, abs=0), (n01, n10)


def test_paired_test_picks_the_method_and_reports_the_effect():
    rng = np.random.default_rng(3)
    a = rng.integers(0, 2, 400)
    b = a.copy()
    b[np.flatnonzero(a == 0)[:40]] = 1  # b fixes 40 of a's errors and breaks none
    res = stats.paired_test(a, b)
    assert res["method"] == "mcnemar" and res["n"] == 400 and (res["n01"], res["n10"]) == (40, 0)
    assert res["delta"] == pytest.approx(0.1) and res["p"] < 1e-6
    assert res["ci"][0] > 0 and res["ci"][0] <= res["delta"] <= res["ci"][1]

    x = rng.normal(size=60)
    res = stats.paired_test(x, x + 0.5 + 0.3 * rng.normal(size=60))
    assert res["method"] == "paired_bootstrap" and res["p"] < 0.01 and res["ci"][0] > 0
    assert res["p"] >= 1 / 2001  # the bootstrap p is never 0

    for same in (a, x):
        res = stats.paired_test(same, same)
        assert res["p"] == 1.0 and res["delta"] == 0.0 and res["ci"] == [0.0, 0.0]
    with pytest.raises(ValueError):
        stats.paired_test([1, 0], [1])


def test_paired_bootstrap_ci_matches_normal_theory_for_large_n():
    rng = np.random.default_rng(4)
    a = rng.normal(size=2000)
    b = a + 0.1 + rng.normal(size=2000)
    res = stats.paired_bootstrap(a, b, n_boot=4000, seed=1)
    d = b - a
    half = 1.96 * d.std(ddof=1) / math.sqrt(len(d))
    assert res["ci"][0] == pytest.approx(d.mean() - half, abs=0.15 * half)
    assert res["ci"][1] == pytest.approx(d.mean() + half, abs=0.15 * half)
