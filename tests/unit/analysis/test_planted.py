"""Planted structure: matrices made from known loadings plus noise, traits made to follow a
component, and decoys that follow nothing. The analysis must find what was planted and only that."""

from __future__ import annotations

import numpy as np
import pytest

from harness.analysis.associations import correlate_traits
from harness.analysis.decompose import component_ids
from harness.analysis.stability import align
from harness.api.plugins import catalog


def planted(n: int, p: int, k: int, noise: float, seed: int):
    """X = F @ L + noise with simple-structure loadings L (k, p) (each target on one component) and
    component scores F (n, k) that are uncorrelated in the sample and of distinct spread."""
    rng = np.random.default_rng(seed)
    L = np.zeros((k, p))
    for j in range(p):
        L[j % k, j] = rng.uniform(0.5, 1.0) * rng.choice([-1, 1])
    Q, _ = np.linalg.qr(rng.normal(size=(n, k)) - rng.normal(size=(n, k)).mean(axis=0))
    Q -= Q.mean(axis=0)
    Q, _ = np.linalg.qr(Q)
    F = Q * np.sqrt(n) * np.linspace(2.0, 1.0, k)
    return F @ L + noise * rng.normal(size=(n, p)), L, F


@pytest.mark.parametrize("k", [2, 3, 4])
@pytest.mark.parametrize("name, params", [("pca", {}), ("factor_analysis", {}),
                                          ("factor_analysis", {"rotation": "varimax"}),
                                          ("factor_analysis", {"rotation": "promax"})])
def test_loadings_are_recovered_at_low_noise(k, name, params):
    X, L, _ = planted(n=30, p=12, k=k, noise=0.05, seed=k)
    est = catalog().get("decomposer", name).obj(n_components=k, **params).fit(X)
    _, phi = align(L, est.components_)
    assert phi.min() >= 0.95, phi


def test_recovery_degrades_with_noise_rather_than_inventing_structure():
    X, L, _ = planted(n=30, p=12, k=3, noise=3.0, seed=1)
    est = catalog().get("decomposer", "pca").obj(n_components=3).fit(X)
    assert align(L, est.components_)[1].min() < 0.95


def _scores(X, k):
    est = catalog().get("decomposer", "pca").obj(n_components=k).fit(X)
    return est, est.transform(X)


def test_a_trait_planted_on_one_component_is_found_and_decoys_are_not():
    rng = np.random.default_rng(7)
    X, L, F = planted(n=20, p=10, k=2, noise=0.05, seed=7)
    est, scores = _scores(X, 2)
    sources = [f"s{i}" for i in range(20)]
    traits = {s: {"planted": float(F[i, 1] + 0.3 * rng.normal()),
                  **{f"decoy{d}": float(rng.normal()) for d in range(5)}} for i, s in enumerate(sources)}
    columns = {s: dict(zip(component_ids(2), map(float, row))) for s, row in zip(sources, scores)}
    # Which fitted component is planted component 1?
    C = np.abs(np.corrcoef(F[:, 1], scores.T)[0, 1:])
    target = component_ids(2)[int(C.argmax())]
    result = correlate_traits(traits, columns, kind="component", max_permutations=5000, seed=0)
    found = {(r["trait"], r["component"]) for r in result["tests"] if r["q"] is not None and r["q"] < 0.05}
    assert found == {("planted", target)}


def test_decoys_rarely_pass_over_many_null_simulations():
    """200 simulations of the global null (decoy traits against the components of a planted
    matrix): the share with any q < 0.05 is the family-wise false-positive rate BH must hold."""
    runs, any_hit, hits, tests = 200, 0, 0, 0
    for sim in range(runs):
        rng = np.random.default_rng(1000 + sim)
        X, _, _ = planted(n=12, p=6, k=2, noise=0.3, seed=1000 + sim)
        _, scores = _scores(X, 2)
        sources = [f"s{i}" for i in range(12)]
        traits = {s: {f"decoy{d}": float(rng.normal()) for d in range(5)} for s in sources}
        columns = {s: dict(zip(component_ids(2), map(float, row))) for s, row in zip(sources, scores)}
        rows = correlate_traits(traits, columns, kind="component", max_permutations=1000, seed=sim)["tests"]
        qs = [r["q"] for r in rows]
        any_hit += any(q < 0.05 for q in qs)
        hits += sum(r["p"] < 0.05 for r in rows)
        tests += len(rows)
    print(f"null simulations: {runs}; share with any q < 0.05: {any_hit / runs:.3f}; "
          f"per-test share with p < 0.05: {hits / tests:.3f} over {tests} tests")
    assert any_hit / runs <= 0.05
    assert hits / tests <= 0.05 + 3 * np.sqrt(0.05 * 0.95 / tests)
