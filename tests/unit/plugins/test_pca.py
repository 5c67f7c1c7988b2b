"""The PCA decomposer against scikit-learn, and the estimator contract it shares with all decomposers."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.decomposition import PCA as SkPCA

from harness.analysis.decompose import component_ids, name_components
from harness.api.plugins import catalog
from harness_plugins.decomposers.pca import PCA


@pytest.mark.parametrize("shape", [(4, 6), (10, 3), (5, 5)])
def test_pca_equals_scikit_learn(shape):
    rng = np.random.default_rng(sum(shape))
    X = rng.normal(size=shape)
    k = min(shape[0] - 1, shape[1])  # every component a centred matrix has
    ours = PCA(n_components=k).fit(X)
    theirs = SkPCA(n_components=k, svd_solver="full").fit(X)
    np.testing.assert_allclose(ours.explained_variance_ratio_, theirs.explained_variance_ratio_, atol=1e-10)
    np.testing.assert_allclose(ours.explained_variance_, theirs.explained_variance_, atol=1e-10)
    # Same sign convention as scikit-learn (largest |loading| positive).
    np.testing.assert_allclose(ours.components_, theirs.components_, atol=1e-8)
    np.testing.assert_allclose(ours.transform(X), theirs.transform(X), atol=1e-8)


def test_no_component_beyond_the_centred_rank():
    """scikit-learn would fit a 4th component to 4 sources: zero variance, an arbitrary direction."""
    X = np.random.default_rng(3).normal(size=(4, 6))
    with pytest.raises(ValueError, match=r"n_components=4 exceeds min\(n_sources - 1, n_targets\)=3"):
        PCA(n_components=4).fit(X)


def test_ratios_lie_in_unit_interval_descend_and_sum_at_most_one():
    X = np.random.default_rng(0).normal(size=(4, 6))
    ratios = PCA(n_components=2).fit(X).explained_variance_ratio_
    assert ratios.shape == (2,) and np.all((ratios >= 0) & (ratios <= 1))
    assert np.all(np.diff(ratios) <= 0) and ratios.sum() <= 1 + 1e-12


def test_default_keeps_only_components_a_centred_matrix_can_have():
    X = np.random.default_rng(2).normal(size=(4, 6))
    pca = PCA().fit(X)
    assert pca.components_.shape == (3, 6) and pca.explained_variance_ratio_.sum() == pytest.approx(1.0)


def test_estimator_contract():
    est = PCA(n_components=2)
    assert est.get_params() == {"n_components": 2}
    assert not [a for a in vars(est) if a.endswith("_")]  # nothing learned before fit
    X = np.random.default_rng(1).normal(size=(5, 4))
    assert est.fit(X) is est
    assert est.components_.shape == (2, 4) and est.transform(X).shape == (5, 2)
    with pytest.raises(ValueError):
        PCA(n_components=0)
    with pytest.raises(ValueError):
        PCA(n_components=9).fit(X)
    with pytest.raises(ValueError):
        PCA().fit(np.array([[1.0, np.nan], [0.0, 1.0]]))


def test_registered_as_plugin():
    assert catalog().get("decomposer", "pca").obj is PCA


def test_components_are_named_from_the_abilities_of_their_top_targets():
    targets = ["arith", "words", "sent", "nli"]
    abilities = {"arith": ("arithmetic",), "words": ("arithmetic", "reasoning"), "sent": ("sentiment",), "nli": ("nlu",)}
    components = np.array([[0.7, 0.6, 0.1, 0.0], [0.0, 0.1, -0.7, 0.6]])
    names, evidence = name_components(components, targets, abilities)
    # C1: arithmetic weighs 0.7 + 0.6, reasoning only 0.6 (< half): one name. C2: two near-equal tags.
    assert names == {"C1": "arithmetic", "C2": "sentiment+nlu"}
    # The evidence is the loadings the name rests on (|loading| at least half the largest), largest first.
    assert [(e["target"], e["loading"]) for e in evidence["C2"]] == [("sent", -0.7), ("nli", 0.6)]
    assert evidence["C1"][1] == {"target": "words", "loading": 0.6, "abilities": ["arithmetic", "reasoning"]}
    # Targets without tags stand for themselves (a matrix from elsewhere has no ability tags).
    assert name_components(components, targets, {})[0] == {"C1": "arith+words", "C2": "sent+nli"}
    assert component_ids(3) == ["C1", "C2", "C3"]


def test_component_names_are_unique_within_a_decomposition():
    """Three components that all rest on arithmetic and reasoning targets were all called
    "arithmetic+reasoning". A later one adds its next-strongest tag, else a number."""
    targets = ["add", "words", "order", "sent", "nli"]
    abilities = {"add": ("arithmetic",), "words": ("arithmetic", "reasoning"), "order": ("reasoning",),
                 "sent": ("sentiment",), "nli": ("nlu",)}
    components = np.array([[0.7, 0.6, 0.5, 0.1, 0.0],     # arithmetic 1.3, reasoning 1.1
                           [0.6, -0.7, 0.5, 0.35, 0.0],   # the same two, then sentiment 0.35
                           [-0.6, 0.6, 0.6, 0.0, 0.1],    # the same two and nothing else
                           [0.1, 0.0, 0.0, 0.0, 0.9]])
    names, evidence = name_components(components, targets, abilities)
    assert names == {"C1": "arithmetic+reasoning", "C2": "arithmetic+reasoning+sentiment",
                     "C3": "arithmetic+reasoning (2)", "C4": "nlu"}
    assert [e["target"] for e in evidence["C2"]] == ["words", "add", "order", "sent"]
    assert [e["target"] for e in evidence["C3"]] == ["add", "words", "order"]
    # A name the user fixed is kept, and the automatic names step around it.
    names, again = name_components(components, targets, abilities, given={"C3": "arithmetic+reasoning"})
    assert names == {"C1": "arithmetic+reasoning (2)", "C2": "arithmetic+reasoning+sentiment",
                     "C3": "arithmetic+reasoning", "C4": "nlu"}
    assert again == evidence


def test_holes_cost_the_most_incomplete_row_or_column_only():
    from harness.analysis.decompose import complete_submatrix

    X = np.ones((4, 3))
    X[:, 2] = np.nan  # a target that failed everywhere
    X[1, 0] = np.nan  # and one more failed cell
    rows, cols = complete_submatrix(X)
    assert cols.tolist() == [True, True, False] and rows.tolist() == [True, False, True, True]
