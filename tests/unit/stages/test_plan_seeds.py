"""The plan of a study with several training seeds: one adapter job per (source, seed), each its
own cache key; a single-seed registry keeps exactly the keys it had before seeds existed."""

from __future__ import annotations

from harness.api.plugins import catalog
from harness.cache.store import Cache
from harness.config.registry import parse_registry
from harness.files import stable_hash
from harness.model.compute import compute_setup
from harness.model.loading import ModelLocation
from harness.stages.plan import TRAINING_VERSION, library_versions, make_plan

REGISTRY = """\
experiment: p
base_model: {{path: /nonexistent}}
sources:
  - {{task: sentiment, n_train: 8}}
  - {{task: nli, n_train: 8}}
targets:
  - {{task: sentiment, limit: 2}}
  - {{task: arithmetic, limit: 2}}
lora: {{steps: 5{lora}}}
"""


def plan(tmp_path, lora: str = ""):
    registry = parse_registry(REGISTRY.format(lora=lora))
    return make_plan(registry, catalog(), Cache(tmp_path / "cache"), ModelLocation(key="base-1", how="path")), registry


def test_single_seed_keys_are_those_of_before(tmp_path):
    """The adapter key hashes exactly what it hashed before seeds existed (the whole LoraSettings
    dump of that time, which had no seeds/replicates fields), so existing caches stay valid."""
    single, registry = plan(tmp_path, ", seed: 3")
    versions = library_versions()
    before = {"rank": 8, "alpha": 16.0, "dropout": 0.05, "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj"],
              "learning_rate": 1e-3, "steps": 5, "epochs": None, "batch_size": 8, "group_by_length": True,
              "max_length": 128, "seed": 3}
    for job, use in zip(single.adapters, registry.sources):
        task = catalog().get("task", use.task).obj(**use.options)
        expected = stable_hash({"model": "base-1", "task": task.fingerprint(), "n_train": 8, "lora": before,
                                "trainer": TRAINING_VERSION, "compute": compute_setup(registry.base_model.dtype),
                                "versions": {k: versions[k] for k in ("transformers", "peft", "torch")}})
        assert job.key == expected and job.model == job.source and job.seed == 3
    # seeds: [3] is the same study, with the same keys and names.
    listed, _ = plan(tmp_path, ", seeds: [3]")
    assert [a.key for a in listed.adapters] == [a.key for a in single.adapters]
    assert [(c.model, c.key) for c in listed.cells] == [(c.model, c.key) for c in single.cells]


def test_every_replicate_is_its_own_entry_and_adding_a_seed_adds_only_it(tmp_path):
    single, _ = plan(tmp_path, ", seed: 0")
    three, _ = plan(tmp_path, ", seeds: [0, 1, 2]")
    four, _ = plan(tmp_path, ", seeds: [0, 1, 2, 3]")
    assert [a.model for a in three.replicates("nli")] == ["nli@seed0", "nli@seed1", "nli@seed2"]
    assert three.sources == ["sentiment", "nli"] and three.seeds["sentiment"] == [0, 1, 2]
    assert len({a.key for a in three.adapters}) == 6
    # Seed 0's replicate is the single-seed adapter: the same cache entry, the same cells.
    assert three.replicates("sentiment")[0].key == single.adapters[0].key
    cells = {(c.model, c.target): c.key for c in three.cells}
    assert cells["sentiment@seed0", "arithmetic"] == next(c.key for c in single.cells
                                                          if (c.model, c.target) == ("sentiment", "arithmetic"))
    new_adapters = {a.key for a in four.adapters} - {a.key for a in three.adapters}
    new_cells = {c.key for c in four.cells} - set(cells.values())
    assert len(new_adapters) == 2 and len(new_cells) == 2 * 2  # seed 3 of each source, on each target
    assert {c.model for c in four.cells if c.key in new_cells} == {"sentiment@seed3", "nli@seed3"}
