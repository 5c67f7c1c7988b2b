"""A real-data task scored through the harness equals `lm_eval` run directly on its exported YAML."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from conftest import SHARED_DATA

LIMIT = 100


@pytest.mark.slow
def test_sst2_local_score_equals_lm_eval_on_the_exported_yaml(tmp_path, smollm2_dir):
    test_file = SHARED_DATA / "sst2" / "test.tsv"
    if not test_file.is_file():
        pytest.skip(f"{test_file} is absent: the shared SST-2 copy is needed for this check")
    from harness.evaluate import Evaluator
    from harness.models import load
    from harness.registry import EvaluationSettings, ModelConfig
    from harness_plugins.tasks.sst2 import SST2

    # Through the harness: the task's inline config over the first LIMIT local rows.
    model, tokenizer = load(smollm2_dir, ModelConfig(path=str(smollm2_dir)))
    task = SST2(data_files={"test": str(test_file)})
    ours = Evaluator(model, tokenizer, EvaluationSettings(batch_size=16)).evaluate(
        {"sst2": task.lm_eval_config(tmp_path / "data", LIMIT)}, {"sst2": task.metric()})["sst2"]
    assert ours.n == LIMIT

    # Directly: export the YAML, then the plain `lm_eval` command on it, as anyone would.
    yaml_path = tmp_path / "export" / "sst2.yaml"
    export = subprocess.run([sys.executable, "-m", "harness.cli", "export-task", "sst2", "--data", str(test_file),
                             "-o", str(yaml_path), "--limit", str(LIMIT)], capture_output=True, text=True)
    assert export.returncode == 0, export.stderr
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    direct = subprocess.run(
        [sys.executable, "-m", "lm_eval", "run", "--model", "hf",
         "--model_args", f"pretrained={smollm2_dir},dtype=float32", "--tasks", str(yaml_path),
         "--limit", str(LIMIT), "--batch_size", "16", "--output_path", str(tmp_path / "lm_eval_out")],
        env=env, capture_output=True, text=True, cwd=tmp_path)
    assert direct.returncode == 0, direct.stderr[-3000:]
    (result_file,) = (tmp_path / "lm_eval_out").rglob("results_*.json")
    theirs = json.loads(result_file.read_text())["results"]["sst2"]
    assert abs(ours.value - theirs["acc,none"]) < 1e-6, (ours.value, theirs)
    assert 0.5 < ours.value, ours.value  # SmolLM2 is better than chance on SST-2: the rows really were scored
