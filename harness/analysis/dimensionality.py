"""How many latent abilities the matrix supports: the scree, and Horn's parallel analysis.

A decomposer always returns components; on a few sources most of them can be noise. Parallel
analysis (Horn, 1965) keeps a component only while its eigenvalue beats what the same matrix gives
with its structure destroyed. As in Horn's test the eigenvalues are those of the target
correlation matrix: on covariances, one target with a wide spread of transfer would set every
threshold. The null shuffles each target's column independently (Buja and Eyuboglu, 1992), which
keeps every target's own values and removes only the co-variation between targets - exactly what a
latent ability would be.
"""

from __future__ import annotations

import numpy as np


def eigenvalues(X: np.ndarray) -> np.ndarray:
    """Eigenvalues of the target covariance (ddof=1), descending: the PCA variances.

    Parameters
    ----------
    X : ndarray of shape (n_sources, n_targets)

    Returns
    -------
    ndarray of shape (min(n_sources - 1, n_targets),)
    """
    X = np.asarray(X, dtype=float)
    n, p = X.shape
    s = np.linalg.svd(X - X.mean(axis=0), compute_uv=False)
    return (s**2 / max(n - 1, 1))[: max(1, min(n - 1, p))]


def standardised(X: np.ndarray) -> np.ndarray:
    """Columns scaled to unit variance (ddof=1), constant columns dropped: PCA of this is PCA of
    the correlation matrix."""
    X = np.asarray(X, dtype=float)
    sd = X.std(axis=0, ddof=1) if len(X) > 1 else np.zeros(X.shape[1])
    keep = sd > 1e-12
    return (X[:, keep] - X[:, keep].mean(axis=0)) / sd[keep]


def parallel_analysis(X: np.ndarray, n_iter: int = 500, quantile: float = 0.95,
                      seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Correlation eigenvalues of ``X`` and their thresholds: the ``quantile`` of each ordered
    eigenvalue over ``n_iter`` column-shuffled copies.

    Returns
    -------
    observed, thresholds : ndarrays of shape (min(n_sources - 1, n_varying_targets),)
    """
    Z = standardised(X)
    if Z.shape[1] == 0:
        return np.zeros(1), np.zeros(1)
    rng = np.random.default_rng(seed)
    null = np.array([eigenvalues(rng.permuted(Z, axis=0)) for _ in range(n_iter)])
    return eigenvalues(Z), np.quantile(null, quantile, axis=0)


def choose(spec, X: np.ndarray, seed: int = 0, limit: int | None = None) -> tuple[int | None, dict]:
    """Number of components from a registry ``n_components`` entry, and the scree it was read from.

    ``spec`` is None (the decomposer's own default, returned as None), an int (fixed), a float in
    (0, 1) (fewest components whose explained variance reaches it) or ``"parallel"``. Parallel
    analysis keeps the leading components that beat their threshold; when none does, one is kept
    (a decomposer needs one) and ``"retained_by_test": 0`` says the matrix shows no structure
    beyond chance.

    ``limit`` is the most components the decomposer can fit on ``X``, by default
    min(n_sources - 1, n_targets), the rank of the centred matrix. A fixed number above it is
    capped, and the scree's ``"note"`` says so: a centred matrix of n sources has no n-th
    direction, and a component fitted there would explain nothing yet be named and tested.
    """
    values = eigenvalues(X)
    total = values.sum()
    ratios = values / total if total > 0 else np.zeros_like(values)
    scree = {"eigenvalues": values.tolist(), "explained_variance_ratio": ratios.tolist(),
             "cumulative": np.cumsum(ratios).tolist()}
    # At least one: a decomposer needs one, and its fit says why a matrix cannot have any.
    limit = max(1, len(values) if limit is None else limit)
    if spec is None:
        return None, {"method": "decomposer default", **scree}
    if isinstance(spec, int) and not isinstance(spec, bool):
        if spec <= limit:
            return spec, {"method": "fixed", **scree}
        n, p = X.shape
        why = (f"a centred {n} x {p} matrix has at most min(n_sources - 1, n_targets) = {limit} components "
               "with non-zero variance" if limit < min(n, p) else f"a {n} x {p} matrix has rank at most {limit}")
        return limit, {"method": "fixed", "note": f"n_components={spec} capped at {limit}: {why}", **scree}
    limit = min(limit, len(values))  # the scree has only the centred matrix's components
    if isinstance(spec, float):
        k = int(np.searchsorted(np.cumsum(ratios), spec - 1e-12) + 1)
        return min(k, limit), {"method": f"explained variance >= {spec}", **scree}
    if spec == "parallel":
        observed, thresholds = parallel_analysis(X, seed=seed)
        beats = observed > thresholds + 1e-12
        retained = int(np.argmin(beats)) if not beats.all() else len(beats)
        return max(min(retained, limit), 1), {
            "method": "parallel analysis (correlation eigenvalues vs column permutations, 95th percentile)",
            "correlation_eigenvalues": observed.tolist(), "parallel_thresholds": thresholds.tolist(),
            "retained_by_test": retained, **scree}
    raise ValueError(f"n_components must be an integer, a float in (0, 1), 'parallel' or empty; got {spec!r}")
