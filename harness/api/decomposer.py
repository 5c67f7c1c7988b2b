"""The decomposer contract: scikit-learn-style estimators over the transfer matrix.

Parameters go in ``__init__`` (stored under the same names, nothing else done there), ``fit``
returns ``self``, learned state ends in ``_``. After ``fit(X)`` with ``X`` of shape
(n_sources, n_targets) every decomposer exposes:

* ``components_`` : ndarray (n_components, n_targets), the loadings;
* ``explained_variance_ratio_`` : ndarray (n_components,), each in [0, 1];
* ``transform(X)`` : ndarray (n_sources, n_components), the source scores.
"""

from __future__ import annotations

from numbers import Integral
from typing import ClassVar

import numpy as np

from harness.api.params import Parameterised


class Decomposer(Parameterised):
    """Base class of decomposer plugins."""

    name: ClassVar[str]
    description: ClassVar[str] = ""
    #: Whether ``fit`` centres the targets first. A centred matrix of n sources has rank at most
    #: n - 1, so the analysis keeps at most min(n - 1, n_targets) components of a centring
    #: decomposer and min(n, n_targets) of one that is not (NMF).
    centred: ClassVar[bool] = True

    def fit(self, X: np.ndarray, y=None) -> Decomposer:
        raise NotImplementedError

    def transform(self, X: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def fit_transform(self, X: np.ndarray, y=None) -> np.ndarray:
        return self.fit(X).transform(X)


def check_n_components(value) -> None:
    """``__init__`` check shared by decomposers: None or a positive integer."""
    if value is not None and (not isinstance(value, Integral) or isinstance(value, bool) or value < 1):
        raise ValueError(f"n_components must be a positive integer or None, got {value!r}")


def as_matrix(X) -> np.ndarray:
    """``X`` as a float array of shape (n_sources, n_targets), or ValueError if not finite 2-D."""
    X = np.asarray(X, dtype=float)
    if X.ndim != 2 or not np.isfinite(X).all():
        raise ValueError("X must be a finite 2-D array of shape (n_sources, n_targets)")
    return X


def component_limit(n: int, p: int, centred: bool = True) -> int:
    """The most components an n x p matrix supports: min(n - 1, p) once centred (a further one would
    explain nothing and be an arbitrary direction), min(n, p) otherwise."""
    return min(n - 1, p) if centred else min(n, p)


def components_to_keep(requested: int | None, n: int, p: int, centred_rank: bool = True) -> int:
    """Components a fit keeps: ``requested``, or by default min(n - 1, p), the rank a centred
    matrix can have. With ``centred_rank`` (methods that centre the matrix) that rank is also the
    limit; otherwise min(n, p) is."""
    default = max(1, min(n - 1, p))
    limit = component_limit(n, p, centred_rank)
    what = "min(n_sources - 1, n_targets)" if centred_rank else "min(n_sources, n_targets)"
    if limit < 1:
        raise ValueError(f"needs at least 2 sources, got {n}")
    k = default if requested is None else int(requested)
    if k > limit:
        raise ValueError(f"n_components={k} exceeds {what}={limit}")
    return k
