"""Transfer predictors compared on the same leave-one-source-out folds, scored as source rankers.

Each predictor is the ridge of :func:`harness.analysis.predict.leave_one_source_out` restricted to
one feature set, chosen by the trait plugin a feature comes from (``plugins[column] -> plugin``):

* ``traits``: every source and pair trait (the harness's predictor, ``prediction["score"]``);
* ``statistics``: the paper's hidden statistics (Krishna et al.): source traits of
  class_distribution, completion_length, linguistic and lexical;
* ``similarity``: pair traits of surface similarity (tfidf_similarity, embedding_similarity);
* ``quality``: the quality trait's source traits;
* ``adapter_similarity``, ``gradient_alignment``: those pair traits alone;
* baseline ``mean_row``: each target's mean transfer over the training sources.

The folds are the same for all: source ``s`` held out, a fit per target on the other sources
measured on it. From the held-out predictions every target gets a source ranking, scored by
Spearman, NDCG@k and Regret@k (:mod:`harness.analysis.ranking`). Comparisons take the per-target
difference of a metric between two predictors, its mean over targets, a bootstrap CI over targets
and a sign-flip permutation p over targets (exact when 2^n_targets is within the budget).
"""

from __future__ import annotations

import itertools

import numpy as np

from harness.analysis.predict import leave_one_source_out
from harness.analysis.ranking import DEFAULT_K, rank_scores
from harness.analysis.stats import mean_present

#: Feature sets by name: (scope of the columns, trait plugins they come from); None: every column.
FEATURE_SETS: dict[str, tuple[str, frozenset[str]] | None] = {
    "traits": None,
    "statistics": ("source", frozenset({"class_distribution", "completion_length", "linguistic", "lexical"})),
    "similarity": ("pair", frozenset({"tfidf_similarity", "embedding_similarity"})),
    "quality": ("source", frozenset({"quality"})),
    "adapter_similarity": ("pair", frozenset({"adapter_similarity"})),
    "gradient_alignment": ("pair", frozenset({"gradient_alignment"})),
}
BASELINES = ("mean_row",)
METRICS = ("spearman", "ndcg_at_k", "regret_at_k")
LOWER_IS_BETTER = frozenset({"regret_at_k"})
#: Comparisons made whenever both sides were computed, besides every predictor against mean_row.
PAIRS = (("statistics", "similarity"), ("statistics", "quality"), ("adapter_similarity", "similarity"),
         ("gradient_alignment", "similarity"), ("statistics", "traits"))


def select(name: str, source_traits: dict, pair_traits: dict, plugins: dict[str, str]) -> tuple[dict, dict]:
    """The columns of feature set ``name``: (source_traits, pair_traits) restricted to them."""
    spec = FEATURE_SETS[name]
    if spec is None:
        return source_traits, pair_traits
    scope, wanted = spec
    if scope == "source":
        return {s: {k: v for k, v in row.items() if plugins.get(k) in wanted} for s, row in source_traits.items()}, {}
    return {}, {k: v for k, v in pair_traits.items() if plugins.get(k) in wanted}


def _has_columns(source_traits: dict, pair_traits: dict) -> bool:
    return bool(pair_traits) or any(row for row in source_traits.values())


def _mean_row(transfer: dict) -> dict[str, dict[str, float | None]]:
    """The baseline on the folds: ``s``'s prediction on ``t`` is the mean over the others measured on ``t``."""
    out: dict = {s: {} for s in transfer}
    for s in transfer:
        for t in {t for row in transfer.values() for t in row}:
            others = [row.get(t) for o, row in transfer.items() if o != s and row.get(t) is not None]
            out[s][t] = float(np.mean(others)) if others else None
    return out


def score_rankings(predicted: dict, transfer: dict, base: dict | None, k: int) -> dict:
    """Per-target ranking scores of held-out predictions ``predicted[s][t]`` and their means.

    A target's sources are ranked by their held-out prediction minus the mean transfer of that
    fold's training sources (:func:`_mean_row`). A ridge predicts that mean plus what the features
    add; the mean changes from fold to fold only by the held-out source's own absence, which ranks
    sources in exactly reverse order of their measured transfer (a fold artifact, not a
    prediction). What is left is what the features say about the source; for mean_row it is zero
    for every source: ties, a ranking that does not choose.
    """
    fold_means = _mean_row(transfer)
    targets = list(dict.fromkeys(t for row in transfer.values() for t in row))
    per_target = {}
    for t in targets:
        rows = [s for s in transfer if transfer[s].get(t) is not None and (predicted.get(s) or {}).get(t) is not None]
        actual = np.array([transfer[s][t] for s in rows], dtype=float)
        pred = np.array([predicted[s][t] - fold_means[s][t] for s in rows], dtype=float)
        b = (base or {}).get(t)
        per_target[t] = rank_scores(pred, actual, None if b is None else b + actual, k) if rows else \
            {"spearman": None, "ndcg_at_k": None, "regret_at_k": None, "n_sources": 0}
    means = {m: mean_present(per_target[t][m] for t in targets) for m in METRICS}
    return {"per_target": per_target, **means}


def paired_over_targets(a: dict, b: dict, n_boot: int = 2000, max_permutations: int = 10000, seed: int = 0,
                        confidence: float = 0.95) -> dict:
    """Mean over targets of ``a[t] - b[t]`` (targets where both are numbers), a percentile bootstrap
    CI over targets and a two-sided sign-flip permutation p.

    The sign flip is the null that the two predictors are exchangeable on every target: each
    target's difference is as likely to have either sign. Exact over all ``2**n`` sign patterns
    when that is within ``max_permutations`` (p counts the observed pattern, so it is never 0),
    else ``max_permutations`` random patterns with p = (1 + count) / (1 + draws).

    Returns
    -------
    dict ``{"difference", "ci", "p", "n_targets", "exact"}``; CI and p None with fewer than 2 targets.
    """
    keys = [t for t in a if a[t] is not None and b.get(t) is not None]
    d = np.array([a[t] - b[t] for t in keys], dtype=float)
    n = len(d)
    if n == 0:
        return {"difference": None, "ci": None, "p": None, "n_targets": 0, "exact": None}
    observed = float(d.mean())
    if n < 2:
        return {"difference": observed, "ci": None, "p": None, "n_targets": n, "exact": None}
    rng = np.random.default_rng(seed)
    boots = d[rng.integers(0, n, (n_boot, n))].mean(axis=1)
    tail = (1 - confidence) / 2
    ci = [float(np.quantile(boots, tail)), float(np.quantile(boots, 1 - tail))]
    exact = 2 ** n <= max_permutations
    signs = (np.array(list(itertools.product((1.0, -1.0), repeat=n))) if exact
             else rng.choice((1.0, -1.0), (max_permutations, n)))
    flipped = np.abs(signs @ d / n)
    hits = int((flipped >= abs(observed) - 1e-12).sum())
    p = hits / len(signs) if exact else (1 + hits) / (1 + len(signs))
    return {"difference": observed, "ci": ci, "p": float(min(1.0, p)), "n_targets": n, "exact": bool(exact)}


def compare_predictors(source_traits: dict, pair_traits: dict, transfer: dict, plugins: dict[str, str],
                       base: dict | None = None, bounds: dict | None = None, alpha: float = 1.0,
                       k: int = DEFAULT_K, traits_result: dict | None = None, n_boot: int = 2000,
                       max_permutations: int = 10000, seed: int = 0, confidence: float = 0.95) -> dict:
    """Every predictor of :data:`FEATURE_SETS` and :data:`BASELINES` on the same folds, and their comparisons.

    Parameters
    ----------
    source_traits, pair_traits, transfer, bounds, alpha : as :func:`leave_one_source_out`.
    plugins : ``{column: trait plugin}`` for every source and pair trait column.
    base : ``{target: base score}``; Regret needs it (None: Regret is None).
    k : int, NDCG@k and Regret@k look at the top k sources (clipped to the number of sources).
    traits_result : the all-traits :func:`leave_one_source_out` result when already computed.

    Returns
    -------
    dict ``{"k", "predictors", "comparisons", "not_compared", "method"}``: ``predictors[name]`` holds
    ``features``, ``per_target[t]`` (``spearman``, ``ndcg_at_k``, ``regret_at_k``, ``n_sources``),
    their means over targets, ``row_spearman`` (mean over held-out sources of the Spearman between
    predicted and actual rows, as ``prediction["score"]``) and ``k``; ``comparisons`` rows
    ``{"a", "b", "metric", "difference" (a - b), "ci", "p", "n_targets", "lower_is_better"}``;
    ``not_compared[name]``: why a predictor is absent (its traits are not in the study).
    """
    n_sources = len(transfer)
    k_used = max(1, min(int(k), n_sources))
    predictors: dict[str, dict] = {}
    not_compared: dict[str, str] = {}
    for name, spec in FEATURE_SETS.items():
        st, pt = select(name, source_traits, pair_traits, plugins)
        if not _has_columns(st, pt):
            wanted = "any trait" if spec is None else ", ".join(sorted(spec[1]))
            not_compared[name] = (f"no {'' if spec is None else spec[0] + ' '}trait of {wanted} in this study; "
                                  "add it to the registry's traits: to compare it")
            continue
        result = traits_result if name == "traits" and traits_result is not None else \
            leave_one_source_out(st, pt, transfer, alpha=alpha, bounds=bounds)
        predicted = {s: row["predicted"] for s, row in result["per_source"].items()}
        predictors[name] = {"features": result["features"], **score_rankings(predicted, transfer, base, k_used),
                            "row_spearman": result["score"], "k": k_used}
    # The mean row's row Spearman does not depend on features: a fit on none gives it.
    row_baseline = (traits_result or leave_one_source_out({}, {}, transfer))["baseline_score"]
    predictors["mean_row"] = {"features": [], **score_rankings(_mean_row(transfer), transfer, base, k_used),
                              "row_spearman": row_baseline, "k": k_used}
    pairs = list(dict.fromkeys([("statistics", "similarity"), ("traits", "mean_row"),
                                *((name, "mean_row") for name in predictors if name != "mean_row"), *PAIRS]))
    comparisons = []
    for a, b in pairs:
        if a not in predictors or b not in predictors:
            continue
        for metric in METRICS:
            per_a = {t: v[metric] for t, v in predictors[a]["per_target"].items()}
            per_b = {t: v[metric] for t, v in predictors[b]["per_target"].items()}
            test = paired_over_targets(per_a, per_b, n_boot, max_permutations, seed, confidence)
            comparisons.append({"a": a, "b": b, "metric": metric, **test,
                                "lower_is_better": metric in LOWER_IS_BETTER})
    return {"k": k_used, "predictors": predictors, "comparisons": comparisons, "not_compared": not_compared,
            "method": (f"Each predictor is the leave-one-source-out ridge on its feature set, on the same folds "
                       f"(a source held out, a fit per target on the others measured on it); mean_row predicts "
                       f"each target's mean over the training sources. Per target, the sources are ranked by their held-out "
                       f"prediction minus their fold's training mean (removing the fold's intercept, which alone "
                       f"would rank them in reverse order of their own transfer; mean_row's are all ties): "
                       f"Spearman with measured transfer, NDCG@{k_used} (relevance: transfer min-max scaled over "
                       f"the sources), Regret@{k_used} (O = base + transfer; lower is better). Comparisons: mean "
                       f"over targets of a - b, percentile bootstrap CI over targets, two-sided sign-flip "
                       f"permutation p over targets (exact when 2^n_targets <= {max_permutations}).")}
