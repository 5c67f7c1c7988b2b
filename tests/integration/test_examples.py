"""The example registries: the paper's study validates and dry-runs offline; the shared-data one
runs end to end from local files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from helpers import ROOT, SHARED_DATA

OFFLINE = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}


def harness(*args, cwd=ROOT):
    return subprocess.run([sys.executable, "-m", "harness.cli", *args], cwd=cwd, env=OFFLINE,
                          capture_output=True, text=True, timeout=600)


def on_tiny_model(name: str, tiny_model_dir, tmp_path, n_train: int, limits: dict[str, int], **updates) -> Path:
    """examples/<name>.yaml's sources and targets on the tiny model, with small sizes, in a scratch
    folder (its data paths, relative to examples/, made absolute). ``limits``: task -> rows, key
    ``None`` for every other target. Returns the registry's path."""
    registry = yaml.safe_load((ROOT / "examples" / f"{name}.yaml").read_text())
    registry.update(base_model={"path": str(tiny_model_dir)}, output_dir=str(tmp_path / "runs"),
                    cache_dir=str(tmp_path / "cache"), **updates)
    for use in registry["sources"]:
        use["n_train"] = n_train
    for use in registry["targets"]:
        use["limit"] = limits.get(use["task"], limits[None])
    for use in registry["sources"] + registry["targets"]:
        use["options"]["data_files"] = {k: str((ROOT / "examples" / v).resolve())
                                        for k, v in use["options"]["data_files"].items()}
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(registry))
    return path


def test_paper_registry_validates_and_dry_runs_offline():
    registry = yaml.safe_load((ROOT / "examples" / "paper.yaml").read_text())
    assert len(registry["sources"]) == 10
    assert harness("validate", "examples/paper.yaml").returncode == 0
    dry = harness("run", "examples/paper.yaml", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "10 of 10 adapters and 110 of 110 cells would run" in dry.stdout
    assert "would read the hub dataset nyu-mll/glue" in dry.stdout  # says what it would fetch


def test_shared_data_registry_runs_end_to_end(tiny_model_dir, tmp_path):
    if not SHARED_DATA.is_dir():
        pytest.skip(f"{SHARED_DATA} is absent: this test reads the shared SST-2, AG News and GSM8K copies")
    path = on_tiny_model("shared-data", tiny_model_dir, tmp_path, 12, {"gsm8k": 3, None: 16},
                         lora={"steps": 3, "batch_size": 4})
    out = harness("run", str(path), "--quiet")
    assert out.returncode == 0, out.stderr[-3000:]
    results = json.loads((tmp_path / "runs" / "shared-data" / "results.json").read_text())
    assert results["targets"] == ["sst2", "ag_news", "gsm8k"]
    assert results["metrics"]["gsm8k"] == "exact_match,flexible-extract"
    assert all(results["base"][t] is not None for t in results["targets"])
    samples = (tmp_path / "runs" / "shared-data" / "samples" / "base" / "ag_news.jsonl").read_text().splitlines()
    assert len(samples) == 16 and "loglikelihoods" in json.loads(samples[0])
    assert Path(results["provenance"]["cache_dir"]) == tmp_path / "cache"


def test_real_data_registry_runs_end_to_end_with_its_twin(tiny_model_dir, tmp_path):
    """examples/real-data.yaml (the paper's design on the seven shared datasets, with an SST-2 90/10
    class-balance twin) runs on the tiny model with small sizes and reports every hypothesis."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"{SHARED_DATA} is absent: this test reads the seven shared datasets")
    registry = yaml.safe_load((ROOT / "examples" / "real-data.yaml").read_text())
    assert len(registry["sources"]) >= 8 and len(registry["targets"]) >= 7
    assert any(use.get("twin_of") == "sst2" for use in registry["sources"])
    traits = [t for t in registry["traits"] if t != "gradient_alignment"]  # its own tests cover it
    path = on_tiny_model("real-data", tiny_model_dir, tmp_path, 16, {"gsm8k": 2, None: 8}, traits=traits,
                         lora={"steps": 2, "batch_size": 4}, analysis={"bootstrap": 20, "permutations": 200})
    out = harness("run", str(path), "--quiet")
    assert out.returncode == 0, out.stderr[-3000:]
    results = json.loads((tmp_path / "runs" / "real-data" / "results.json").read_text())
    assert all(results["base"][t] is not None for t in results["targets"])
    assert [h["id"] for h in results["hypotheses"]] == ["H1", "H2", "H3", "H4", "H5"]
    assert {h["verdict"] for h in results["hypotheses"]} <= {"supported", "not supported", "not testable"}
    twin_rows = [r for r in results["twin_contrasts"] if r["source"] == "sst2_pos90"]
    assert {r["target"] for r in twin_rows} == set(results["targets"])
    assert twin_rows[0]["statistic"] == "class_balance"


def test_default_registry_is_a_study_that_can_conclude():
    """>= 8 sources with twins for class balance and completion length and sources of the four
    abilities, >= 6 targets, and a trait test whose smallest attainable p is below 0.01 (computed
    the way the analysis computes it: exact over n! orderings when they are fewer than the
    permutations asked for, else Monte Carlo)."""
    import math

    from harness.config.registry import load_registry, twin_pairs

    registry = load_registry(ROOT / "registry.yaml")
    assert len(registry.sources) >= 8 and len(registry.targets) >= 6
    statistics = {pair["statistic"] for pair in twin_pairs(registry)}
    assert {"class_balance", "completion_length"} <= statistics
    tasks = {s.task for s in registry.sources}
    assert {"arithmetic", "word_problems", "ordering", "sentiment", "nli"} <= tasks
    n, permutations = len(registry.sources), registry.analysis.permutations
    floor = 2 / math.factorial(n) if math.factorial(n) <= permutations else 1 / (permutations + 1)
    assert permutations >= 1000 and floor < 0.01
