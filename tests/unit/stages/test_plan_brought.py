"""The plan of brought sources: never trained, keyed by content, a checkpoint's cells keyed without
the base model, an adapter's with it; the dry run says what a checkpoint costs."""

from __future__ import annotations

import shutil

import pytest
from rich.console import Console

from harness.api.plugins import catalog
from harness.cache.store import Cache
from harness.config.registry import parse_registry
from harness.model.loading import ModelLocation
from harness.reporting.console import print_plan
from harness.stages.plan import make_plan, weights_path
from helpers import save_adapter, save_checkpoint


@pytest.fixture(scope="module")
def folder(tiny_model_dir, tmp_path_factory):
    from peft import LoraConfig

    root = tmp_path_factory.mktemp("plan-brought")
    save_adapter(tiny_model_dir, root / "adapter", LoraConfig(r=4, target_modules=["q_proj"]))
    save_checkpoint(tiny_model_dir, root / "checkpoint")
    return root


def _plan(folder, tiny_model_dir, base_key: str, tmp_path):
    registry = parse_registry(f"experiment: p\nbase_model: {{path: {tiny_model_dir}}}\nsources:\n"
                              "  - {task: sentiment, n_train: 8}\n  - {adapter: adapter, alias: theirs}\n"
                              "  - {checkpoint: checkpoint, task: nli, alias: tuned}\n"
                              "targets:\n  - {task: sentiment, limit: 2}\n", base_dir=folder)
    location = ModelLocation(key=base_key, how="path", path=tiny_model_dir)
    return make_plan(registry, catalog(), Cache(tmp_path / "cache"), location)


def test_brought_jobs_are_never_trained_and_keyed_by_content(folder, tiny_model_dir, tmp_path):
    plan = _plan(folder, tiny_model_dir, "base-1", tmp_path)
    trained, adapter, checkpoint = plan.adapters
    assert [a.kind for a in plan.adapters] == ["trained", "adapter", "checkpoint"]
    assert plan.todo_adapters == [trained] and adapter.cached and checkpoint.cached
    assert adapter.task is None and checkpoint.task.name == "nli"
    assert weights_path(adapter, Cache(tmp_path)) == folder / "adapter"
    assert weights_path(trained, Cache(tmp_path)) == tmp_path / "adapters" / trained.key
    moved = tmp_path / "moved"
    shutil.copytree(folder, moved)
    again = _plan(moved, tiny_model_dir, "base-1", tmp_path)
    assert [c.key for c in again.cells] == [c.key for c in plan.cells]  # the folder moved, the keys did not
    other_base = {c.model: c.key for c in _plan(folder, tiny_model_dir, "base-2", tmp_path).cells}
    keys = {c.model: c.key for c in plan.cells}
    assert other_base["tuned"] == keys["tuned"]  # a checkpoint is its own model: the base is not in its key
    assert other_base["theirs"] != keys["theirs"] and other_base["base"] != keys["base"]


def test_dry_run_plan_says_what_a_checkpoint_costs(folder, tiny_model_dir, tmp_path):
    plan = _plan(folder, tiny_model_dir, "base-1", tmp_path)
    console = Console(record=True, width=200)
    print_plan(plan, console, tmp_path / "run", Cache(tmp_path / "cache"))
    text = console.export_text()
    assert "bring" in text and f"adapter theirs from {folder / 'adapter'}" in text
    assert "checkpoint tuned: a second model load (its own weights and tokenizer, no adapter swap) for its 1 cell(s)" in text
    assert "1 of 1 adapters and 4 of 4 cells would run" in text
