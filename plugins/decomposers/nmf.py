"""Non-negative matrix factorisation of the transfer matrix (scikit-learn's NMF)."""

from __future__ import annotations

from numbers import Integral

import numpy as np

from harness.api import Decomposer, as_matrix, check_n_components, components_to_keep, hookimpl

NEGATIVE = ("split", "shift", "error")


class NMF(Decomposer):
    """Parts-based factorisation ``X_fit ~= W @ H`` with ``W, H >= 0``.

    Each source is a non-negative mix of a few parts, and a part is a pattern over the targets, so
    components add up instead of cancelling (as PCA's may). NMF needs ``X_fit >= 0``, but transfer is
    signed: fine-tuning on a source can hurt a target. ``negative`` chooses how that is handled:

    * ``"split"`` (default) fits on ``[max(X, 0), max(-X, 0)]``, the gains and the losses as
      2 * n_targets separate non-negative columns. A part may then both help some targets and hurt
      others; its reported loading is gain minus loss, ``H[:, :n_targets] - H[:, n_targets:]``.
    * ``"shift"`` subtracts the matrix's smallest entry (when negative) from every cell, so loadings
      read relative to the worst cell, not to the base model: a zero loading means "as bad as the
      worst source on the worst target". Simple, but the parts then also carry that offset.
    * ``"error"`` refuses a matrix with negative entries (ValueError); use it for matrices that are
      non-negative by construction (e.g. accuracies after fine-tuning, not changes).

    Like every decomposer here, each component's largest |loading| is made positive. Under
    ``"split"`` a part made mostly of losses is therefore reported negated, with scores <= 0 (its
    product with the loadings, the part's contribution, is unchanged). Under ``"shift"`` and
    ``"error"`` loadings and scores stay non-negative.

    Parameters
    ----------
    n_components : int or None, default None
        Parts kept; None keeps min(n_sources - 1, n_targets), as the other decomposers.
        At most min(n_sources, n_targets).
    negative : {"split", "shift", "error"}, default "split"
        How negative transfer is made non-negative (see above).
    max_iter : int, default 2000
        Iterations of scikit-learn's coordinate-descent solver at most.
    random_state : int, default 0
        Passed to scikit-learn (the "nndsvda" initialisation is deterministic; the seed is kept
        for solvers that use it).

    Attributes
    ----------
    components_ : ndarray of shape (n_components, n_targets)
        Signed loadings (gain minus loss under "split", else ``H``), ordered by explained variance.
    explained_variance_ratio_ : ndarray of shape (n_components,)
        ``||w_i h_i||_F^2 / ||X_fit||_F^2`` per part, on the non-negative matrix that was fitted,
        clipped to [0, 1]. Parts overlap, so the shares need not sum to the whole fit.
    shift_ : float
        Subtracted from ``X`` before the fit (``"shift"``: min(X) when negative; else 0).
    reconstruction_err_ : float
        Frobenius norm of ``X_fit - W @ H``.
    n_iter_ : int
        Iterations the solver ran.
    n_components_ : int
        Parts kept.
    model_ : sklearn.decomposition.NMF
        The fitted scikit-learn model, its parts in its own order and sign.
    order_, signs_ : ndarray of shape (n_components,)
        Component ``i`` here is the model's part ``order_[i]`` times ``signs_[i]``.
    """

    name = "nmf"
    description = "Non-negative matrix factorisation (scikit-learn), with negative transfer split into gains and losses."
    centred = False  # factors X itself, so up to min(n_sources, n_targets) parts

    def __init__(self, n_components: int | None = None, negative: str = "split", max_iter: int = 2000,
                 random_state=0):
        check_n_components(n_components)
        if negative not in NEGATIVE:
            raise ValueError(f"negative must be one of {NEGATIVE}, got {negative!r}")
        if not isinstance(max_iter, Integral) or max_iter < 1:
            raise ValueError(f"max_iter must be a positive integer, got {max_iter!r}")
        self.n_components = n_components
        self.negative = negative
        self.max_iter = max_iter
        self.random_state = random_state

    def _prepare(self, X: np.ndarray) -> np.ndarray:
        """``X`` made non-negative as ``negative`` says: (n_sources, n_targets or 2 * n_targets)."""
        if self.negative == "split":
            return np.hstack([np.maximum(X, 0.0), np.maximum(-X, 0.0)])
        if self.negative == "shift":
            X = X - self.shift_
            # Cells below the fitted minimum (only in new data) would make sklearn refuse the matrix.
            if (X < 0).any():
                raise ValueError(f"X has entries below the minimum {self.shift_:g} seen in fit, which "
                                 "negative='shift' cannot place; refit on this matrix or use negative='split'")
            return X
        if (X < 0).any():
            raise ValueError(f"X has {int((X < 0).sum())} negative entries (negative transfer) and NMF needs X >= 0; "
                             "pass negative='split' (gains and losses as separate columns) or "
                             "negative='shift' (subtract the minimum)")
        return X

    def fit(self, X, y=None) -> NMF:
        """Fit to ``X`` of shape (n_sources, n_targets). Returns ``self``."""
        from sklearn.decomposition import NMF as SkNMF

        X = as_matrix(X)
        n, p = X.shape
        k = components_to_keep(self.n_components, n, p, centred_rank=self.centred)
        self.shift_ = float(min(X.min(), 0.0)) if self.negative == "shift" else 0.0
        X_fit = self._prepare(X)
        model = SkNMF(n_components=k, init="nndsvda", max_iter=self.max_iter, random_state=self.random_state)
        W = model.fit_transform(X_fit)
        H = model.components_
        # Energy of each rank-1 part: ||w h||_F^2 = ||w||^2 ||h||^2.
        energy = (W**2).sum(axis=0) * (H**2).sum(axis=1)
        total = (X_fit**2).sum()
        ratio = np.clip(energy / total, 0.0, 1.0) if total > 0 else np.zeros(k)
        order = np.argsort(-ratio, kind="stable")
        loadings = H[order, :p] - H[order, p:] if self.negative == "split" else H[order]
        signs = np.sign(loadings[np.arange(k), np.abs(loadings).argmax(axis=1)])
        signs[signs == 0] = 1.0
        self.model_, self.order_, self.signs_ = model, order, signs
        self.components_ = loadings * signs[:, None]
        self.explained_variance_ratio_ = ratio[order]
        self.reconstruction_err_ = float(model.reconstruction_err_)
        self.n_iter_ = int(model.n_iter_)
        self.n_components_ = k
        return self

    def transform(self, X) -> np.ndarray:
        """Scores of shape (n_sources, n_components): the non-negative ``W`` that best rebuilds ``X``
        (prepared as in ``fit``) from the fitted parts, signed like ``components_``."""
        X = as_matrix(X)
        return self.model_.transform(self._prepare(X))[:, self.order_] * self.signs_


@hookimpl
def register_decomposers(register):
    register(NMF)
