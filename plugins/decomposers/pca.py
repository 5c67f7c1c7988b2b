"""Principal component analysis of the transfer matrix (the method of Krishna et al., 2025)."""

from __future__ import annotations

import numpy as np

from harness.api import Decomposer, as_matrix, check_n_components, components_to_keep, hookimpl


class PCA(Decomposer):
    """Principal components of the centred transfer matrix, by singular value decomposition.

    Parameters
    ----------
    n_components : int or None, default None
        Components kept; None keeps min(n_sources - 1, n_targets), the most a centred matrix can
        have with non-zero variance. More raise ValueError: a further component would explain
        nothing and be an arbitrary direction named (and correlated with traits) as if real.

    Attributes
    ----------
    mean_ : ndarray of shape (n_targets,)
        Per-target mean transfer, removed before the decomposition.
    components_ : ndarray of shape (n_components, n_targets)
        Loadings: unit-norm directions in target space, ordered by variance explained. Signs follow
        scikit-learn's convention (the largest |loading| of each component is positive), so that
        results compare one-to-one with ``sklearn.decomposition.PCA``.
    explained_variance_ : ndarray of shape (n_components,)
        Variance along each component (ddof=1).
    explained_variance_ratio_ : ndarray of shape (n_components,)
        Share of total variance; non-negative, descending, summing to at most 1.
    """

    name = "pca"
    description = "Principal component analysis of the centred transfer matrix (SVD)."

    def __init__(self, n_components: int | None = None):
        check_n_components(n_components)
        self.n_components = n_components

    def fit(self, X, y=None) -> PCA:
        """Fit to ``X`` of shape (n_sources, n_targets). Returns ``self``."""
        X = as_matrix(X)
        n, p = X.shape
        k = components_to_keep(self.n_components, n, p)
        self.mean_ = X.mean(axis=0)
        U, S, Vt = np.linalg.svd(X - self.mean_, full_matrices=False)
        # Deterministic signs: make each component's largest-magnitude loading positive.
        signs = np.sign(Vt[np.arange(len(Vt)), np.abs(Vt).argmax(axis=1)])
        signs[signs == 0] = 1.0
        Vt = Vt * signs[:, None]
        variance = S**2 / max(n - 1, 1)
        total = variance.sum()
        self.components_ = Vt[:k]
        self.explained_variance_ = variance[:k]
        self.explained_variance_ratio_ = variance[:k] / total if total > 0 else np.zeros(k)
        self.n_components_ = k
        return self

    def transform(self, X) -> np.ndarray:
        """Scores of shape (n_sources, n_components): ``X`` centred and projected on the loadings."""
        return (np.asarray(X, dtype=float) - self.mean_) @ self.components_.T


@hookimpl
def register_decomposers(register):
    register(PCA)
