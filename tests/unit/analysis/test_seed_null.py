"""The seeds+documents cell test on simulated studies where adapters differ only by training seed.

Null studies: a base model's 0/1 outcomes on n fresh documents (document difficulty p_j uniform on
[0.3, 0.7]); R adapters of one source, each with its own seed-level shift u_s ~ N(0, tau) (clipped
symmetrically to +-0.2, so its mean stays 0) that moves the probability of a correct answer on the
documents it re-answers (a share f of them; the others keep the base's answer). The population of
seeds has no effect on the population of documents (E[u] = 0), yet each adapter has an effect of
its own, which a document-only McNemar test of one adapter against the base picks up: that is the
false positive the combined test exists to avoid.
"""

from __future__ import annotations

import numpy as np
import pytest

from harness.analysis.outcomes import Outcomes
from harness.analysis.stats import mcnemar_exact, seeds_documents_test
from harness.config.registry import AnalysisSettings
from harness.stages.analyse import cell_tests

N_STUDIES, N_DOCS, TAU, SHARE = 300, 300, 0.1, 0.4


def _study(rng: np.random.Generator, R: int, effect: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """(base (n,), adapters (R, n)) of one simulated study; ``effect`` a shift every seed shares."""
    p = rng.uniform(0.3, 0.7, N_DOCS)
    base = (rng.random(N_DOCS) < p).astype(float)
    u = np.clip(rng.normal(0.0, TAU, R), -0.2, 0.2) + effect
    fresh = (rng.random((R, N_DOCS)) < np.clip(p[None] + u[:, None], 0, 1)).astype(float)
    keep = rng.random((R, N_DOCS)) >= SHARE
    return base, np.where(keep, base[None], fresh)


@pytest.mark.parametrize("R", [3, 5])
def test_combined_test_holds_its_level_where_document_only_mcnemar_does_not(R):
    rng = np.random.default_rng(17 + R)
    combined, per_seed, pooled = [], [], []
    for _ in range(N_STUDIES):
        base, adapters = _study(rng, R)
        combined.append(seeds_documents_test(base, adapters)["p"] < 0.05)
        per_seed.append(np.mean([mcnemar_exact(base, a)["p"] < 0.05 for a in adapters]))
        pooled.append(mcnemar_exact(np.tile(base, R), adapters.ravel())["p"] < 0.05)
    rate, mcnemar_rate, pooled_rate = np.mean(combined), np.mean(per_seed), np.mean(pooled)
    print(f"R={R}: seeds+documents false-positive rate {rate:.3f}; document-only McNemar per seed "
          f"{mcnemar_rate:.3f}, pooled over seeds {pooled_rate:.3f} ({N_STUDIES} null studies)")
    # The plain bound, no binomial slack: the observed rate itself must be at most 5%.
    assert rate <= 0.05
    # Beside it, the document-only rates on the same nulls: far above the level.
    assert mcnemar_rate > 0.15 and pooled_rate > 0.15


@pytest.mark.parametrize("R", [3, 5])
def test_combined_test_detects_an_effect_every_seed_shares(R):
    """Not a test that passes by never rejecting: a shift of 0.4 on the re-answered documents (about
    0.15 in accuracy, against a between-seed SD of about 0.04) that every seed shares is found in
    most studies, even with R - 1 = 2 degrees of freedom."""
    rng = np.random.default_rng(3)
    hits = [seeds_documents_test(*_study(rng, R, effect=0.4))["p"] < 0.05 for _ in range(100)]
    assert np.mean(hits) >= 0.5


def test_se_parts_and_interval_follow_their_definition():
    rng = np.random.default_rng(0)
    base, adapters = _study(rng, 4)
    out = seeds_documents_test(base, adapters)
    d = adapters - base
    assert out["delta"] == pytest.approx(d.mean())
    assert out["se_seeds"] == pytest.approx(np.sqrt(d.mean(axis=1).var(ddof=1) / 4))
    assert out["se"] ** 2 == pytest.approx(out["se_seeds"] ** 2 + out["se_documents"] ** 2)
    assert out["df"] == 3 and out["n_seeds"] == 4 and out["ci"][0] < out["delta"] < out["ci"][1]
    same = seeds_documents_test(base, np.tile(base, (3, 1)))
    assert same["p"] == 1.0 and same["delta"] == 0.0
    with pytest.raises(ValueError, match="at least 2 seeds"):
        seeds_documents_test(base, adapters[:1])


def test_cell_tests_use_seeds_and_documents_for_replicated_sources_only():
    rng = np.random.default_rng(1)
    base, adapters = _study(rng, 3)
    single = (rng.random(N_DOCS) < 0.5).astype(float)
    values = {"t": np.vstack([base, adapters, single])}
    outcomes = Outcomes(sources=["s", "one"], values=values, models=["s@seed0", "s@seed1", "s@seed2", "one"],
                        rows={"s": [1, 2, 3], "one": [4]})
    tests = cell_tests(outcomes, AnalysisSettings())
    assert tests["s"]["t"]["method"] == "seeds+documents_t"
    assert tests["s"]["t"]["p"] == pytest.approx(seeds_documents_test(base, adapters)["p"])
    assert tests["one"]["t"]["method"] == "mcnemar"
    assert tests["one"]["t"]["p"] == pytest.approx(mcnemar_exact(base, single)["p"])
    base_mean, means = outcomes.cell_means()
    assert means[0, 0] == pytest.approx(adapters.mean()) and means[1, 0] == pytest.approx(single.mean())


def test_decomposition_bootstrap_resamples_replicates_and_single_seed_draws_are_unchanged():
    """With one seed per source the bootstrap is exactly that of before (it draws no seeds); with
    replicates that disagree, resampling them widens the loading intervals over resampling
    documents alone."""
    from harness.analysis.decompose import decompose
    from harness.api.plugins import catalog
    from harness.config.registry import DecomposerUse

    rng = np.random.default_rng(5)
    sources, targets, n = [f"s{i}" for i in range(5)], [f"t{j}" for j in range(4)], 200
    level = rng.uniform(0.3, 0.7, (len(sources), len(targets)))
    base = {t: (rng.random(n) < 0.5).astype(float) for t in targets}

    def outcomes(R, spread):
        values = {}
        for j, t in enumerate(targets):
            rows = [base[t]] + [(rng.random(n) < np.clip(level[i, j] + rng.normal(0, spread), 0, 1)).astype(float)
                                for i in range(len(sources)) for _ in range(R)]
            values[t] = np.vstack(rows)
        models = [f"{s}@seed{r}" for s in sources for r in range(R)]
        rows_of = {s: list(range(1 + i * R, 1 + (i + 1) * R)) for i, s in enumerate(sources)}
        return Outcomes(sources=sources, values=values, models=models, rows=rows_of)

    def run(out):
        b, means = out.cell_means()
        X = means - b
        use = DecomposerUse(name="pca", n_components=1)
        return decompose(use, catalog().get("decomposer", "pca").obj, sources, targets, X, b, out, {},
                         AnalysisSettings(bootstrap=60))

    one = outcomes(1, 0.0)
    assert not one.replicated and one.draw_seeds(np.random.default_rng(0)) == one.rows
    single = run(one)
    # The same study laid out as before seeds existed (rows 1.. are the sources): the same refits.
    legacy = run(Outcomes(sources=sources, values=one.values))
    assert single["stability"]["bootstrap"] == legacy["stability"]["bootstrap"]
    replicated = outcomes(3, 0.3)
    assert replicated.replicated
    picks = replicated.draw_seeds(np.random.default_rng(1))
    assert all(set(p) <= set(replicated.rows[s]) and len(p) == 3 for s, p in picks.items())
    assert any(len(set(p)) < 3 for p in picks.values())  # drawn with replacement
    boot = run(replicated)["stability"]["bootstrap"]
    assert boot["n"] + boot["n_failed"] == 60
    # The same outcomes with the replicates held fixed (documents only): narrower intervals.
    fixed = Outcomes(sources=sources, values=replicated.values, models=replicated.models, rows=replicated.rows)
    fixed.draw_seeds = lambda rng: fixed.rows
    docs_only = run(fixed)["stability"]["bootstrap"]

    def width(b):
        return np.median([hi - lo for row in b["loadings_ci"].values() for lo, hi in row.values()])

    print(f"loading CI width: documents only {width(docs_only):.3f}, seeds and documents {width(boot):.3f}")
    assert width(boot) > width(docs_only)
