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
    registry = yaml.safe_load((ROOT / "examples" / "shared-data.yaml").read_text())
    # The same sources and targets on the tiny model, with small sizes, in a scratch folder.
    registry.update(base_model={"path": str(tiny_model_dir)}, output_dir=str(tmp_path / "runs"),
                    cache_dir=str(tmp_path / "cache"), lora={"steps": 3, "batch_size": 4})
    for use in registry["sources"]:
        use["n_train"] = 12
    for use in registry["targets"]:
        use["limit"] = 3 if use["task"] == "gsm8k" else 16
    for use in registry["sources"] + registry["targets"]:  # paths were relative to examples/
        use["options"]["data_files"] = {k: str((ROOT / "examples" / v).resolve())
                                        for k, v in use["options"]["data_files"].items()}
    path = tmp_path / "shared-data.yaml"
    path.write_text(yaml.safe_dump(registry))
    out = harness("run", str(path), "--quiet")
    assert out.returncode == 0, out.stderr[-3000:]
    results = json.loads((tmp_path / "runs" / "shared-data" / "results.json").read_text())
    assert results["targets"] == ["sst2", "ag_news", "gsm8k"]
    assert results["metrics"]["gsm8k"] == "exact_match,flexible-extract"
    assert all(results["base"][t] is not None for t in results["targets"])
    samples = (tmp_path / "runs" / "shared-data" / "samples" / "base" / "ag_news.jsonl").read_text().splitlines()
    assert len(samples) == 16 and "loglikelihoods" in json.loads(samples[0])
    assert Path(results["provenance"]["cache_dir"]) == tmp_path / "cache"
