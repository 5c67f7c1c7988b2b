"""How the transfer matrix is scaled before a decomposer sees it.

Targets differ in scale (a 4-way topic task moves less than a yes/no one) and in headroom (a
target the base already solves cannot gain much), and which view is right depends on the question,
so the choice is the user's:

* ``raw``: adapter - base, in the metric's own units (the paper's matrix);
* ``relative``: (adapter - base) / base, change as a share of the base score;
* ``zscore``: each target standardised over sources, so every target weighs the same;
* ``ordinal``: in the spirit of Taskonomy's AHP normalisation (Zamir et al., 2018): per target,
  pairwise win rates between models from per-sample outcomes, the principal eigenvector of the
  win-ratio matrix as priorities, and the log ratio of each source's priority to the base model's.
  It uses only "which model did better on this document", so it is free of the metric's scale.
"""

from __future__ import annotations

import numpy as np

KINDS = ("raw", "relative", "zscore", "ordinal")


def normalise(kind: str, transfer: np.ndarray, base: np.ndarray | None = None,
              outcomes: list[np.ndarray] | None = None, targets: list[str] | None = None) -> np.ndarray:
    """Scale a transfer matrix.

    Parameters
    ----------
    kind : {"raw", "relative", "zscore", "ordinal"}
    transfer : ndarray of shape (n_sources, n_targets)
        Adapter score minus base score.
    base : ndarray of shape (n_targets,), optional
        Base scores; needed by ``relative``.
    outcomes : list of n_targets ndarrays of shape (1 + n_sources, n_docs), optional
        Per-sample outcomes, base model first; needed by ``ordinal``.
    targets : list of str, optional
        Target names, only for error messages.

    Returns
    -------
    ndarray of shape (n_sources, n_targets)
    """
    X = np.asarray(transfer, dtype=float)
    names = targets or [f"target {j}" for j in range(X.shape[1])]
    if kind == "raw":
        return X
    if kind == "relative":
        if base is None:
            raise ValueError("relative transfer needs the base scores; this matrix came without them")
        base = np.asarray(base, dtype=float)
        zero = [names[j] for j in np.flatnonzero(np.abs(base) < 1e-12)]
        if zero:
            raise ValueError(f"relative transfer is undefined where the base scores 0 ({', '.join(zero)}); "
                             "use normalisation raw or zscore")
        return X / np.abs(base)
    if kind == "zscore":
        # ddof=1 like the decomposers' variances; a target no source moved stays 0 instead of 0/0.
        sd = X.std(axis=0, ddof=1) if len(X) > 1 else np.zeros(X.shape[1])
        return np.where(sd > 0, (X - X.mean(axis=0)) / np.where(sd > 0, sd, 1.0), 0.0)
    if kind == "ordinal":
        if outcomes is None:
            raise ValueError("ordinal normalisation needs per-sample outcomes (the run's samples/ logs); "
                             "a bare matrix has none: use raw, relative or zscore")
        return np.column_stack([ahp_log_priority(y) for y in outcomes])
    raise ValueError(f"unknown normalisation {kind!r}; choose one of {', '.join(KINDS)}")


def win_rates(outcomes: np.ndarray) -> np.ndarray:
    """``W[i, j]``: share of documents where model i beat model j, ties counted half.

    Parameters
    ----------
    outcomes : ndarray of shape (n_models, n_docs)

    Returns
    -------
    ndarray of shape (n_models, n_models); ``W + W.T == 1`` off the diagonal, 0.5 on it.
    """
    y = np.asarray(outcomes, dtype=float)
    diff = y[:, None, :] - y[None, :, :]
    return ((diff > 0).sum(axis=2) + 0.5 * (diff == 0).sum(axis=2)) / y.shape[1]


def ahp_log_priority(outcomes: np.ndarray, clip: float = 1e-3) -> np.ndarray:
    """Log of each source's AHP priority over the base model's, for one target.

    Parameters
    ----------
    outcomes : ndarray of shape (1 + n_sources, n_docs)
        Row 0 the base model.
    clip : float
        Win rates are clipped to [clip, 1 - clip] (Taskonomy clips the same way) so that a model
        that never loses gives a large finite ratio rather than a division by zero.

    Returns
    -------
    ndarray of shape (n_sources,): 0 means on a par with the base, positive better.
    """
    W = np.clip(win_rates(outcomes), clip, 1 - clip)
    ratios = W / W.T  # reciprocal matrix: ratios[i, j] = how much more often i wins than j
    values, vectors = np.linalg.eig(ratios)
    # Perron-Frobenius: a positive matrix has a real, simple largest eigenvalue with a positive vector.
    v = np.abs(np.real(vectors[:, np.argmax(np.real(values))]))
    return np.log(v[1:] / v[0])
