"""Predicting transfer from traits: the ridge against scikit-learn, leave-one-source-out on planted
worlds (real signal, pure noise), no leakage of the held-out source into standardisation, missing and
constant traits, and ranking candidates for a target."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.impute import SimpleImputer
from sklearn.linear_model import Ridge
from sklearn.model_selection import LeaveOneOut, cross_val_predict
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from harness.analysis.applicability import NotApplicable
from harness.analysis.predict import (
    RELATIVE_ALPHAS,
    choose_alpha,
    fit_predict,
    leave_one_source_out,
    recommend,
    ridge,
    transfer_bounds,
)


def as_dicts(A: np.ndarray, B: np.ndarray, sim: np.ndarray, T: np.ndarray):
    """source_traits, pair_traits, transfer from traits a, b (n,), a pair trait sim (n, m) and
    transfer T (n, m); NaN becomes None."""
    val = lambda x: None if np.isnan(x) else float(x)  # noqa: E731
    src, tgt = [f"s{i}" for i in range(len(T))], [f"t{j}" for j in range(T.shape[1])]
    traits = {s: {"a": val(A[i]), "b": val(B[i])} for i, s in enumerate(src)}
    pairs = {"sim": {s: {t: val(sim[i, j]) for j, t in enumerate(tgt)} for i, s in enumerate(src)}}
    transfer = {s: {t: val(T[i, j]) for j, t in enumerate(tgt)} for i, s in enumerate(src)}
    return traits, pairs, transfer


def planted(seed: int, n: int = 12, m: int = 8, noise_traits: bool = False):
    """Transfer rows linear in two traits (target-specific weights) and a pair trait, plus small
    noise; with ``noise_traits`` the traits handed over are fresh noise unrelated to transfer."""
    rng = np.random.default_rng(seed)
    a, b, sim = rng.normal(size=n), rng.normal(size=n), rng.normal(size=(n, m))
    T = (np.outer(a, rng.normal(size=m)) + np.outer(b, rng.normal(size=m)) + 0.5 * sim
         + 0.05 * rng.normal(size=(n, m)))
    if noise_traits:
        a, b, sim = rng.normal(size=n), rng.normal(size=n), rng.normal(size=(n, m))
    return as_dicts(a, b, sim, T)


# -- the ridge ------------------------------------------------------------------------------------

def test_ridge_without_penalty_recovers_an_exact_linear_relation():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(20, 3)) * [1.0, 10.0, 0.1] + [0.0, 5.0, -2.0]
    truth = lambda X: 1.5 + X @ [2.0, -1.0, 0.5]  # noqa: E731
    X_new = rng.normal(size=(5, 3))
    for alpha in (0.0, 1e-10):
        pred, kept, used = fit_predict(X, truth(X), X_new, alpha, select=True)  # 20 rows, 3 features: alpha kept
        assert kept.all() and used == alpha
        np.testing.assert_allclose(pred, truth(X_new), atol=1e-6)
    b0, b = ridge(X, truth(X), 0.0)
    assert b0 == pytest.approx(1.5) and np.allclose(b, [2.0, -1.0, 0.5])


@pytest.mark.parametrize("shape", [(15, 4), (6, 10)])  # more rows than features, and fewer
def test_ridge_matches_scikit_learn_on_standardised_features(shape):
    rng = np.random.default_rng(shape[1])
    X, y = rng.normal(size=shape) * 3 + 1, rng.normal(size=shape[0])
    Z = StandardScaler().fit_transform(X)
    theirs = Ridge(alpha=1.0).fit(Z, y)
    b0, b = ridge(Z, y, 1.0)
    assert b0 == pytest.approx(theirs.intercept_, abs=1e-8)
    np.testing.assert_allclose(b, theirs.coef_, atol=1e-8)
    X_new = rng.normal(size=(3, shape[1]))
    ours = fit_predict(X, y, X_new, 1.0)[0]
    theirs = make_pipeline(StandardScaler(), Ridge(alpha=1.0)).fit(X, y).predict(X_new)
    np.testing.assert_allclose(ours, theirs, atol=1e-8)


def test_negative_alpha_is_refused():
    with pytest.raises(ValueError, match="alpha"):
        ridge(np.eye(3), np.ones(3), -1.0)


# -- leave one source out -------------------------------------------------------------------------

def test_planted_traits_predict_transfer_rows_better_than_the_mean_row():
    result = leave_one_source_out(*planted(0))
    assert result["score"] > 0.8 and result["score"] > result["baseline_score"] + 0.3
    assert result["features"] == ["source:a", "source:b", "pair:sim"]
    assert result["n_sources"] == 12 and set(result["rmse"]) == {f"t{j}" for j in range(8)}
    assert all(p["spearman"] > 0.5 for p in result["per_source"].values())
    json.dumps(result, allow_nan=False)  # JSON-friendly as it stands


def test_noise_traits_do_not_beat_the_mean_row():
    results = [leave_one_source_out(*planted(seed, noise_traits=True)) for seed in range(8)]
    score = np.mean([r["score"] for r in results])
    baseline = np.mean([r["baseline_score"] for r in results])
    assert score < 0.5 and score - baseline < 0.25
    assert not all(r["score"] > r["baseline_score"] for r in results)


def test_standardisation_uses_the_training_sources_only():
    # One feature; the held-out source (last) is a far outlier in it. Standardising with its value
    # included would change the scale the penalty acts on, hence the prediction.
    x = np.array([0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 100.0])
    y = np.array([0.1, 0.9, 2.2, 2.8, 4.1, 5.0, 7.0])
    ys = np.column_stack([y, -y, y ** 2 / 10])
    traits, pairs, transfer = as_dicts(x, np.full(7, np.nan), np.full((7, 3), np.nan), ys)
    got = leave_one_source_out(traits, pairs, transfer)["per_source"]["s6"]["predicted"]
    for j in range(3):
        honest = make_pipeline(StandardScaler(), Ridge(alpha=1.0)).fit(x[:6, None], ys[:6, j])
        assert got[f"t{j}"] == pytest.approx(honest.predict([[100.0]])[0], abs=1e-10)
        leaky = Ridge(alpha=1.0).fit(StandardScaler().fit(x[:, None]).transform(x[:6, None]), ys[:6, j])
        leaked = leaky.predict(StandardScaler().fit(x[:, None]).transform([[100.0]]))[0]
        assert abs(got[f"t{j}"] - leaked) > 0.1  # so the check above would catch leakage


def test_missing_values_are_mean_imputed_and_constant_or_empty_features_dropped():
    rng = np.random.default_rng(3)
    n, m = 8, 4
    a, b, sim = rng.normal(size=n), np.full(n, 0.3), rng.normal(size=(n, m))  # b is constant
    a[[1, 5]] = np.nan
    sim[2, 0] = sim[6, 1] = np.nan
    T = rng.normal(size=(n, m))
    T[4, 2] = np.nan  # a failed cell: target t2 is fitted on the other sources
    traits, pairs, transfer = as_dicts(a, b, sim, T)
    traits["s0"]["empty"] = None  # a trait no training source has a value for
    del traits["s7"]  # a source with no source traits at all
    result = leave_one_source_out(traits, pairs, transfer)
    assert result["features"] == ["source:a", "pair:sim"]  # not the constant b, not the empty one
    a[7] = np.nan
    for held in (1, 4, 7):  # held out: missing trait, missing transfer cell, no traits
        for j in range(m):
            train = [i for i in range(n) if i != held and not np.isnan(T[i, j])]
            X = np.column_stack([a, sim[:, j]])
            pipe = make_pipeline(SimpleImputer(), StandardScaler(), Ridge(alpha=1.0)).fit(X[train], T[train, j])
            expected = pipe.predict(X[[held]])[0]
            assert result["per_source"][f"s{held}"]["predicted"][f"t{j}"] == pytest.approx(expected, abs=1e-10)
    assert result["per_source"]["s4"]["actual"]["t2"] is None
    assert result["per_source"]["s4"]["spearman"] is not None  # over the three measured targets
    json.dumps(result, allow_nan=False)


def test_spearman_is_none_when_undefined():
    rng = np.random.default_rng(4)
    result = leave_one_source_out(*as_dicts(rng.normal(size=5), rng.normal(size=5), rng.normal(size=(5, 2)),
                                            rng.normal(size=(5, 2))))
    assert all(p["spearman"] is None and p["baseline_spearman"] is None for p in result["per_source"].values())
    assert result["score"] is None and result["baseline_score"] is None
    assert all(v is not None for v in result["rmse"].values())


def test_fewer_than_three_sources_is_refused():
    traits, pairs, transfer = planted(0, n=2)
    with pytest.raises(NotApplicable, match="at least 3 fine-tuned sources"):
        leave_one_source_out(traits, pairs, transfer)
    with pytest.raises(ValueError, match="at least 3 fine-tuned sources"):
        recommend(traits, pairs, transfer, "t0", {}, {})


# -- recommend ------------------------------------------------------------------------------------

def one_target_world(seed: int, noise: float = 0.1, n: int = 12):
    """Transfer to target T is a + b/2 + 0.8 sim + noise; a candidate "best" sits at the top corner
    of the traits, "worst" at the bottom. Returns the data and the candidates' true transfer."""
    rng = np.random.default_rng(seed)
    a, b, sim = rng.uniform(-1, 1, n), rng.uniform(-1, 1, n), rng.uniform(0, 1, (n, 1))
    f = lambda a, b, s: a + 0.5 * b + 0.8 * s  # noqa: E731
    traits, pairs, transfer = as_dicts(a, b, sim, f(a, b, sim[:, 0])[:, None] + noise * rng.normal(size=(n, 1)))
    candidates = {"best": {"a": 1.0, "b": 1.0}, "worst": {"a": -1.0, "b": -1.0}}
    candidate_pairs = {"sim": {"best": 1.0, "worst": 0.0}}
    return traits, pairs, transfer, candidates, candidate_pairs, {"best": f(1, 1, 1), "worst": f(-1, -1, 0)}


def test_recommend_ranks_the_best_candidate_first_with_an_interval_around_its_truth():
    traits, pairs, transfer, candidates, candidate_pairs, truth = one_target_world(0)
    ranked = recommend(traits, pairs, transfer, "t0", candidates, candidate_pairs)
    assert [r["source"] for r in ranked][0] == "best" and ranked[-1]["source"] == "worst"
    expected = [r["expected"] for r in ranked]
    assert len(ranked) == 14 and expected == sorted(expected, reverse=True)
    best = ranked[0]
    assert best["fine_tuned"] is False and best["measured"] is None and best["expected"] == best["predicted"]
    assert best["interval"][0] <= truth["best"] <= best["interval"][1]
    assert best["interval"] == pytest.approx([best["predicted"] - 1.645 * best["stderr"],
                                              best["predicted"] + 1.645 * best["stderr"]])
    loso = leave_one_source_out(traits, pairs, transfer)["per_source"]
    for r in ranked:
        if r["fine_tuned"]:  # measured, and predicted without itself, as leave-one-source-out does
            assert r["measured"] == transfer[r["source"]]["t0"] == r["expected"]
            assert r["predicted"] == pytest.approx(loso[r["source"]]["predicted"]["t0"], abs=1e-12)
    json.dumps(ranked, allow_nan=False)


def test_recommend_is_seeded_and_its_intervals_cover_near_nominally():
    data = one_target_world(0)
    assert recommend(*data[:3], "t0", *data[3:5], seed=1) == recommend(*data[:3], "t0", *data[3:5], seed=1)
    hits = 0
    for seed in range(12):
        traits, pairs, transfer, candidates, candidate_pairs, truth = one_target_world(seed)
        for r in recommend(traits, pairs, transfer, "t0", candidates, candidate_pairs, n_boot=30, seed=seed):
            if not r["fine_tuned"]:
                hits += r["interval"][0] <= truth[r["source"]] <= r["interval"][1]
    assert hits / 24 >= 0.75  # nominally 90%; the corners are extrapolations, where ridge shrinks


def test_recommend_refuses_a_candidate_named_like_a_fine_tuned_source():
    traits, pairs, transfer, candidates, candidate_pairs, _ = one_target_world(0)
    with pytest.raises(ValueError, match="s3"):
        recommend(traits, pairs, transfer, "t0", {"s3": {"a": 0.0}}, {})


def test_recommend_needs_three_measured_sources_on_the_target():
    traits, pairs, transfer, *_ = one_target_world(0, n=4)
    transfer["s0"]["t0"] = transfer["s1"]["t0"] = None
    with pytest.raises(ValueError, match="at least 3 fine-tuned sources with a measured transfer to 't0', got 2"):
        recommend(traits, pairs, transfer, "t0", {}, {})


# -- few sources, many traits: bounded, penalised, and honest about it -------------------------------

BASE = 0.64  # the base model's accuracy on the target: transfer lies in [-0.64, +0.36]


def few_sources_world(seed: int, noise: float, n: int = 6, p: int = 30):
    """Six sources and 30 traits, as in a small real study: five traits nearly constant over the
    sources but the last (balanced class entropies, say), so standardising puts that source 100
    standard deviations out; transfer is noise around 0 (sd ``noise``). A candidate sits as far out."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, p))
    X[:, :5] = 1.0 + 1e-3 * rng.normal(size=(n, 5))
    X[-1, :5] = 0.9
    y = noise * rng.normal(size=n)
    traits = {f"s{i}": {f"f{k}": float(X[i, k]) for k in range(p)} for i in range(n)}
    transfer = {f"s{i}": {"sst2": float(y[i])} for i in range(n)}
    candidate = {"c": {f"f{k}": (0.8 if k < 5 else float(v)) for k, v in enumerate(rng.normal(size=p))}}
    return X, y, traits, transfer, candidate


def test_metric_ranges_bound_transfer():
    assert transfer_bounds("acc,none", BASE) == pytest.approx((-0.64, 0.36))
    assert transfer_bounds("exact_match,flexible-extract", 0.25) == pytest.approx((-0.25, 0.75))
    assert transfer_bounds("mcc,none", 0.1) == pytest.approx((-1.1, 0.9))
    assert transfer_bounds("perplexity,none", 12.0) is None and transfer_bounds("acc,none", None) is None


def test_penalty_is_chosen_by_leave_one_out_when_traits_outnumber_sources():
    X, y, *_ = few_sources_world(2, 0.05)
    Z = StandardScaler().fit_transform(X[:5])
    grid = np.append(RELATIVE_ALPHAS * Z.size, 1.0)
    loo_mse = [np.mean((cross_val_predict(Ridge(alpha=a), Z, y[:5], cv=LeaveOneOut()) - y[:5]) ** 2) for a in grid]
    assert choose_alpha(Z, y[:5], 1.0) == pytest.approx(grid[int(np.argmin(loo_mse))])
    assert choose_alpha(Z[:, :3], y[:5], 1.0) == 1.0  # more sources than features: the registry's alpha


@pytest.mark.parametrize("seed, noise", [(0, 0.05), (2, 0.25)])
def test_few_sources_many_traits_stay_within_what_accuracy_allows(seed, noise):
    """The blow-up: a fixed penalty fitted to 5 sources over 30 traits predicts the outlying source
    far outside [-base, 1 - base] (-1.24 and -0.88 here). The penalty chosen by leave-one-out pulls
    the first back by itself; clipping keeps the second (where leave-one-out prefers a small
    penalty) and every interval inside what the metric allows."""
    X, y, traits, transfer, candidate = few_sources_world(seed, noise)
    lo, hi = bounds = transfer_bounds("acc,none", BASE)
    unbounded = fit_predict(X[:5], y[:5], X[5:], 1.0)[0][0]  # the old prediction for s5
    assert not lo <= unbounded <= hi
    chosen, _, penalty = fit_predict(X[:5], y[:5], X[5:], 1.0, select=True)
    if seed == 0:
        assert penalty > 1000 and lo <= chosen[0] <= hi
    ranked = recommend(traits, {}, transfer, "sst2", candidate, {}, bounds=bounds)
    for row in ranked:
        assert lo <= row["interval"][0] <= row["predicted"] <= row["interval"][1] <= hi
    loso = leave_one_source_out(traits, {}, transfer, bounds={"sst2": bounds})
    assert all(lo <= p["predicted"]["sst2"] <= hi for p in loso["per_source"].values())
    assert loso["bounds"]["sst2"] == pytest.approx([lo, hi]) and loso["penalties"]["sst2"]["s5"] == penalty
    json.dumps(ranked, allow_nan=False)


def test_an_interval_over_most_of_the_range_is_not_informative_and_not_ranked():
    _, _, traits, transfer, candidate = few_sources_world(0, 0.25)  # transfer noise: nothing to learn
    bounds = transfer_bounds("acc,none", BASE)
    ranked = recommend(traits, {}, transfer, "sst2", candidate, {}, bounds=bounds)
    c = ranked[-1]
    assert c["source"] == "c" and c["informative"] is False and c["expected"] is None
    assert c["interval"][1] - c["interval"][0] > 0.5 * (bounds[1] - bounds[0])
    measured = ranked[:-1]  # the fine-tuned sources rank by what was measured
    assert [r["expected"] for r in measured] == sorted((transfer[r["source"]]["sst2"] for r in measured), reverse=True)
    assert leave_one_source_out(traits, {}, transfer, bounds={"sst2": bounds})["informative"] == {"sst2": False}
    # Without a known range nothing is judged (or clipped).
    assert all(r["informative"] is None for r in recommend(traits, {}, transfer, "sst2", candidate, {}))
