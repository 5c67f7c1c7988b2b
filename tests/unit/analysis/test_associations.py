"""Trait-component associations: planted links are found, decoys are not; similarity versus transfer."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy import stats as st

from harness.analysis import stats
from harness.analysis.associations import correlate_traits, similarity_versus_transfer


def _nested(names, cols, M):
    """{name: {col: M[i, j]}} from an array, as results carry values."""
    return {s: {c: float(M[i, j]) for j, c in enumerate(cols)} for i, s in enumerate(names)}


def _decoys(rng, n_sources, n_traits, n_columns):
    src = [f"s{i}" for i in range(n_sources)]
    X, C = rng.normal(size=(n_sources, n_traits)), rng.normal(size=(n_sources, n_columns))
    traits = _nested(src, [f"t{k}" for k in range(n_traits)], X)
    return src, X, C, traits, _nested(src, [f"C{k + 1}" for k in range(n_columns)], C)


def test_planted_trait_is_found_among_decoys():
    rng = np.random.default_rng(0)
    src, X, C, traits, columns = _decoys(rng, 20, 9, 3)
    planted = 0.8 * C[:, 0] + 0.6 * rng.normal(size=20)  # correlation about 0.8
    for i, s in enumerate(src):
        traits[s]["planted"] = float(planted[i])
    res = correlate_traits(traits, columns, kind="component")
    top = res["tests"][0]
    print(f"\nplanted: r={top['spearman']:.2f} p={top['p']:.2g} q={top['q']:.2g}; "
          f"decoys with q < 0.05: {sum(t['q'] < 0.05 for t in res['tests'][1:])} of {len(res['tests']) - 1}")
    assert (top["trait"], top["component"]) == ("planted", "C1")
    assert top["q"] < 0.05 and top["n"] == 20 and not top["exact"]
    assert len(res["tests"]) == 30 and res["skipped"] == []


def test_null_false_positive_rates():
    """All traits independent of all columns: BH keeps the chance of any discovery near 5%, and raw
    p-values are uniform (5% below 0.05)."""
    n_sims, n_tests = 400, 30
    rng = np.random.default_rng(12345)
    any_q = any_p = 0
    raw = []
    for sim in range(n_sims):
        _, _, _, traits, columns = _decoys(rng, 12, 10, 3)
        res = correlate_traits(traits, columns, kind="component", max_permutations=2000, seed=sim)
        p = np.array([t["p"] for t in res["tests"]])
        any_q += any(t["q"] < 0.05 for t in res["tests"])
        any_p += (p < 0.05).any()
        raw.append(p)
    raw = np.concatenate(raw)
    fwer, per_test = any_q / n_sims, (raw < 0.05).mean()
    print(f"\nnull, {n_sims} simulations x {n_tests} tests (n=12): share with any q < 0.05 = {fwer:.4f}; "
          f"with any raw p < 0.05 = {any_p / n_sims:.4f}; per-test share of p < 0.05 = {per_test:.4f}")
    assert len(raw) == n_sims * n_tests
    # BH under the global null has a family-wise error of exactly its level for independent tests,
    # so the measured share scatters around 0.05: allow binomial error (one-sided 99%).
    assert fwer <= 0.05 + 2.33 * math.sqrt(0.05 * 0.95 / n_sims)
    assert any_p / n_sims > 0.5  # without the correction most simulations would "find" something
    assert abs(per_test - 0.05) <= 4 * math.sqrt(0.05 * 0.95 / len(raw))


def test_small_n_is_exact_and_reports_its_floor():
    traits = {s: {"a": v, "flat": 1.0, "sparse": (1.0 if s in "wx" else None)} for s, v in zip("wxyz", [1, 2, 3, 5])}
    columns = {s: {"C1": v} for s, v in zip("wxyz", [2.0, 1.0, 4.0, 8.0])}
    res = correlate_traits(traits, columns, kind="component")
    [t] = res["tests"]
    assert t["exact"] and t["n"] == 4 and res["min_p"] == pytest.approx(1 / 12)
    assert t["spearman"] == pytest.approx(0.8) and t["p"] >= 1 / 12
    # Shuffling the column rather than the trait gives the same exact null distribution.
    assert t["p"] == pytest.approx(stats.permutation_test([1, 2, 3, 5], [2.0, 1.0, 4.0, 8.0]).p[0])
    assert {s["trait"]: s["reason"] for s in res["skipped"]} == {
        "flat": "constant across sources", "sparse": "2 source(s) with a value, needs at least 3"}
    assert "permutation" in res["method"]


def test_missing_values_sorting_q_and_json():
    rng = np.random.default_rng(5)
    src, X, C, traits, columns = _decoys(rng, 9, 4, 2)
    traits["s0"]["t1"] = None
    columns["s3"]["C2"] = None
    del columns["s4"]["C1"]
    traits["extra"] = {"t0": 1.0}  # a source with no columns is not counted
    res = correlate_traits(traits, columns, kind="target", max_permutations=500)
    by = {(t["trait"], t["target"]): t for t in res["tests"]}
    assert by[("t1", "C2")]["n"] == 7 and by[("t0", "C1")]["n"] == 8 and by[("t2", "C2")]["n"] == 8
    ok = [i for i, s in enumerate(src) if s not in ("s0", "s3")]
    assert by[("t1", "C2")]["spearman"] == pytest.approx(st.spearmanr(X[ok, 1], C[ok, 1]).statistic)
    assert by[("t1", "C2")]["pearson"] == pytest.approx(st.pearsonr(X[ok, 1], C[ok, 1]).statistic)
    keys = [(t["p"], t["trait"]) for t in res["tests"]]
    assert keys == sorted(keys) and len(keys) == 8
    np.testing.assert_allclose([t["q"] for t in res["tests"]], stats.bh_qvalues([t["p"] for t in res["tests"]]))
    json.dumps(res, allow_nan=False)
    with pytest.raises(ValueError):
        correlate_traits(traits, columns, kind="components")


def _pairs(S, T, names_s, names_t):
    return _nested(names_s, names_t, S), _nested(names_s, names_t, T)


def test_similarity_link_detected_and_null_covers_zero():
    rng = np.random.default_rng(0)
    src, tgt = [f"s{i}" for i in range(12)], [f"t{j}" for j in range(10)]
    S = rng.uniform(size=(12, 10))
    T = 0.5 * S + 0.1 * rng.normal(size=(12, 10)) + 0.1 * rng.normal(size=(12, 1))
    res = similarity_versus_transfer(*_pairs(S, T, src, tgt))
    assert res["ci"][0] > 0 and res["p"] < 0.01 and (res["n_pairs"], res["n_sources"]) == (120, 12)
    assert res["spearman"] == pytest.approx(st.spearmanr(S.ravel(), T.ravel()).statistic)
    assert res["pearson"] == pytest.approx(st.pearsonr(S.ravel(), T.ravel()).statistic)

    null = similarity_versus_transfer(*_pairs(S, rng.normal(size=(12, 10)), src, tgt))
    assert null["ci"][0] < 0 < null["ci"][1] and null["p"] > 0.05
    json.dumps(null, allow_nan=False)


def test_exclude_same_drops_exactly_the_in_domain_pairs():
    rng = np.random.default_rng(1)
    names = ["a", "b", "c", "d", "e", "f"]
    targets = names + ["x", "y"]
    S, T = rng.uniform(size=(6, 8)), rng.normal(size=(6, 8))
    S[np.arange(6), np.arange(6)] = 1.0  # in-domain: maximally similar, best transfer
    T[np.arange(6), np.arange(6)] = 5.0
    sim, tr = _pairs(S, T, names, targets)
    tr["b"]["x"] = None
    full = similarity_versus_transfer(sim, tr, n_boot=200, n_permutations=200)
    cut = similarity_versus_transfer(sim, tr, exclude_same=True, n_boot=200, n_permutations=200)
    assert (full["n_pairs"], cut["n_pairs"]) == (47, 41) and cut["exclude_same"]
    for s in names:  # the same as removing the diagonal by hand
        sim[s][s] = None
    by_hand = similarity_versus_transfer(sim, tr, n_boot=200, n_permutations=200)
    assert by_hand["spearman"] == cut["spearman"] and by_hand["n_pairs"] == 41
    assert full["spearman"] > cut["spearman"]


def test_exclude_same_null_keeps_its_level():
    """No link between cross-domain similarity and transfer, but large in-domain transfer and
    sources that differ in overall similarity and transfer (independently): excluding the
    in-domain pairs must give a test that rejects at most 5% of the time. Masking the similarity
    side only let each source's in-domain transfer into the shuffles and rejected about 15%."""
    n_sims, n, alpha = 240, 8, 0.05
    rng = np.random.default_rng(7)
    names = [f"task{i}" for i in range(n)]
    rejected = 0
    for sim in range(n_sims):
        S = rng.uniform(size=(n, n)) + rng.normal(size=(n, 1))
        T = rng.normal(size=(n, n)) + 1.5 * rng.normal(size=(n, 1))
        S[np.arange(n), np.arange(n)] = S.max() + 1.0  # in-domain: the most similar, and
        T[np.arange(n), np.arange(n)] = 10.0            # far the best transfer
        res = similarity_versus_transfer(*_pairs(S, T, names, names), exclude_same=True,
                                         n_boot=20, n_permutations=199, seed=sim)
        assert res["n_pairs"] == n * (n - 1)
        rejected += res["p"] <= alpha
    rate = rejected / n_sims
    print(f"\nexclude_same null, {n_sims} simulations of {n}x{n}: false-positive rate {rate:.3f}")
    assert rate <= alpha + 2 * math.sqrt(alpha * (1 - alpha) / n_sims)


def test_cluster_bootstrap_resamples_sources():
    """Few sources with many targets each, similarity and transfer both driven by a per-source
    offset: 240 pairs but only 6 independent units. The offsets' rank correlation is 0.6, which 6
    sources cannot tell from chance; a pair-level analysis would call it certain."""
    rng = np.random.default_rng(2)
    n_s, n_t = 6, 40
    src, tgt = [f"s{i}" for i in range(n_s)], [f"t{j}" for j in range(n_t)]
    offset = np.linspace(-1, 1, n_s)
    S = offset[:, None] + 0.3 * rng.normal(size=(n_s, n_t))
    T = offset[[0, 3, 1, 5, 2, 4], None] + 0.3 * rng.normal(size=(n_s, n_t))
    res = similarity_versus_transfer(*_pairs(S, T, src, tgt), n_boot=1000, n_permutations=1000)
    assert (res["n_sources"], res["n_pairs"]) == (n_s, n_s * n_t)
    # What resampling pairs rather than sources would claim.
    naive = [st.spearmanr(S.ravel()[i], T.ravel()[i]).statistic for i in rng.integers(0, S.size, (300, S.size))]
    naive_ci = np.quantile(naive, [0.025, 0.975])
    width = res["ci"][1] - res["ci"][0]
    print(f"\nr={res['spearman']:.2f}: cluster CI [{res['ci'][0]:.2f}, {res['ci'][1]:.2f}], p={res['p']:.3f}; "
          f"pair bootstrap CI [{naive_ci[0]:.2f}, {naive_ci[1]:.2f}]")
    assert naive_ci[0] > 0.3  # pairs treated as independent: a "clear" link
    assert width > 3 * (naive_ci[1] - naive_ci[0])
    assert res["ci"][0] < 0 < res["ci"][1] and res["p"] > 0.05


def test_similarity_with_too_few_sources_has_no_interval():
    sim = {"a": {"x": 0.1, "y": 0.5, "z": 0.9}, "b": {"x": 0.2, "y": 0.4, "z": None}}
    tr = {"a": {"x": 1.0, "y": 2.0, "z": 3.0}, "b": {"x": 0.0, "y": 1.0, "w": 2.0}, "c": {"x": 1.0}}
    res = similarity_versus_transfer(sim, tr)
    assert (res["n_pairs"], res["n_sources"]) == (5, 2)
    assert res["ci"] == [None, None] and res["p"] is None and res["spearman"] is not None
