"""Factor rotations: varimax (orthogonal) and promax (oblique).

Both take loadings of shape (n_targets, n_factors), the layout of the factor-analysis literature and
of R's ``stats`` package (``components_.T`` in scikit-learn's layout), and return the rotated
loadings with the matrix that rotates them: ``rotated = loadings @ rotation_matrix``.
"""

from __future__ import annotations

import numpy as np


def varimax_criterion(loadings: np.ndarray) -> float:
    """Raw varimax criterion: the summed per-factor variance of the squared loadings.

    Parameters
    ----------
    loadings : ndarray of shape (n_targets, n_factors)

    Returns
    -------
    float
        ``sum_k [ mean_j L_jk^4 - (mean_j L_jk^2)^2 ]``; varimax rotates to maximise it.
    """
    squared = np.asarray(loadings, dtype=float) ** 2
    return float(((squared**2).mean(axis=0) - squared.mean(axis=0) ** 2).sum())


def varimax(loadings, tol: float = 1e-10, max_iter: int = 1000,
            normalize: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Varimax rotation (Kaiser, 1958): the orthogonal rotation maximising the raw varimax criterion.

    Solved by the SVD iteration of R's ``stats::varimax`` and scikit-learn's
    ``FactorAnalysis(rotation="varimax")``, which reaches the same optimum as Kaiser's pairwise
    planar rotations but rotates all factors at once.

    Parameters
    ----------
    loadings : array-like of shape (n_targets, n_factors)
        Unrotated loadings, one row per observed variable.
    tol : float, default 1e-10
        Stop when no entry of the rotation matrix changes by more than ``tol`` between iterations.
        (R and scikit-learn stop on the relative gain of the criterion instead; near the optimum
        that gain is quadratic in the remaining error, so a criterion tolerance of 1e-6 can leave the
        rotation off by about 1e-3.)
    max_iter : int, default 1000
        Iterations at most; the result of the last one is returned if ``tol`` is not reached.
    normalize : bool, default False
        Kaiser normalisation: rotate the rows scaled to unit length (so variables with little common
        variance weigh as much as the others), then scale back. False gives the raw criterion of
        scikit-learn; R's ``varimax`` defaults to True.

    Returns
    -------
    rotated : ndarray of shape (n_targets, n_factors)
        ``loadings @ rotation_matrix``.
    rotation_matrix : ndarray of shape (n_factors, n_factors)
        Orthogonal.

    References
    ----------
    Kaiser, H. F. (1958). The varimax criterion for analytic rotation in factor analysis.
    *Psychometrika*, 23(3), 187-200.
    """
    L = np.asarray(loadings, dtype=float)
    if L.ndim != 2 or not np.isfinite(L).all():
        raise ValueError("loadings must be a finite 2-D array of shape (n_targets, n_factors)")
    p, k = L.shape
    active = _active(L)
    if active.sum() < k:
        # Empty factors (all-zero loadings, e.g. factor analysis with more factors than the data
        # supports) stay where they are: the criterion is flat in them, so an SVD step could mix
        # them into the others arbitrarily.
        R = np.eye(k)
        R[np.ix_(active, active)] = varimax(L[:, active], tol, max_iter, normalize)[1]
        return L @ R, R
    if k < 2:  # one factor has nothing to rotate against
        return L.copy(), np.eye(k)
    if normalize:
        norms = np.sqrt((L**2).sum(axis=1))
        norms[norms == 0] = 1.0  # an all-zero row stays zero either way
        L = L / norms[:, None]
    R = np.eye(k)
    for _ in range(max_iter):
        B = L @ R
        # Gradient of the criterion; its polar factor is the best rotation for the linearised problem.
        u, _, vt = np.linalg.svd(L.T @ (B**3 - B * (B**2).sum(axis=0) / p))
        R_new = u @ vt
        done = np.abs(R_new - R).max() <= tol
        R = R_new
        if done:
            break
    rotated = L @ R
    if normalize:
        rotated *= norms[:, None]
    return rotated, R


def promax(loadings, power: float = 4, normalize: bool = False,
           tol: float = 1e-10, max_iter: int = 1000) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Promax rotation (Hendrickson & White, 1964), following R's ``stats::promax``.

    Varimax first; then the target ``Q = L * |L|**(power - 1)`` (small loadings shrink faster than
    large ones) is approached by the least-squares ``L U ~= Q``, and ``U``'s columns are rescaled so
    that the factors have unit variance.

    Parameters
    ----------
    loadings : array-like of shape (n_targets, n_factors)
        Unrotated loadings.
    power : float, default 4
        Exponent of the target; larger gives simpler patterns and more correlated factors.
    normalize : bool, default False
        Kaiser normalisation in the varimax step (see :func:`varimax`). R's ``promax`` calls
        ``varimax`` with its default True; pass True to reproduce R.
    tol, max_iter
        Passed to :func:`varimax`.

    Returns
    -------
    pattern : ndarray of shape (n_targets, n_factors)
        Pattern loadings, ``loadings @ rotation_matrix``: the regression weights of the variables on
        the (correlated) factors.
    rotation_matrix : ndarray of shape (n_factors, n_factors)
        The varimax rotation times ``U``; not orthogonal.
    factor_correlation : ndarray of shape (n_factors, n_factors)
        Correlations of the rotated factors, ``inv(rotation_matrix.T @ rotation_matrix)``; unit
        diagonal. ``pattern @ factor_correlation @ pattern.T`` equals ``loadings @ loadings.T``: the
        rotation redistributes the common variance, it does not change it.

    References
    ----------
    Hendrickson, A. E., & White, P. O. (1964). Promax: a quick method for rotation to oblique simple
    structure. *British Journal of Statistical Psychology*, 17(1), 65-70.

    Kaiser, H. F. (1958). The varimax criterion for analytic rotation in factor analysis.
    *Psychometrika*, 23(3), 187-200.
    """
    if power < 1:
        raise ValueError(f"power must be at least 1, got {power!r}")
    L, T = varimax(loadings, tol=tol, max_iter=max_iter, normalize=normalize)
    k = L.shape[1]
    active = _active(L)
    if active.sum() < k:
        # Empty factors stay put (see varimax): the least-squares U would be singular in them.
        U, phi = np.eye(k), np.eye(k)
        block = np.ix_(active, active)
        _, U[block], phi[block] = promax(L[:, active], power, normalize, tol, max_iter)
        return L @ U, T @ U, phi
    if k < 2:
        return L, T, np.eye(k)
    Q = L * np.abs(L) ** (power - 1)
    U = np.linalg.lstsq(L, Q, rcond=None)[0]
    # Rescale so that inv(U.T U), the factor covariance in the varimax frame, has a unit diagonal.
    U = U * np.sqrt(np.diag(np.linalg.inv(U.T @ U)))
    rotation = T @ U
    # T is orthogonal, so inv(rotation.T @ rotation) = inv(U.T @ U); computed from the total so the
    # identity with `rotation_matrix` holds to rounding.
    phi = np.linalg.inv(rotation.T @ rotation)
    phi = (phi + phi.T) / 2
    return L @ U, rotation, phi


def _active(L: np.ndarray) -> np.ndarray:
    """Columns of ``L`` with loadings, as a boolean mask (all-zero columns are empty factors)."""
    norms = np.sqrt((L**2).sum(axis=0))
    return norms > 1e-12 * max(norms.max(initial=0.0), 1e-300)
