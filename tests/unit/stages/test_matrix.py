"""Matrix assembly from cached cells: scores, base, transfer = adapter - base, holes stay holes."""

from __future__ import annotations

import numpy as np

from harness.cache.store import Cache
from harness.config.registry import BASE
from harness.files import write_json_atomic
from harness.stages.matrix import assemble
from harness.stages.plan import AdapterJob, CellJob, Plan
from harness_plugins.tasks.nli import NLI
from harness_plugins.tasks.sentiment import Sentiment


def test_assemble_reads_cells_and_subtracts_the_base(tmp_path):
    cache = Cache(tmp_path)
    values = {(BASE, "sentiment"): 0.5, (BASE, "nli"): 0.3, ("s1", "sentiment"): 0.9, ("s1", "nli"): 0.25,
              ("s2", "sentiment"): 0.55}  # ("s2", "nli") failed: no cell
    plan = Plan(model=None, tasks={"sentiment": Sentiment(), "nli": NLI()},
                target_configs={"sentiment": {}, "nli": {}},
                adapters=[AdapterJob("s1", Sentiment(), 10, "k1", True), AdapterJob("s2", NLI(), 10, "k2", True)])
    for i, (model, target) in enumerate([(m, t) for m in (BASE, "s1", "s2") for t in ("sentiment", "nli")]):
        key = f"cell{i}"
        plan.cells.append(CellJob(model, target, key, True))
        if (model, target) in values:
            write_json_atomic(cache.path("cells", key) / "cell.json",
                              {"value": values[model, target], "stderr": 0.05, "metric": "acc,none", "n": 100})
    mat = assemble(plan, cache)
    assert mat.sources == ["s1", "s2"] and mat.targets == ["sentiment", "nli"]
    assert mat.base["nli"] == {"value": 0.3, "stderr": 0.05, "n": 100, "aggregation": "mean"}
    assert mat.transfer["s1"]["sentiment"] == 0.4  # rounded: no 0.40000000000000002 in matrix.csv
    assert mat.transfer["s1"]["nli"] == -0.05
    assert mat.scores["s2"]["nli"] is None and mat.transfer["s2"]["nli"] is None
    arr = mat.array()
    assert arr.shape == (2, 2) and np.isnan(arr[1, 1]) and arr[0, 0] == 0.4
    assert mat.metrics == {"sentiment": "acc,none", "nli": "acc,none"}


def test_replicates_are_averaged_and_a_failed_one_is_left_out_and_named(tmp_path):
    cache = Cache(tmp_path)
    values = {(BASE, "sentiment"): 0.5, ("s@seed0", "sentiment"): 0.6, ("s@seed1", "sentiment"): 0.7,
              ("s@seed2", "sentiment"): 0.9, ("s@seed0", "nli"): 0.2, ("s@seed2", "nli"): 0.4, (BASE, "nli"): 0.3}
    jobs = [AdapterJob("s", Sentiment(), 10, f"k{i}", True, seed=i, model=f"s@seed{i}") for i in range(3)]
    plan = Plan(model=None, tasks={"sentiment": Sentiment(), "nli": NLI()},
                target_configs={"sentiment": {}, "nli": {}}, adapters=jobs)
    for i, (model, target) in enumerate([(m, t) for m in (BASE, *(j.model for j in jobs)) for t in ("sentiment", "nli")]):
        plan.cells.append(CellJob(model, target, f"cell{i}", True))
        if (model, target) in values:  # ("s@seed1", "nli") failed
            write_json_atomic(cache.path("cells", f"cell{i}") / "cell.json",
                              {"value": values[model, target], "stderr": 0.05, "metric": "acc,none", "n": 10})
    mat = assemble(plan, cache)
    assert mat.sources == ["s"] and mat.models == {"s": ["s@seed0", "s@seed1", "s@seed2"]} and mat.replicated
    full = mat.scores["s"]["sentiment"]
    values_ = np.array([0.6, 0.7, 0.9])
    assert full["value"] == np.mean(values_) and full["seeds"] == [0, 1, 2] and full["n_seeds"] == 3
    assert full["seed_sd"] == np.std(values_, ddof=1) and full["seed_se"] == np.std(values_, ddof=1) / np.sqrt(3)
    assert mat.transfer["s"]["sentiment"] == round(np.mean(values_) - 0.5, 12)
    partial = mat.scores["s"]["nli"]
    assert partial["seeds"] == [0, 2] and partial["seeds_missing"] == [1] and partial["n_seeds"] == 2
    assert partial["value"] == np.mean([0.2, 0.4]) and mat.transfer["s"]["nli"] == round(0.3 - 0.3, 12)
    assert mat.replicates["s@seed1"]["nli"] is None and mat.replicates["s@seed2"]["nli"]["value"] == 0.4
