"""How well a predictor ranks the sources for one target, scored as the transfer literature scores it.

A predictor gives each source a predicted transfer to a target; the target's *source ranking* is
those predictions sorted in descending order. Three numbers judge it against what was measured:

* **Spearman** between predicted and measured transfer over the sources;
* **NDCG@k** (Järvelin & Kekäläinen 2002; used for source ranking by TaskWeb, Kim et al. 2023):
  the discounted gain of the top ``k`` predicted sources over that of the ideal ranking, with
  gains ``rel / log2(1 + position)``;
* **Regret@k** (Vu et al. 2020, "Exploring and Predicting Transferability across NLP Tasks"):
  ``(O(best) - max_{s in top-k predicted} O(s)) / O(best)``, with ``O(s)`` the target's performance
  after transfer from ``s`` (the adapter's score on it: base + transfer), ``best`` the best source.
  0 when the best source is among the top ``k``; lower is better.

Ties in the predictions are a ranking that does not choose: NDCG averages the gains of tied
sources (scikit-learn's ``ndcg_score`` with ``ignore_ties=False``, McSherry & Najork 2008), Regret
is its expectation over every order of the tied sources, and a prediction constant over the
sources (e.g. the mean-row baseline, which says nothing about which source is better) has
Spearman 0, its expectation over those orders.
"""

from __future__ import annotations

from math import comb

import numpy as np
from scipy.stats import spearmanr

#: Default number of top-ranked sources NDCG and Regret look at (clipped to the number of sources).
DEFAULT_K = 3


def relevance(actual: np.ndarray) -> np.ndarray:
    """NDCG's relevance of each source: its measured transfer min-max scaled to [0, 1] over the sources.

    Why not the adapter's raw score: NDCG needs non-negative gains, and raw scores (base + transfer)
    all sit near the base score, so every ranking would score close to 1 and NDCG could not tell a
    good ranker from a random one. Min-max scaling puts the worst source at 0 and the best at 1 on
    every target whatever the metric's scale, so NDCG measures the order of gains, and targets
    weigh the same in a mean over targets. All sources equal: every relevance 0 (NDCG undefined).

    Parameters
    ----------
    actual : ndarray (n,), measured transfer of each source to the target, finite.

    Returns
    -------
    ndarray (n,), in [0, 1].
    """
    actual = np.asarray(actual, dtype=float)
    spread = np.ptp(actual) if actual.size else 0.0
    return (actual - actual.min()) / spread if spread > 0 else np.zeros_like(actual)


def ndcg_at_k(predicted, actual, k: int = DEFAULT_K) -> float | None:
    """NDCG@k of the ranking by ``predicted``, relevance :func:`relevance` of ``actual``.

    Parameters
    ----------
    predicted, actual : array-like (n,), finite; one value per source.
    k : int >= 1, clipped to n.

    Returns
    -------
    float in [0, 1], or None when undefined (fewer than 2 sources, or every source measured equal).
    """
    from sklearn.metrics import ndcg_score

    predicted, actual = np.asarray(predicted, float), np.asarray(actual, float)
    rel = relevance(actual)
    if len(rel) < 2 or not rel.any():
        return None
    return float(ndcg_score(rel[None, :], predicted[None, :], k=min(k, len(rel)), ignore_ties=False))


def regret_at_k(predicted, performance, k: int = DEFAULT_K) -> float | None:
    """Regret@k (Vu et al. 2020) of the ranking by ``predicted``.

    Parameters
    ----------
    predicted : array-like (n,), finite: the predicted transfer (or any score ranking the sources).
    performance : array-like (n,), finite: ``O(s)``, the target's score after transfer from each source.
    k : int >= 1, clipped to n.

    Returns
    -------
    float, ``(O(best) - E[max over the top k of O]) / O(best)``, the expectation over the orders of
    sources tied at the k-th place (a plain max without ties); None when ``O(best) <= 0`` (the ratio
    is then meaningless) or without sources.
    """
    predicted, performance = np.asarray(predicted, float), np.asarray(performance, float)
    if len(predicted) == 0:
        return None
    best = float(performance.max())
    if best <= 0:
        return None
    k = min(k, len(predicted))
    order = np.argsort(-predicted, kind="stable")
    boundary = predicted[order[k - 1]]
    surely = performance[predicted > boundary]  # ranked above the k-th place whatever the tie-break
    tied = np.sort(performance[predicted == boundary])[::-1]  # compete for the remaining places
    m, g = k - len(surely), len(tied)
    floor = surely.max() if len(surely) else -np.inf
    # With m of the g tied sources drawn at random, the best drawn is tied[i] (0-based, descending)
    # with probability C(g - 1 - i, m - 1) / C(g, m): it is drawn, and the others come from below it.
    expected = sum(comb(g - 1 - i, m - 1) / comb(g, m) * max(floor, tied[i]) for i in range(g - m + 1))
    return float((best - expected) / best)


def spearman_ranking(predicted, actual) -> float | None:
    """Spearman between predicted and measured transfer over the sources; 0 when the prediction is
    constant (its expectation over random orders), None when the measured values are (or n < 3)."""
    predicted, actual = np.asarray(predicted, float), np.asarray(actual, float)
    if len(actual) < 3 or np.ptp(actual) == 0:
        return None
    if np.ptp(predicted) == 0:
        return 0.0
    return float(spearmanr(predicted, actual).statistic)


def rank_scores(predicted, actual, performance=None, k: int = DEFAULT_K) -> dict:
    """The three scores of one target's source ranking.

    Parameters
    ----------
    predicted, actual : array-like (n,), finite: predicted and measured transfer of each source.
    performance : array-like (n,) or None, the target's score after transfer (base + transfer);
        None (base score unknown): Regret is None.
    k : int >= 1.

    Returns
    -------
    dict ``{"spearman", "ndcg_at_k", "regret_at_k", "n_sources"}``, each score a float or None.
    """
    return {"spearman": spearman_ranking(predicted, actual),
            "ndcg_at_k": ndcg_at_k(predicted, actual, k),
            "regret_at_k": None if performance is None else regret_at_k(predicted, performance, k),
            "n_sources": int(len(np.asarray(actual)))}
