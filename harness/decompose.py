"""The decomposer contract: scikit-learn-style estimators over the transfer matrix.

Parameters go in ``__init__`` (stored under the same names, nothing else done there), ``fit``
returns ``self``, learned state ends in ``_``. After ``fit(X)`` with ``X`` of shape
(n_sources, n_targets) every decomposer exposes:

* ``components_`` : ndarray (n_components, n_targets), the loadings;
* ``explained_variance_ratio_`` : ndarray (n_components,), each in [0, 1];
* ``transform(X)`` : ndarray (n_sources, n_components), the source scores.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from harness.params import Parameterised


class Decomposer(Parameterised):
    """Base class of decomposer plugins."""

    name: ClassVar[str]
    description: ClassVar[str] = ""

    def fit(self, X: np.ndarray, y=None) -> "Decomposer":
        raise NotImplementedError

    def transform(self, X: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def fit_transform(self, X: np.ndarray, y=None) -> np.ndarray:
        return self.fit(X).transform(X)


def component_ids(n: int) -> list[str]:
    """Keys of components in results: ``C1``, ``C2``, ..."""
    return [f"C{i + 1}" for i in range(n)]


def name_components(components: np.ndarray, targets: list[str],
                    abilities: dict[str, tuple[str, ...]]) -> dict[str, str]:
    """Name each component from the ability tags of the targets that load on it most.

    Tags are weighted by |loading| over the targets whose |loading| is at least half the
    component's largest; the heaviest tag names the component, with the runner-up appended when
    it weighs at least half as much (e.g. ``"sentiment+nlu"``).
    """
    names: dict[str, str] = {}
    components = np.asarray(components)
    for cid, row in zip(component_ids(len(components)), components):
        top = np.abs(row).max()
        weights: dict[str, float] = {}
        for target, loading in zip(targets, row):
            if top > 0 and abs(loading) >= 0.5 * top:
                for tag in abilities.get(target, ()) or ("unlabelled",):
                    weights[tag] = weights.get(tag, 0.0) + abs(float(loading))
        ranked = sorted(weights.items(), key=lambda kv: (-kv[1], kv[0]))
        label = ranked[0][0] if ranked else "flat"
        if len(ranked) > 1 and ranked[1][1] >= 0.5 * ranked[0][1]:
            label += "+" + ranked[1][0]
        names[cid] = label
    return names


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


def run_all(registry, catalog, matrix, plan) -> tuple[dict, list[dict]]:
    """Fit every decomposer of the registry to the transfer matrix.

    Sources or targets with a missing cell are left out of the fit (and named in the result), since
    no decomposer here accepts holes.
    """
    import traceback

    X = matrix.array()
    keep_rows, keep_cols = complete_submatrix(X)
    sources = [s for s, k in zip(matrix.sources, keep_rows) if k]
    targets = [t for t, k in zip(matrix.targets, keep_cols) if k]
    X = X[keep_rows][:, keep_cols]
    abilities = {t: plan.tasks[t].abilities for t in targets}
    out, failures = {}, []
    for use in registry.decomposers:
        try:
            if len(sources) < 2 or not targets:
                raise ValueError(f"needs at least 2 complete sources and 1 target, has {len(sources)} and {len(targets)}")
            est = catalog.get("decomposer", use.name).obj(**use.params)
            scores = est.fit(X).transform(X)
            ids = component_ids(len(est.components_))
            names = name_components(est.components_, targets, abilities)
            out[use.name] = {
                "params": est.get_params(),
                "explained_variance_ratio": [float(v) for v in est.explained_variance_ratio_],
                "loadings": {c: dict(zip(targets, map(float, row))) for c, row in zip(ids, est.components_)},
                "scores": {s: dict(zip(ids, map(float, row))) for s, row in zip(sources, scores)},
                "labels": names,
                "excluded": {"sources": [s for s in matrix.sources if s not in sources],
                             "targets": [t for t in matrix.targets if t not in targets]},
            }
        except Exception as exc:
            failures.append({"stage": "decompose", "plugin": use.name, "error": f"{type(exc).__name__}: {exc}",
                             "traceback": traceback.format_exc(limit=5)})
    return out, failures
