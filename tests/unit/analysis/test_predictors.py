"""Predictors compared on the same leave-one-source-out folds: a planted feature set wins its comparison."""

from __future__ import annotations

import numpy as np
import pytest

from harness.analysis.predict import leave_one_source_out
from harness.analysis.predictors import compare_predictors, paired_over_targets

SOURCES = [f"s{i}" for i in range(8)]
TARGETS = [f"t{j}" for j in range(8)]
PLUGINS = {"majority_share": "class_distribution", "mean_words": "quality", "tfidf_cosine": "tfidf_similarity"}


def planted_study(seed: int = 0):
    """Transfer driven by one hidden statistic (majority_share); similarity and quality are noise."""
    rng = np.random.default_rng(seed)
    statistic = rng.uniform(0.5, 1.0, len(SOURCES))
    weights = rng.uniform(0.5, 1.5, len(TARGETS))
    transfer = {s: {t: float(-0.2 * weights[j] * statistic[i] + 0.005 * rng.standard_normal())
                    for j, t in enumerate(TARGETS)} for i, s in enumerate(SOURCES)}
    source_traits = {s: {"majority_share": float(statistic[i]), "mean_words": float(rng.uniform(5, 20))}
                     for i, s in enumerate(SOURCES)}
    pair_traits = {"tfidf_cosine": {s: {t: float(rng.uniform()) for t in TARGETS} for s in SOURCES}}
    base = {t: 0.6 for t in TARGETS}
    return source_traits, pair_traits, transfer, base


def test_the_planted_statistic_wins_against_similarity_with_a_small_p():
    source_traits, pair_traits, transfer, base = planted_study()
    out = compare_predictors(source_traits, pair_traits, transfer, PLUGINS, base=base, k=3)
    preds = out["predictors"]
    assert set(preds) == {"traits", "statistics", "similarity", "quality", "mean_row"}
    assert set(out["not_compared"]) == {"adapter_similarity", "gradient_alignment"}
    assert preds["statistics"]["features"] == ["source:majority_share"]
    assert preds["similarity"]["features"] == ["pair:tfidf_cosine"]
    assert preds["statistics"]["spearman"] > 0.9 and abs(preds["similarity"]["spearman"]) < 0.5
    assert preds["statistics"]["ndcg_at_k"] > preds["similarity"]["ndcg_at_k"]
    assert preds["statistics"]["regret_at_k"] < preds["similarity"]["regret_at_k"] + 1e-12
    row = next(c for c in out["comparisons"] if (c["a"], c["b"], c["metric"]) == ("statistics", "similarity", "spearman"))
    # Every one of 8 targets favours statistics: exact sign flip, p = 2 / 2^8 (the observed pattern and its mirror)
    assert row["difference"] > 0.5 and row["n_targets"] == 8 and row["exact"]
    assert row["p"] == pytest.approx(2 / 256) and row["ci"][0] > 0
    pairs = {(c["a"], c["b"]) for c in out["comparisons"]}
    assert {("statistics", "similarity"), ("traits", "mean_row"), ("quality", "mean_row"),
            ("similarity", "mean_row"), ("statistics", "mean_row")} <= pairs
    # mean_row says nothing about which source is better: ties, Spearman 0 on every target
    assert all(v["spearman"] == 0.0 for v in preds["mean_row"]["per_target"].values())


def test_every_predictor_is_scored_on_the_same_folds():
    source_traits, pair_traits, transfer, base = planted_study(1)
    transfer["s3"]["t2"] = None  # a failed cell: that source is left out of t2's folds for everyone
    out = compare_predictors(source_traits, pair_traits, transfer, PLUGINS, base=base)
    for name, pred in out["predictors"].items():
        assert pred["per_target"]["t2"]["n_sources"] == 7, name
        assert all(pred["per_target"][t]["n_sources"] == 8 for t in TARGETS if t != "t2"), name
    # Each predictor's held-out predictions are exactly leave_one_source_out on its columns
    alone = leave_one_source_out({s: {"majority_share": r["majority_share"]} for s, r in source_traits.items()},
                                 {}, transfer)
    assert out["predictors"]["statistics"]["row_spearman"] == pytest.approx(alone["score"])
    assert out["predictors"]["mean_row"]["row_spearman"] == pytest.approx(alone["baseline_score"])


def test_sign_flip_p_is_exact_and_the_ci_covers_the_mean():
    a = {"x": 0.3, "y": 0.1, "z": -0.1, "w": None}
    b = {"x": 0.0, "y": 0.0, "z": 0.0, "w": 0.5}
    test = paired_over_targets(a, b, n_boot=500)
    # differences 0.3, 0.1, -0.1 (w dropped), mean 0.1; |mean| of the 8 sign patterns:
    # 0.1, 0.1 (flip all gives -0.1), 1/3*(0.3+0.1+0.1)=0.1667, ... count those >= 0.1
    d = np.array([0.3, 0.1, -0.1])
    flips = [abs((np.array(s) * d).mean()) for s in np.ndindex(2, 2, 2) for s in [np.where(np.array(s), -1, 1)]]
    assert test["n_targets"] == 3 and test["difference"] == pytest.approx(0.1)
    assert test["p"] == pytest.approx(sum(f >= 0.1 - 1e-12 for f in flips) / 8)
    assert test["ci"][0] <= 0.1 <= test["ci"][1]
    assert paired_over_targets({"x": 1.0}, {"x": 0.0})["p"] is None


def test_a_study_without_traits_compares_nothing_but_the_baseline():
    _, _, transfer, base = planted_study()
    out = compare_predictors({s: {} for s in SOURCES}, {}, transfer, {}, base=base)
    assert list(out["predictors"]) == ["mean_row"] and out["comparisons"] == []
    assert "traits" in out["not_compared"] and "statistics" in out["not_compared"]
