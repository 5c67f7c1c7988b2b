"""Independent component analysis of the transfer matrix (scikit-learn's FastICA)."""

from __future__ import annotations

from numbers import Integral

import numpy as np

from harness.api import Decomposer, as_matrix, check_n_components, components_to_keep, hookimpl


class FastICA(Decomposer):
    """Independent components: source scores that are as non-Gaussian (so as independent) as possible.

    ``X ~= mean_ + scores @ components_``, where the columns of ``scores`` are statistically
    independent with unit variance and ``components_`` is the mixing matrix. PCA only decorrelates;
    ICA can separate abilities that a few sources carry strongly and the rest not at all (skewed,
    heavy-tailed scores) even where PCA mixes them. Wraps ``sklearn.decomposition.FastICA``
    (``whiten="unit-variance"``). With few sources, independence is estimated from few samples:
    expect the components to change with the seed when n_sources is small.

    Parameters
    ----------
    n_components : int or None, default None
        Components kept; None keeps min(n_sources - 1, n_targets), the rank of the centred matrix
        and the most whitening allows.
    max_iter : int, default 1000
        FastICA iterations at most.
    random_state : int, default 0
        Seed of FastICA's initial unmixing matrix.

    Attributes
    ----------
    mean_ : ndarray of shape (n_targets,)
        Per-target mean transfer, removed before the fit.
    components_ : ndarray of shape (n_components, n_targets)
        Loadings: the mixing matrix (scikit-learn's ``mixing_.T``), ordered by explained variance,
        each component's largest |loading| positive.
    explained_variance_ratio_ : ndarray of shape (n_components,)
        Variance of each component's rank-1 reconstruction ``outer(scores[:, i], components_[i])``
        over the total variance of ``X`` (ddof=0), clipped to [0, 1]. Independent components are
        not orthogonal in target space, so the shares need not sum to the whole.
    unmixing_ : ndarray of shape (n_components, n_targets)
        ``transform(X) == (X - mean_) @ unmixing_.T``.
    n_iter_ : int
        FastICA iterations run.
    n_components_ : int
        Components kept.
    """

    name = "ica"
    description = "Independent component analysis (scikit-learn's FastICA, unit-variance sources)."

    def __init__(self, n_components: int | None = None, max_iter: int = 1000, random_state=0):
        check_n_components(n_components)
        if not isinstance(max_iter, Integral) or max_iter < 1:
            raise ValueError(f"max_iter must be a positive integer, got {max_iter!r}")
        self.n_components = n_components
        self.max_iter = max_iter
        self.random_state = random_state

    def fit(self, X, y=None) -> FastICA:
        """Fit to ``X`` of shape (n_sources, n_targets). Returns ``self``."""
        from sklearn.decomposition import FastICA as SkFastICA

        X = as_matrix(X)
        n, p = X.shape
        # Whitening divides by the singular values of the centred matrix, whose rank is at most n - 1.
        k = components_to_keep(self.n_components, n, p)
        self.mean_ = X.mean(axis=0)
        Xc = X - self.mean_
        s = np.linalg.svd(Xc, compute_uv=False)
        if s[k - 1] <= s[0] * 1e-10:
            rank = int((s > s[0] * 1e-10).sum())
            raise ValueError(f"the centred matrix has rank {rank}, fewer than n_components={k}; "
                             "ICA cannot whiten more directions than that (lower n_components)")
        model = SkFastICA(n_components=k, whiten="unit-variance", max_iter=self.max_iter,
                          random_state=self.random_state)
        scores = model.fit_transform(X)
        mixing = model.mixing_.T  # (k, p)
        # Scores are centred, so the rank-1 part's variance is var(score) * ||mixing row||^2.
        total = Xc.var(axis=0).sum()
        part = scores.var(axis=0) * (mixing**2).sum(axis=1)
        ratio = np.clip(part / total, 0.0, 1.0) if total > 0 else np.zeros(k)
        order = np.argsort(-ratio, kind="stable")
        mixing = mixing[order]
        signs = np.sign(mixing[np.arange(k), np.abs(mixing).argmax(axis=1)])
        signs[signs == 0] = 1.0
        self.components_ = mixing * signs[:, None]
        self.unmixing_ = model.components_[order] * signs[:, None]
        self.explained_variance_ratio_ = ratio[order]
        self.n_iter_ = int(model.n_iter_)
        self.n_components_ = k
        return self

    def transform(self, X) -> np.ndarray:
        """Independent source scores of shape (n_sources, n_components)."""
        return (np.asarray(X, dtype=float) - self.mean_) @ self.unmixing_.T


@hookimpl
def register_decomposers(register):
    register(FastICA)
