"""Running one decomposition for the analysis stage: normalise, choose how many components, fit,
name the components after the targets that load on them, and check their stability.

The decomposer contract itself (the estimator base class and its helpers) is
:mod:`harness.api.decomposer`.
"""

from __future__ import annotations

import numpy as np

from harness.analysis.applicability import NotApplicable
from harness.api.decomposer import component_limit


def component_ids(n: int) -> list[str]:
    """Keys of components in results: ``C1``, ``C2``, ..."""
    return [f"C{i + 1}" for i in range(n)]


def name_components(components: np.ndarray, targets: list[str], abilities: dict[str, tuple[str, ...]],
                    given: dict[str, str] | None = None) -> tuple[dict[str, str], dict[str, list[dict]]]:
    """Name each component from the ability tags of the targets that load on it most.

    Tags are weighted by |loading| over the targets whose |loading| is at least half the
    component's largest; the heaviest tag names the component, with the runner-up appended when
    it weighs at least half as much (e.g. ``"sentiment+nlu"``). A target without tags stands for
    itself, so a matrix from elsewhere still gets readable names.

    Names are unique within the decomposition (they key its rows in reports and plots, and two
    components called the same would read as one ability). A component whose name is taken, by a
    stronger component or by a ``given`` name, adds its next-strongest tags one at a time, and
    when it has no more, a number: ``"arithmetic (2)"``.

    Parameters
    ----------
    given : dict, optional
        Component id -> a name fixed by the user (the registry's ``names``), kept as it is; the
        registry refuses two equal ones.

    Returns
    -------
    names : dict, component id -> name
    evidence : dict, component id -> the loadings that justify the name, largest |loading| first:
        list of {"target", "loading", "abilities"}
    """
    given = dict(given or {})
    names: dict[str, str] = {}
    evidence: dict[str, list[dict]] = {}
    taken = set(given.values())
    components = np.asarray(components)
    for cid, row in zip(component_ids(len(components)), components):
        top = np.abs(row).max()
        weights: dict[str, float] = {}
        evidence[cid] = []
        for j in np.argsort(-np.abs(row), kind="stable"):
            target, loading = targets[j], float(row[j])
            if top > 0 and abs(loading) >= 0.5 * top:
                tags = tuple(abilities.get(target, ())) or (target,)
                evidence[cid].append({"target": target, "loading": loading, "abilities": list(tags)})
                for tag in tags:
                    weights[tag] = weights.get(tag, 0.0) + abs(loading)
        if cid in given:
            names[cid] = given[cid]
        else:
            names[cid] = _unique_label(sorted(weights.items(), key=lambda kv: (-kv[1], kv[0])), taken)
            taken.add(names[cid])
    return names, evidence


def _unique_label(ranked: list[tuple[str, float]], taken: set[str]) -> str:
    """From (tag, weight) pairs, heaviest first: the heaviest tag, and the runner-up when it weighs
    at least half as much; while that name is ``taken``, the next tags in order, then a number."""
    tags = [tag for tag, _ in ranked] or ["flat"]
    used = 2 if len(ranked) > 1 and ranked[1][1] >= 0.5 * ranked[0][1] else 1
    label = "+".join(tags[:used])
    while label in taken and used < len(tags):
        used += 1
        label = "+".join(tags[:used])
    numbered, i = label, 2
    while numbered in taken:
        numbered, i = f"{label} ({i})", i + 1
    return numbered


def complete_submatrix(X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Row and column masks of a hole-free part of ``X``: greedily drop whichever row or column is
    the most incomplete (a failed target column costs that column, not every source)."""
    rows, cols = np.ones(X.shape[0], bool), np.ones(X.shape[1], bool)
    while rows.any() and cols.any():
        holes = np.isnan(X[rows][:, cols])
        if not holes.any():
            break
        row_share, col_share = holes.mean(axis=1), holes.mean(axis=0)
        if col_share.max() >= row_share.max():
            cols[np.flatnonzero(cols)[col_share.argmax()]] = False
        else:
            rows[np.flatnonzero(rows)[row_share.argmax()]] = False
    return rows, cols


def decompose(use, cls, sources: list[str], targets: list[str], X: np.ndarray, base: np.ndarray | None,
              outcomes, abilities: dict[str, tuple[str, ...]], settings) -> dict:
    """Normalise, choose the number of components, fit, name, and check stability: one decomposition.

    Parameters
    ----------
    use : DecomposerUse
        The registry entry (params, normalisation, n_components, names).
    cls : type
        The decomposer class.
    X : ndarray of shape (n_sources, n_targets)
        Raw transfer, no holes.
    base : ndarray of shape (n_targets,) or None
        Base scores (for relative transfer and the bootstrap).
    outcomes : Outcomes or None
        Per-sample outcomes (for ordinal normalisation, the bootstrap).
    settings : AnalysisSettings
    """
    from harness.analysis import dimensionality, stability
    from harness.analysis.normalise import normalise

    aligned = outcomes is not None and all(t in outcomes.values for t in targets)

    def per_target(resampled=None, seed_rows=None):
        # Base then each source (its replicates averaged), arrays of shape (1 + n_sources, n_docs).
        return [outcomes.by_source(t, sources, None if resampled is None else resampled[t], seed_rows)
                for t in targets]

    if use.normalisation == "ordinal" and not aligned:
        missing = [t for t in targets if outcomes is None or t not in outcomes.values]
        raise ValueError(f"ordinal normalisation needs per-sample logs of every model on {', '.join(missing)}")
    prepared = normalise(use.normalisation, X, base, per_target() if use.normalisation == "ordinal" else None, targets)
    limit = component_limit(*prepared.shape, centred=cls.centred)
    k, scree = dimensionality.choose(use.n_components, prepared, seed=settings.seed, limit=limit)

    def fit(M, n_components):
        return cls(**use.params, n_components=n_components).fit(M)

    est = fit(prepared, k)
    ids = component_ids(len(est.components_))
    scores = est.transform(prepared)
    unknown = sorted(set(use.names) - set(ids))
    if unknown:
        raise ValueError(f"names given for {', '.join(unknown)}, but the decomposition has only {', '.join(ids)}")
    names, evidence = name_components(est.components_, targets, abilities, given=use.names)

    def refit(M, n_components):
        return fit(M, n_components).components_

    boot, skipped = None, {}  # skipped: check -> why it did not run
    resampleable = [t for t in targets if outcomes is not None and t in outcomes.values
                    and (use.normalisation == "ordinal" or t not in outcomes.not_mean)]
    if not settings.bootstrap:
        skipped["bootstrap"] = "turned off (analysis.bootstrap: 0)"
    elif not resampleable or base is None:
        skipped["bootstrap"] = ("needs per-sample logs of a target with a mean metric" if not resampleable
                                else "needs the base model's scores")
    else:
        def draw(rng):
            # Documents as before; with several training seeds, each source's replicates too (a
            # single-seed study draws no seeds, so its refits are exactly those of before).
            picks = {t: rng.integers(0, outcomes.values[t].shape[1], outcomes.values[t].shape[1]) for t in resampleable}
            seed_rows = outcomes.draw_seeds(rng) if outcomes.replicated else None
            M = X.copy()
            b = base.copy()
            for j, t in enumerate(targets):
                if t in picks:
                    means = outcomes.by_source(t, sources, picks[t], seed_rows).mean(axis=1)
                    b[j], M[:, j] = means[0], means[1:] - means[0]
            ordinal = (per_target({t: picks.get(t, slice(None)) for t in targets}, seed_rows)
                       if use.normalisation == "ordinal" else None)
            return normalise(use.normalisation, M, b, ordinal, targets)

        boot = stability.bootstrap(refit, draw, est.components_, targets, ids, settings.bootstrap,
                                   seed=settings.seed, confidence=settings.confidence)
        boot["fixed_targets"] = [t for t in targets if t not in resampleable]
    loso = None
    try:
        loso = stability.leave_one_source_out(refit, prepared, sources, est.components_, ids,
                                              max_k=lambda n, p: component_limit(n, p, cls.centred))
    except NotApplicable as exc:
        skipped["leave_one_source_out"] = str(exc)
    return {
        "params": est.get_params(),
        "normalisation": use.normalisation,
        "n_components": {"requested": use.n_components, "k": len(ids), **scree},
        "explained_variance_ratio": [float(v) for v in est.explained_variance_ratio_],
        "loadings": {c: dict(zip(targets, map(float, row))) for c, row in zip(ids, est.components_)},
        "scores": {s: dict(zip(ids, map(float, row))) for s, row in zip(sources, scores)},
        "labels": names,
        "label_evidence": evidence,
        "stability": {"bootstrap": boot, "leave_one_source_out": loso, "skipped": skipped,
                      "verdict": {c: stability.verdict(boot, loso, c) for c in ids}},
    }
