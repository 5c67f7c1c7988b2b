"""Decomposers beyond PCA: registration, scikit-learn parity, and the rotations against their
published algorithms. Their conformance checks are in tests/conformance/test_decomposer_conformance.py."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.decomposition import FactorAnalysis as SkFactorAnalysis
from sklearn.exceptions import ConvergenceWarning

from harness.api import plugins
from harness.api.rotation import promax, varimax, varimax_criterion
from harness.authoring.conformance import check_decomposer
from harness_plugins.decomposers.factor_analysis import FactorAnalysis
from harness_plugins.decomposers.ica import FastICA
from harness_plugins.decomposers.nmf import NMF

# Tiny matrices leave FastICA (and rank-1 NMF, whose start is already optimal) short of their
# stopping rules; the results are still checked below, the warnings are noise here.
pytestmark = pytest.mark.filterwarnings(f"ignore::{ConvergenceWarning.__module__}.{ConvergenceWarning.__name__}")

DECOMPOSERS = plugins.catalog().names("decomposer")


# --- registration ------------------------------------------------------------------------------

def test_the_new_decomposers_are_registered():
    assert {"pca", "factor_analysis", "nmf", "ica"} <= set(DECOMPOSERS)
    entry = plugins.catalog().get("decomposer", "factor_analysis")
    assert entry.obj is FactorAnalysis and entry.plugin == "decomposers.factor_analysis"
    assert plugins.catalog().get("decomposer", "nmf").obj is NMF
    assert plugins.catalog().get("decomposer", "ica").obj is FastICA


# --- helpers ------------------------------------------------------------------------------------

def canonical(loadings, *others):
    """Columns of ``loadings`` (n_targets, k) by sum of squares, descending, each with its largest
    |entry| positive; the same permutation and signs applied to the columns of ``others``."""
    order = np.argsort(-(loadings**2).sum(axis=0), kind="stable")
    L = loadings[:, order]
    signs = np.sign(L[np.abs(L).argmax(axis=0), np.arange(L.shape[1])])
    return (L * signs, *(o[:, order] * signs for o in others))


def factor_matrix(n, p, k, seed):
    """``n`` sources with ``k`` latent factors over ``p`` targets, plus per-target noise."""
    rng = np.random.default_rng(seed)
    return (rng.normal(size=(n, k)) @ rng.normal(size=(k, p)) + rng.normal(scale=rng.uniform(0.2, 0.8, p), size=(n, p)))


def congruence(a, b):
    """Tucker's congruence of two loading vectors, sign ignored."""
    return abs(a @ b) / np.linalg.norm(a) / np.linalg.norm(b)


# --- factor analysis against scikit-learn -------------------------------------------------------

FA_CASES = [((12, 5), 2, 0), ((30, 6), 3, 1), ((20, 8), 3, 2), ((4, 6), 2, 3), ((6, 4), 2, 4)]


@pytest.mark.parametrize("shape, k, seed", FA_CASES)
def test_factor_analysis_equals_scikit_learn(shape, k, seed):
    X = factor_matrix(*shape, k, seed)
    ours = FactorAnalysis(n_components=k).fit(X)
    theirs = SkFactorAnalysis(n_components=k, svd_method="lapack").fit(X)
    # The same operations in the same order: equal to the last bit in practice; 1e-10 leaves room
    # for another BLAS.
    ref, ref_scores = canonical(theirs.components_.T, theirs.transform(X))
    np.testing.assert_allclose(ours.components_.T, ref, rtol=0, atol=1e-10)
    np.testing.assert_allclose(ours.transform(X), ref_scores, rtol=0, atol=1e-10)
    np.testing.assert_allclose(ours.noise_variance_, theirs.noise_variance_, rtol=0, atol=1e-10)
    np.testing.assert_allclose(ours.loglike_, theirs.loglike_, rtol=1e-12)
    assert ours.n_iter_ == theirs.n_iter_
    np.testing.assert_array_equal(ours.rotation_matrix_, np.eye(k))
    np.testing.assert_array_equal(ours.factor_correlation_, np.eye(k))
    assert ours.explained_variance_ratio_ == pytest.approx((ours.components_**2).sum(axis=1) / X.var(axis=0).sum())


@pytest.mark.parametrize("shape, k, seed", FA_CASES)
def test_factor_analysis_varimax_equals_scikit_learn(shape, k, seed):
    X = factor_matrix(*shape, k, seed)
    ours = FactorAnalysis(n_components=k, rotation="varimax").fit(X)
    theirs = SkFactorAnalysis(n_components=k, rotation="varimax", svd_method="lapack").fit(X)
    ref, ref_scores = canonical(theirs.components_.T, theirs.transform(X))
    # scikit-learn stops its rotation once the criterion gains less than 1e-6 (relative; fixed, not
    # a parameter). The criterion is flat at the optimum, so that leaves its loadings up to 1.8e-3
    # and scores up to 2.4e-3 short (measured on these cases); ours runs until the rotation itself
    # stops moving, and is never worse by the criterion.
    np.testing.assert_allclose(ours.components_.T, ref, rtol=0, atol=5e-3)
    np.testing.assert_allclose(ours.transform(X), ref_scores, rtol=0, atol=5e-3)
    assert varimax_criterion(ours.components_.T) >= varimax_criterion(theirs.components_.T) - 1e-12
    # With scikit-learn's own rotation run to its limit, the two agree far closer. Its criterion
    # stopping rule cannot place the rotation better than about sqrt(machine epsilon) ~ 1.5e-8
    # (measured: up to 2.9e-8 in loadings, 3.9e-8 in scores), hence 1e-7.
    try:
        from sklearn.decomposition._factor_analysis import _ortho_rotation
    except ImportError:  # a private helper; only this half of the test depends on it
        pytest.skip("sklearn.decomposition._factor_analysis._ortho_rotation is gone")
    unrotated = SkFactorAnalysis(n_components=k, svd_method="lapack").fit(X)
    unrotated.components_ = _ortho_rotation(unrotated.components_.T, "varimax", tol=1e-15, max_iter=100_000)
    ref, ref_scores = canonical(unrotated.components_.T, unrotated.transform(X))
    np.testing.assert_allclose(ours.components_.T, ref, rtol=0, atol=1e-7)
    np.testing.assert_allclose(ours.transform(X), ref_scores, rtol=0, atol=1e-7)


@pytest.mark.parametrize("rotation", [None, "varimax", "promax"])
def test_rotations_keep_the_reconstruction_and_describe_themselves(rotation):
    X = factor_matrix(15, 7, 3, 7)
    plain = FactorAnalysis(n_components=3).fit(X)
    est = FactorAnalysis(n_components=3, rotation=rotation).fit(X)
    # Rotating the factors changes the loadings and scores, not what they rebuild.
    np.testing.assert_allclose(est.transform(X) @ est.components_, plain.transform(X) @ plain.components_, atol=1e-10)
    np.testing.assert_allclose(est.components_.T, est.unrotated_components_.T @ est.rotation_matrix_, atol=1e-12)
    np.testing.assert_allclose(np.diag(est.factor_correlation_), 1.0, atol=1e-12)
    L = est.components_.T
    np.testing.assert_allclose(L @ est.factor_correlation_ @ L.T, plain.components_.T @ plain.components_, atol=1e-10)
    if rotation != "promax":
        np.testing.assert_allclose(est.rotation_matrix_.T @ est.rotation_matrix_, np.eye(3), atol=1e-12)
        np.testing.assert_array_equal(est.factor_correlation_, np.eye(3))
    else:
        assert np.abs(est.factor_correlation_ - np.eye(3)).max() > 1e-3  # oblique: the factors correlate


def test_factor_analysis_handles_fewer_sources_than_targets():
    X = factor_matrix(4, 6, 2, 11)
    est = FactorAnalysis(rotation="varimax").fit(X)
    assert est.components_.shape == (3, 6) and est.transform(X).shape == (4, 3)
    with pytest.raises(ValueError, match="n_components=4 exceeds min\\(n_sources - 1, n_targets\\)=3"):
        FactorAnalysis(n_components=4).fit(X)
    with pytest.raises(ValueError, match="rotation must be one of"):
        FactorAnalysis(rotation="oblimin")


def handwritten_factor_analysis(X, k, rotation=None, power=4, max_iter=1000, tol=1e-2):
    """The plugin as it was before it fitted through scikit-learn: its own copy of scikit-learn's
    iterated SVD, then the same ordering, signs and rotations. The reference for the test below."""
    from scipy import linalg

    from harness_plugins.decomposers.factor_analysis import _order_and_sign

    n, p = X.shape
    mean = X.mean(axis=0)
    Xc = X - mean
    var, psi, loglike, old_ll = Xc.var(axis=0), np.ones(p), [], -np.inf
    for _ in range(max_iter):
        sqrt_psi = np.sqrt(psi) + 1e-12
        _, s, Vt = linalg.svd(Xc / (sqrt_psi * np.sqrt(n)), full_matrices=False, check_finite=False)
        unexplained = np.dot(s[k:], s[k:])
        s2, Vt = s[:k] ** 2, Vt[:k]
        W = np.sqrt(np.maximum(s2 - 1.0, 0.0))[:, None] * Vt
        W *= sqrt_psi
        ll = p * np.log(2.0 * np.pi) + k + np.sum(np.log(s2))
        ll += unexplained + np.sum(np.log(psi))
        ll *= -n / 2.0
        loglike.append(float(ll))
        if ll - old_ll < tol:
            break
        old_ll = ll
        psi = np.maximum(var - (W**2).sum(axis=0), 1e-12)
    W, _ = _order_and_sign(W)
    if rotation is None:
        R, phi = np.eye(k), np.eye(k)
    elif rotation == "varimax":
        R, phi = varimax(W.T)[1], np.eye(k)
    else:
        _, R, phi = promax(W.T, power=power)
    components, P = _order_and_sign(R.T @ W)
    R, phi = R @ P.T, P @ phi @ P.T
    W_psi = W / psi
    cov_z = np.linalg.inv(np.eye(k) + W_psi @ W.T)
    ratio = np.clip((components**2).sum(axis=1) / X.var(axis=0).sum(), 0.0, 1.0)
    return {"components_": components, "unrotated_components_": W, "rotation_matrix_": R,
            "factor_correlation_": phi, "noise_variance_": psi, "mean_": mean,
            "explained_variance_ratio_": ratio, "loglike_": loglike, "n_iter_": len(loglike),
            "transform": lambda Y: (Y - mean) @ W_psi.T @ cov_z @ np.linalg.inv(R).T}


@pytest.mark.parametrize("rotation", [None, "varimax", "promax"])
@pytest.mark.parametrize("shape, k, seed", FA_CASES)
def test_factor_analysis_equals_its_handwritten_fit(shape, k, seed, rotation):
    X = factor_matrix(*shape, k, seed)
    ours = FactorAnalysis(n_components=k, rotation=rotation, power=3).fit(X)
    old = handwritten_factor_analysis(X, k, rotation, power=3)
    # Same operations in the same order, so the fit agrees to rounding (the scores go through
    # scikit-learn's transform now, one more product); 1e-10 leaves room for another BLAS.
    assert ours.n_iter_ == old["n_iter_"] and ours.n_components_ == k
    np.testing.assert_allclose(ours.loglike_, old["loglike_"], rtol=1e-12)
    for name in ("components_", "unrotated_components_", "rotation_matrix_", "factor_correlation_",
                 "noise_variance_", "mean_", "explained_variance_ratio_"):
        np.testing.assert_allclose(getattr(ours, name), old[name], rtol=0, atol=1e-10, err_msg=name)
    new = factor_matrix(3, shape[1], k, seed + 100)  # sources not in the fit
    for Y in (X, new):
        np.testing.assert_allclose(ours.transform(Y), old["transform"](Y), rtol=0, atol=1e-10)


def test_factor_analysis_warns_as_before_when_it_stops_short():
    X = factor_matrix(20, 8, 3, 2)
    with pytest.warns(ConvergenceWarning):
        ours = FactorAnalysis(n_components=3, max_iter=2, tol=0.0).fit(X)
    old = handwritten_factor_analysis(X, 3, max_iter=2, tol=0.0)
    assert ours.n_iter_ == old["n_iter_"] == 2
    np.testing.assert_allclose(ours.components_, old["components_"], rtol=0, atol=1e-10)
    np.testing.assert_allclose(ours.transform(X), old["transform"](X), rtol=0, atol=1e-10)
    check_decomposer(FactorAnalysis, max_iter=2, tol=0.0)


# --- varimax against Kaiser's pairwise rotations ------------------------------------------------

def kaiser_varimax(loadings, normalize=False, tol=1e-14, max_sweeps=10_000):
    """Kaiser's (1958) varimax: planar rotations of each pair of factors by the angle that maximises
    the criterion for that pair, swept over all pairs until no angle is left."""
    L = np.array(loadings, dtype=float)
    p, k = L.shape
    h = np.sqrt((L**2).sum(axis=1)) if normalize else np.ones(p)
    L = L / h[:, None]
    for _ in range(max_sweeps):
        largest = 0.0
        for j in range(k - 1):
            for m in range(j + 1, k):
                x, y = L[:, j].copy(), L[:, m].copy()
                u, v = x**2 - y**2, 2 * x * y
                A, B, C, D = u.sum(), v.sum(), (u**2 - v**2).sum(), 2 * (u * v).sum()
                phi = np.arctan2(D - 2 * A * B / p, C - (A**2 - B**2) / p) / 4
                L[:, j], L[:, m] = x * np.cos(phi) + y * np.sin(phi), -x * np.sin(phi) + y * np.cos(phi)
                largest = max(largest, abs(phi))
        if largest < tol:
            break
    return L * h[:, None]


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("normalize", [False, True])
def test_varimax_equals_kaiser_pairwise_rotations(seed, normalize):
    rng = np.random.default_rng(seed)
    L = rng.normal(size=(int(rng.integers(5, 12)), int(rng.integers(2, 5))))
    rotated, R = varimax(L, normalize=normalize)
    np.testing.assert_allclose(R.T @ R, np.eye(L.shape[1]), atol=1e-12)
    np.testing.assert_allclose(rotated, L @ R, atol=1e-12)
    (ours,) = canonical(rotated)
    (reference,) = canonical(kaiser_varimax(L, normalize=normalize))
    np.testing.assert_allclose(ours, reference, rtol=0, atol=1e-6)  # measured: below 4e-9
    if not normalize:
        assert varimax_criterion(rotated) >= varimax_criterion(L) - 1e-12


def test_varimax_leaves_one_factor_and_empty_factors_alone():
    L = np.random.default_rng(0).normal(size=(6, 1))
    np.testing.assert_array_equal(varimax(L)[0], L)
    padded = np.hstack([np.random.default_rng(1).normal(size=(6, 2)), np.zeros((6, 1))])
    rotated, R = varimax(padded)
    np.testing.assert_array_equal(rotated[:, 2], 0.0)
    np.testing.assert_allclose(rotated[:, :2], varimax(padded[:, :2])[0], atol=1e-12)
    pattern, R, phi = promax(padded)
    np.testing.assert_array_equal(pattern[:, 2], 0.0)
    np.testing.assert_allclose(pattern[:, :2], promax(padded[:, :2])[0], atol=1e-12)
    assert phi[2, 2] == 1.0 and not phi[2, :2].any() and np.isfinite(phi).all()


# --- promax -------------------------------------------------------------------------------------

def r_promax(x, m=4, normalize=True):
    """R's stats::promax transcribed line by line (R 4.x), with factanal's factor correlations."""
    xx = kaiser_varimax(x, normalize=normalize)                 # xx <- varimax(x)
    rotmat = np.linalg.lstsq(x, xx, rcond=None)[0]              # xx$rotmat
    x = xx                                                      # x <- xx$loadings
    Q = x * np.abs(x) ** (m - 1)                                # Q <- x * abs(x)^(m-1)
    U = np.linalg.lstsq(x, Q, rcond=None)[0]                    # U <- lm.fit(x, Q)$coefficients
    d = np.diag(np.linalg.solve(U.T @ U, np.eye(len(U))))       # d <- diag(solve(t(U) %*% U))
    U = U @ np.diag(np.sqrt(d))                                 # U <- U %*% diag(sqrt(d))
    z = x @ U                                                   # z <- x %*% U
    U = rotmat @ U                                              # U <- xx$rotmat %*% U
    tmat = np.linalg.solve(U, np.eye(len(U)))                   # factanal: tmat <- solve(rotmat)
    return z, U, tmat @ tmat.T                                  #   R <- tmat %*% t(tmat)


@pytest.mark.parametrize("normalize", [False, True])
def test_promax_equals_r_on_a_small_matrix(normalize):
    # Two clusters of targets with some cross-loading: the case promax is for.
    L = np.array([[0.80, 0.30], [0.70, 0.25], [0.75, 0.40], [0.30, 0.70], [0.20, 0.80], [0.35, 0.60]])
    pattern, R, phi = promax(L, power=4, normalize=normalize)
    ref_pattern, ref_R, ref_phi = r_promax(L, 4, normalize=normalize)
    ours, ours_R = canonical(pattern, R)
    reference, reference_R = canonical(ref_pattern, ref_R)
    np.testing.assert_allclose(ours, reference, rtol=0, atol=1e-8)
    np.testing.assert_allclose(ours_R, reference_R, rtol=0, atol=1e-8)
    np.testing.assert_allclose(abs(phi[0, 1]), abs(ref_phi[0, 1]), atol=1e-8)
    assert abs(phi[0, 1]) > 0.3  # clearly oblique


@pytest.mark.parametrize("seed", range(4))
def test_promax_keeps_the_common_variance(seed):
    rng = np.random.default_rng(seed)
    L = rng.normal(size=(9, 3))
    pattern, R, phi = promax(L)
    np.testing.assert_allclose(np.diag(phi), 1.0, atol=1e-12)
    np.testing.assert_allclose(phi, phi.T, atol=1e-15)
    np.testing.assert_allclose(pattern, L @ R, atol=1e-12)
    vm = varimax(L)[0]
    np.testing.assert_allclose(pattern @ phi @ pattern.T, vm @ vm.T, rtol=0, atol=1e-8)
    np.testing.assert_allclose(vm @ vm.T, L @ L.T, rtol=0, atol=1e-10)


# --- NMF ----------------------------------------------------------------------------------------

def signed_transfer():
    """Two parts over 5 targets: A helps targets 0-1 and hurts target 4, B helps targets 2-3."""
    rng = np.random.default_rng(5)
    H = np.array([[1.0, 0.8, 0.0, 0.0, -0.6], [0.0, 0.0, 1.0, 0.7, 0.0]])
    W = rng.uniform(0, 1, size=(10, 2))
    W[0], W[1] = [1.0, 0.0], [0.0, 1.0]  # one pure source of each part: a unique factorisation
    return W @ H, H


def test_nmf_split_keeps_negative_transfer_as_negative_loadings():
    X, H = signed_transfer()
    est = NMF(n_components=2, negative="split").fit(X)
    assert est.shift_ == 0.0
    match = [max(range(2), key=lambda i: congruence(est.components_[i], h)) for h in H]
    assert sorted(match) == [0, 1]
    for i, h in zip(match, H):
        assert congruence(est.components_[i], h) > 0.99
    # Target 4 is only ever hurt: part A reports it as a negative loading.
    assert est.components_[match[0], 4] < 0
    # Gains minus losses rebuild the signed matrix.
    np.testing.assert_allclose(est.transform(X) @ est.components_, X, atol=1e-3)


def test_nmf_shift_reads_loadings_relative_to_the_worst_cell():
    X, _ = signed_transfer()
    est = NMF(n_components=3, negative="shift").fit(X)
    assert est.shift_ == X.min() < 0
    scores = est.transform(X)
    assert (est.components_ >= 0).all() and (scores >= 0).all()
    # The constant offset is one more part to fit: with it, the shifted matrix is rebuilt.
    np.testing.assert_allclose(scores @ est.components_ + est.shift_, X, atol=1e-2)


def test_nmf_error_refuses_negative_transfer_naming_the_options():
    X, _ = signed_transfer()
    with pytest.raises(ValueError, match="negative='split'.*negative='shift'"):
        NMF(negative="error").fit(X)
    NMF(n_components=2, negative="error").fit(np.abs(X))
    with pytest.raises(ValueError, match="negative must be one of"):
        NMF(negative="clip")


def test_nmf_recovers_a_planted_rank_two_matrix():
    rng = np.random.default_rng(3)
    H = np.array([[1.0, 0.9, 0.6, 0.0, 0.0, 0.1, 0.0, 0.3], [0.0, 0.1, 0.3, 1.0, 0.8, 0.7, 0.9, 0.0]])
    W = rng.uniform(0, 1, size=(20, 2))
    W[0], W[1] = [1.0, 0.0], [0.0, 1.0]
    est = NMF(n_components=2, negative="error").fit(W @ H)
    C = est.components_
    best = max(congruence(C[0], H[0]) + congruence(C[1], H[1]), congruence(C[0], H[1]) + congruence(C[1], H[0]))
    assert best / 2 > 0.99
    assert est.explained_variance_ratio_[0] >= est.explained_variance_ratio_[1]


# --- FastICA ------------------------------------------------------------------------------------

def test_fast_ica_recovers_two_planted_non_gaussian_sources():
    rng = np.random.default_rng(0)
    n = 300
    S = np.column_stack([rng.uniform(-1, 1, n), rng.laplace(size=n)])  # sub- and super-Gaussian
    A = np.array([[1.0, 0.5, 0.2, -0.3, 0.8], [0.2, -0.7, 1.0, 0.6, 0.1]])
    X = S @ A + 0.01 * rng.normal(size=(n, 5))
    est = FastICA(n_components=2).fit(X)
    scores = est.transform(X)
    corr = np.abs(np.corrcoef(scores.T, S.T)[:2, 2:])
    assert max(corr[0, 0] + corr[1, 1], corr[0, 1] + corr[1, 0]) / 2 > 0.9
    again = FastICA(n_components=2).fit(X)
    np.testing.assert_array_equal(again.components_, est.components_)
    np.testing.assert_array_equal(again.transform(X), scores)
    # Unit-variance sources times the mixing rebuild the centred matrix.
    np.testing.assert_allclose(scores @ est.components_ + est.mean_, X, atol=0.05)
