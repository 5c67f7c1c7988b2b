"""Maximum-likelihood factor analysis of the transfer matrix, optionally rotated."""

from __future__ import annotations

from numbers import Integral, Real

import numpy as np

from harness.api import Decomposer, as_matrix, check_n_components, components_to_keep, hookimpl, promax, varimax

ROTATIONS = (None, "varimax", "promax")


class FactorAnalysis(Decomposer):
    """Gaussian latent factors plus per-target noise, fitted by maximum likelihood.

    The model is ``x = mean_ + z @ W + e`` with ``z ~ N(0, I)`` over the factors and independent
    noise ``e_j ~ N(0, noise_variance_[j])`` per target: unlike PCA, variance a target has on its own
    (evaluation noise, say) goes to the noise term instead of into the components. The fit is
    scikit-learn's ``FactorAnalysis(svd_method="lapack")`` (its exact SVD, so the fit is
    deterministic); the ordering, signs and rotations are done here.

    With few sources (fewer than targets, the usual transfer matrix) the likelihood is degenerate:
    some noise variances go to their floor of 1e-12 and the factors pass exactly through those
    targets (a Heywood case). The result is still finite and reproducible, but read it as a
    description of these sources, not as an estimate of a population.

    Parameters
    ----------
    n_components : int or None, default None
        Factors kept; None keeps min(n_sources - 1, n_targets), the rank of the centred matrix and
        the most this fit allows.
    rotation : {None, "varimax", "promax"}, default None
        None keeps the unrotated factors (ordered like principal axes). "varimax" rotates them
        orthogonally towards simple structure, each target loading on few factors (raw criterion,
        as scikit-learn). "promax" goes on from varimax to an oblique rotation: factors may
        correlate, and loadings become the pattern matrix.
    power : float, default 4
        Promax exponent (ignored otherwise); larger gives simpler patterns and more correlated factors.
    max_iter : int, default 1000
        Iterations of the likelihood fit at most (a ConvergenceWarning is issued when reached).
    tol : float, default 1e-2
        Stop when the log-likelihood gains less than this in an iteration (scikit-learn's default).

    Attributes
    ----------
    mean_ : ndarray of shape (n_targets,)
        Per-target mean transfer, removed before the fit.
    components_ : ndarray of shape (n_components, n_targets)
        Loadings after rotation (for promax the pattern matrix), ordered by explained variance;
        each component's largest |loading| is positive.
    unrotated_components_ : ndarray of shape (n_components, n_targets)
        The maximum-likelihood loadings before rotation (same ordering and sign rule).
    rotation_matrix_ : ndarray of shape (n_components, n_components)
        ``components_.T == unrotated_components_.T @ rotation_matrix_``; the identity without
        rotation, orthogonal for varimax.
    factor_correlation_ : ndarray of shape (n_components, n_components)
        Correlations of the factors: the identity unless ``rotation="promax"``.
    noise_variance_ : ndarray of shape (n_targets,)
        Variance of each target not explained by the factors (ddof=0, floored at 1e-12).
    explained_variance_ratio_ : ndarray of shape (n_components,)
        Sum of squared loadings of each factor over the total variance of the targets (ddof=0),
        clipped to [0, 1]. Under promax the factors correlate, so these shares overlap and may sum
        to more than the factors explain together.
    loglike_ : list of float
        Log-likelihood after each iteration.
    n_iter_ : int
        Iterations run.
    n_components_ : int
        Factors kept.
    model_ : sklearn.decomposition.FactorAnalysis
        The fitted scikit-learn model, unrotated, its factors in its own order and sign.
    """

    name = "factor_analysis"
    description = "Maximum-likelihood factor analysis (scikit-learn's algorithm), with varimax or promax rotation."

    def __init__(self, n_components: int | None = None, rotation: str | None = None, power: float = 4,
                 max_iter: int = 1000, tol: float = 1e-2):
        check_n_components(n_components)
        if rotation not in ROTATIONS:
            raise ValueError(f"rotation must be one of {ROTATIONS}, got {rotation!r}")
        if not isinstance(power, Real) or power < 1:
            raise ValueError(f"power must be a number of at least 1, got {power!r}")
        if not isinstance(max_iter, Integral) or max_iter < 1:
            raise ValueError(f"max_iter must be a positive integer, got {max_iter!r}")
        if not isinstance(tol, Real) or tol < 0:
            raise ValueError(f"tol must be a non-negative number, got {tol!r}")
        self.n_components = n_components
        self.rotation = rotation
        self.power = power
        self.max_iter = max_iter
        self.tol = tol

    def fit(self, X, y=None) -> FactorAnalysis:
        """Fit to ``X`` of shape (n_sources, n_targets). Returns ``self``."""
        from sklearn.decomposition import FactorAnalysis as SkFactorAnalysis  # imported late, as it is slow

        X = as_matrix(X)
        n, p = X.shape
        # The centred matrix has rank at most n - 1; a further factor would have a zero singular
        # value and an infinite log-likelihood.
        k = components_to_keep(self.n_components, n, p)

        # Unrotated: the rotations are ours (harness.api.rotation), run to a tighter stopping rule.
        model = SkFactorAnalysis(n_components=k, tol=self.tol, max_iter=self.max_iter, svd_method="lapack").fit(X)
        W, P_fit = _order_and_sign(model.components_)

        if self.rotation is None:
            R, phi = np.eye(k), np.eye(k)
        elif self.rotation == "varimax":
            R = varimax(W.T)[1]
            phi = np.eye(k)
        else:
            _, R, phi = promax(W.T, power=self.power)
        # Order and sign the rotated factors, folding the signed permutation into R and phi.
        components, P = _order_and_sign(R.T @ W)
        R = R @ P.T
        phi = P @ phi @ P.T

        total = np.var(X, axis=0).sum()
        ssl = (components**2).sum(axis=1)
        self.mean_ = model.mean_
        self.components_ = components
        self.unrotated_components_ = W
        self.rotation_matrix_ = R
        self.factor_correlation_ = phi
        self.noise_variance_ = model.noise_variance_
        self.explained_variance_ratio_ = np.clip(ssl / total, 0.0, 1.0) if total > 0 else np.zeros(k)
        self.loglike_ = [float(ll) for ll in model.loglike_]
        self.n_iter_ = int(model.n_iter_)
        self.n_components_ = k
        self.model_ = model
        # scikit-learn's scores z rebuild X as z @ model.components_ = (z @ P_fit.T) @ W, and W as
        # inv(R).T @ components_; so the scores of components_ are z @ P_fit.T @ inv(R).T.
        self._score_map = P_fit.T @ np.linalg.inv(R).T
        return self

    def transform(self, X) -> np.ndarray:
        """Factor scores of shape (n_sources, n_components).

        The posterior mean of the unrotated factors given ``X`` (Bishop, 2006, eq. 12.66), from
        scikit-learn's ``transform``, put in this order and sign and carried into the rotated frame by
        ``inv(rotation_matrix_).T`` so that ``scores @ components_`` is the same reconstruction as
        before rotation. Under varimax this is what scikit-learn's ``transform`` of its varimax fit
        returns; under promax the factors, and so their scores, correlate.
        """
        return self.model_.transform(np.asarray(X, dtype=float)) @ self._score_map


def _order_and_sign(components: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows sorted by sum of squares (descending, stable), each with its largest |entry| positive.

    Returns the new rows and the signed permutation P with ``new = P @ components``.
    """
    order = np.argsort(-(components**2).sum(axis=1), kind="stable")
    C = components[order]
    signs = np.sign(C[np.arange(len(C)), np.abs(C).argmax(axis=1)])
    signs[signs == 0] = 1.0
    P = np.eye(len(C))[order] * signs[:, None]
    return C * signs[:, None], P


@hookimpl
def register_decomposers(register):
    register(FactorAnalysis)
