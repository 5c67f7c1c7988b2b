"""Maximum-likelihood factor analysis of the transfer matrix, optionally rotated."""

from __future__ import annotations

import warnings
from numbers import Integral, Real

import numpy as np

from harness.api.decomposer import Decomposer, as_matrix, check_n_components, components_to_keep
from harness.api.hookspecs import hookimpl
from harness.api.rotation import promax, varimax

ROTATIONS = (None, "varimax", "promax")
SMALL = 1e-12  # scikit-learn's floor of the noise variances (and offset of their square roots)


class FactorAnalysis(Decomposer):
    """Gaussian latent factors plus per-target noise, fitted by maximum likelihood.

    The model is ``x = mean_ + z @ W + e`` with ``z ~ N(0, I)`` over the factors and independent
    noise ``e_j ~ N(0, noise_variance_[j])`` per target: unlike PCA, variance a target has on its own
    (evaluation noise, say) goes to the noise term instead of into the components. The fit is
    scikit-learn's SVD-based algorithm (``FactorAnalysis(svd_method="lapack")``), in numpy, so its
    results equal scikit-learn's.

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

    def fit(self, X, y=None) -> "FactorAnalysis":
        """Fit to ``X`` of shape (n_sources, n_targets). Returns ``self``."""
        X = as_matrix(X)
        n, p = X.shape
        # The centred matrix has rank at most n - 1; a further factor would have a zero singular
        # value and an infinite log-likelihood.
        k = components_to_keep(self.n_components, n, p)

        self.mean_ = X.mean(axis=0)
        Xc = X - self.mean_
        W, psi, loglike = _fit_ml(Xc, k, self.max_iter, self.tol)
        W, _ = _order_and_sign(W)

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
        self.components_ = components
        self.unrotated_components_ = W
        self.rotation_matrix_ = R
        self.factor_correlation_ = phi
        self.noise_variance_ = psi
        self.explained_variance_ratio_ = np.clip(ssl / total, 0.0, 1.0) if total > 0 else np.zeros(k)
        self.loglike_ = loglike
        self.n_iter_ = len(loglike)
        self.n_components_ = k
        return self

    def transform(self, X) -> np.ndarray:
        """Factor scores of shape (n_sources, n_components).

        The posterior mean of the unrotated factors given ``X`` (Bishop, 2006, eq. 12.66; the formula
        of scikit-learn's ``transform``), carried into the rotated frame by ``inv(rotation_matrix_).T``
        so that ``scores @ components_`` is the same reconstruction as before rotation. Under varimax
        this is what scikit-learn's ``transform`` returns; under promax the factors, and so their
        scores, correlate.
        """
        X = np.asarray(X, dtype=float)
        W, psi = self.unrotated_components_, self.noise_variance_
        W_psi = W / psi
        cov_z = np.linalg.inv(np.eye(len(W)) + W_psi @ W.T)
        z = (X - self.mean_) @ W_psi.T @ cov_z
        return z @ np.linalg.inv(self.rotation_matrix_).T


def _fit_ml(Xc: np.ndarray, k: int, max_iter: int, tol: float) -> tuple[np.ndarray, np.ndarray, list[float]]:
    """scikit-learn's iterated SVD for ML factor analysis of the centred ``Xc`` (n, p).

    Returns the loadings W (k, p), the noise variances psi (p,) and the log-likelihood per iteration.
    """
    from scipy import linalg  # scikit-learn's SVD call, for identical results; imported late, as it is slow

    n, p = Xc.shape
    n_sqrt = np.sqrt(n)
    ll_const = p * np.log(2.0 * np.pi) + k
    var = Xc.var(axis=0)
    psi = np.ones(p)
    loglike: list[float] = []
    old_ll = -np.inf
    for _ in range(max_iter):
        sqrt_psi = np.sqrt(psi) + SMALL
        # With psi fixed, the ML loadings are the top singular directions of the noise-whitened data.
        _, s, Vt = linalg.svd(Xc / (sqrt_psi * n_sqrt), full_matrices=False, check_finite=False)
        # Same operations in the same order as scikit-learn: where the likelihood is flat (few
        # sources) the stopping rule is sensitive to the last bit of rounding.
        unexplained = np.dot(s[k:], s[k:])
        s2, Vt = s[:k] ** 2, Vt[:k]
        W = np.sqrt(np.maximum(s2 - 1.0, 0.0))[:, None] * Vt
        W *= sqrt_psi
        ll = ll_const + np.sum(np.log(s2))
        ll += unexplained + np.sum(np.log(psi))
        ll *= -n / 2.0
        loglike.append(float(ll))
        if ll - old_ll < tol:
            break
        old_ll = ll
        psi = np.maximum(var - (W**2).sum(axis=0), SMALL)
    else:
        from sklearn.exceptions import ConvergenceWarning

        warnings.warn(f"FactorAnalysis did not converge in max_iter={max_iter} iterations; increase max_iter "
                      "or tol", ConvergenceWarning, stacklevel=3)
    return W, psi, loglike


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
