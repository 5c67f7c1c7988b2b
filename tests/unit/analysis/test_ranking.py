"""NDCG@k and Regret@k of a target's source ranking against hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest

from harness.analysis.ranking import ndcg_at_k, rank_scores, regret_at_k, relevance, spearman_ranking

# Four sources: predicted and measured transfer to one target whose base score is 0.5.
PREDICTED = [0.3, 0.1, 0.2, 0.0]
ACTUAL = [0.0, 0.2, 0.1, -0.1]
PERFORMANCE = [0.5 + a for a in ACTUAL]  # O(s): 0.5, 0.7, 0.6, 0.4


def test_relevance_is_transfer_min_max_scaled():
    # min -0.1, range 0.3: (0.1/0.3, 0.3/0.3, 0.2/0.3, 0)
    assert relevance(np.array(ACTUAL)) == pytest.approx([1 / 3, 1.0, 2 / 3, 0.0])


def test_ndcg_at_2_by_hand():
    # Predicted order: s0 (0.3), s2 (0.2), s1, s3. Relevances 1/3, 2/3 at positions 1, 2:
    # DCG@2 = (1/3)/log2(2) + (2/3)/log2(3) = 0.333333 + 0.420620 = 0.753953
    # Ideal: s1 (1), s2 (2/3): IDCG@2 = 1/log2(2) + (2/3)/log2(3) = 1.420620
    dcg = 1 / 3 + (2 / 3) / math.log2(3)
    idcg = 1 + (2 / 3) / math.log2(3)
    assert dcg / idcg == pytest.approx(0.530721, abs=1e-6)
    assert ndcg_at_k(PREDICTED, ACTUAL, k=2) == pytest.approx(dcg / idcg, abs=1e-12)


def test_ndcg_is_one_for_the_true_order_and_k_is_clipped():
    assert ndcg_at_k(ACTUAL, ACTUAL, k=3) == pytest.approx(1.0)
    assert ndcg_at_k(PREDICTED, ACTUAL, k=99) == ndcg_at_k(PREDICTED, ACTUAL, k=4)


def test_regret_by_hand():
    # Best source s1 with O = 0.7. Top-2 predicted: s0 (0.5), s2 (0.6): max 0.6.
    # Regret@2 = (0.7 - 0.6) / 0.7 = 0.142857; top-3 holds s1: Regret@3 = 0; top-1 (s0): (0.7-0.5)/0.7
    assert regret_at_k(PREDICTED, PERFORMANCE, k=2) == pytest.approx(0.1 / 0.7)
    assert regret_at_k(PREDICTED, PERFORMANCE, k=3) == pytest.approx(0.0)
    assert regret_at_k(PREDICTED, PERFORMANCE, k=1) == pytest.approx(0.2 / 0.7)


def test_ties_are_scored_as_their_expectation():
    tied = [0.5, 0.5, 0.5, 0.0]
    # Regret@1: one of s0, s1, s2 is drawn at random, O = 0.5, 0.7 or 0.6: E = 0.6; (0.7 - 0.6)/0.7
    assert regret_at_k(tied, PERFORMANCE, k=1) == pytest.approx(0.1 / 0.7)
    # Regret@2: two of the three drawn; the best drawn is 0.7 unless {s0, s2} (1 of 3 pairs): E = (2*0.7 + 0.6)/3
    assert regret_at_k(tied, PERFORMANCE, k=2) == pytest.approx((0.7 - (2 * 0.7 + 0.6) / 3) / 0.7)
    # NDCG@1: position 1 holds the tied group's mean relevance (1/3 + 1 + 2/3)/3 = 2/3; IDCG@1 = 1
    assert ndcg_at_k(tied, ACTUAL, k=1) == pytest.approx(2 / 3)
    # A constant prediction: Spearman 0 (its mean over random orders); a constant actual: undefined
    assert spearman_ranking([1.0] * 4, ACTUAL) == 0.0
    assert spearman_ranking(PREDICTED, [0.2] * 4) is None


def test_rank_scores_and_undefined_cases():
    scores = rank_scores(PREDICTED, ACTUAL, PERFORMANCE, k=2)
    # Spearman: predicted ranks (4, 2, 3, 1), actual ranks (2, 4, 3, 1): 1 - 6*(4+4+0+0)/(4*15) = 0.2
    assert scores == {"spearman": pytest.approx(0.2), "ndcg_at_k": pytest.approx(0.530721, abs=1e-6),
                      "regret_at_k": pytest.approx(0.1 / 0.7), "n_sources": 4}
    assert rank_scores(PREDICTED, ACTUAL, None)["regret_at_k"] is None  # base unknown: no O(s)
    assert regret_at_k(PREDICTED, [-0.1, -0.2, -0.3, -0.4]) is None  # O(best) <= 0
    assert ndcg_at_k(PREDICTED, [0.1] * 4) is None
