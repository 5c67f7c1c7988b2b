"""Every built-in decomposer, with its options, passes harness.authoring.conformance.check_decomposer;
broken decomposers fail it naming the problem."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning

from harness.api import plugins
from harness.authoring.conformance import check_decomposer
from harness_plugins.decomposers.factor_analysis import FactorAnalysis
from harness_plugins.decomposers.nmf import NMF
from harness_plugins.decomposers.pca import PCA

# Tiny matrices leave FastICA (and rank-1 NMF, whose start is already optimal) short of their
# stopping rules; the results are still checked below, the warnings are noise here.
pytestmark = pytest.mark.filterwarnings(f"ignore::{ConvergenceWarning.__module__}.{ConvergenceWarning.__name__}")

DECOMPOSERS = plugins.catalog().names("decomposer")


@pytest.mark.parametrize("name", DECOMPOSERS)
def test_builtin_decomposer_conforms(name):
    assert check_decomposer(plugins.catalog().get("decomposer", name).obj)[-1] == "check_decomposer_rejects"


@pytest.mark.parametrize("cls, params", [
    (FactorAnalysis, {"rotation": "varimax"}),
    (FactorAnalysis, {"rotation": "promax", "power": 3}),
    (NMF, {"negative": "shift"}),
])
def test_builtin_decomposer_options_conform(cls, params):
    check_decomposer(cls, **params)


class MissingAttributes(PCA):
    """PCA whose docstring documents only its parameters.

    Parameters
    ----------
    n_components : int or None
    """

    name = "missing_attributes"


class ChangesItsParams(PCA):
    name = "changes_its_params"

    def __init__(self, n_components=None):
        super().__init__(n_components)
        self.n_components = n_components or 2  # the default belongs in fit


class FitReturnsNone(PCA):
    name = "fit_returns_none"

    def fit(self, X, y=None):
        super().fit(X)


class CentresInPlace(PCA):
    name = "centres_in_place"

    def fit(self, X, y=None):
        X = np.asarray(X, dtype=float)
        X -= X.mean(axis=0)  # the caller's matrix
        return super().fit(X)


class Unseeded(PCA):
    name = "unseeded"

    def fit(self, X, y=None):
        super().fit(X)
        self.components_ = self.components_ + np.random.default_rng().uniform(0, 1e-3, self.components_.shape)
        return self


class ClipsNComponents(PCA):
    name = "clips_n_components"

    def fit(self, X, y=None):
        X = np.asarray(X, dtype=float)
        est = PCA(min(self.n_components or X.shape[0] - 1, X.shape[0] - 1, X.shape[1])).fit(X)
        self.__dict__.update({k: v for k, v in vars(est).items() if k.endswith("_")})
        return self


class AcceptsNaN(PCA):
    name = "accepts_nan"

    def fit(self, X, y=None):
        return super().fit(np.nan_to_num(np.asarray(X, dtype=float)))


class UnsignedComponents(PCA):
    name = "unsigned_components"

    def fit(self, X, y=None):
        super().fit(X)
        self.components_ = -self.components_
        return self


@pytest.mark.parametrize("cls, expected", [
    (MissingAttributes, "no numpydoc 'Attributes' section"),
    (ChangesItsParams, "stores n_components=2 but was given None"),
    (FitReturnsNone, "fit returned None, not self"),
    (CentresInPlace, "fit modified X in place"),
    (Unseeded, "not deterministic"),
    (ClipsNComponents, "n_components=5 on a 4x6 matrix is accepted"),
    (AcceptsNaN, "fit accepts a matrix with nan"),
    (UnsignedComponents, "negative largest |loading|"),
])
def test_broken_decomposer_fails_naming_the_problem(cls, expected):
    with pytest.raises(AssertionError) as exc:
        check_decomposer(cls)
    message = str(exc.value)
    assert expected in message, message
    assert repr(cls.name) in message  # the message names the decomposer
