"""Brought weights on the Ray executor: an adapter loaded from its own folder and a checkpoint
scored as its own model, in Ray tasks, give exactly the local executor's cells."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from helpers import save_adapter, save_checkpoint

REGISTRY = """\
experiment: brought_ray
output_dir: out
base_model: {{path: {model}}}
sources:
  - {{adapter: {adapter}, alias: theirs}}
  - {{checkpoint: {checkpoint}, alias: tuned}}
targets:
  - {{task: sentiment, limit: 6}}
evaluation: {{batch_size: 8}}
traits: [behaviour]
analysis: {{bootstrap: 0, permutations: 100}}
executor: {{cpus_per_job: 1}}
"""


def test_brought_weights_on_ray_equal_local(tiny_model_dir, tmp_path):
    pytest.importorskip("ray", reason='Ray is not installed; pip install "transfer-harness[ray]"')
    from peft import LoraConfig

    adapter = save_adapter(tiny_model_dir, tmp_path / "adapter", LoraConfig(r=4, target_modules=["q_proj", "v_proj"]))
    checkpoint = save_checkpoint(tiny_model_dir, tmp_path / "checkpoint", noise=0.1)
    (tmp_path / "registry.yaml").write_text(REGISTRY.format(model=tiny_model_dir, adapter=adapter,
                                                            checkpoint=checkpoint))
    results = {}
    for kind in ("local", "ray"):
        env = {**os.environ, "HARNESS_CACHE_DIR": str(tmp_path / f"cache-{kind}")}
        out = subprocess.run([sys.executable, "-m", "harness.cli", "run", "registry.yaml", "--out", f"out-{kind}",
                              "--executor", kind, "--json"], cwd=tmp_path, env=env, capture_output=True, text=True)
        assert out.returncode == 0, out.stderr[-3000:]
        assert json.loads(out.stdout)["computed"] == {"adapters": 0, "cells": 3}
        results[kind] = json.loads((tmp_path / f"out-{kind}" / "brought_ray" / "results.json").read_text())
    local, ray = results["local"], results["ray"]
    assert ray["provenance"]["executor"]["kind"] == "ray"
    assert local["scores"] == ray["scores"] and local["base"] == ray["base"]
    assert local["provenance"]["config_hashes"]["cells"] == ray["provenance"]["config_hashes"]["cells"]
    for model in ("base", "theirs", "tuned"):
        name = os.path.join("samples", model, "sentiment.jsonl")
        assert ((tmp_path / "out-local" / "brought_ray" / name).read_text()
                == (tmp_path / "out-ray" / "brought_ray" / name).read_text())
