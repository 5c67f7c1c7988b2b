"""Real-data tasks scored through the harness equal `lm_eval` run directly on their exported YAML:
a classification task (SST-2) and a generation task with two filters (GSM8K)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from helpers import SHARED_DATA

LIMIT = 100


def harness_cell(smollm2_dir, task, tmp_path, limit: int, batch_size: int):
    """The task's cell through the harness: its inline config over ``limit`` local rows (the
    task's seeded sample), scored by the harness's Evaluator."""
    from harness.config.registry import EvaluationSettings, ModelConfig
    from harness.model.loading import load
    from harness.stages.evaluate import Evaluator

    model, tokenizer = load(smollm2_dir, ModelConfig(path=str(smollm2_dir)))
    return Evaluator(model, tokenizer, EvaluationSettings(batch_size=batch_size)).evaluate(
        {task.name: task.lm_eval_config(tmp_path / "data", limit)}, {task.name: task.metric()})[task.name]


def lm_eval_on_export(smollm2_dir, name: str, test_file, tmp_path, limit: int, batch_size: int, *extra: str):
    """Export the task's YAML, then run the plain `lm_eval` command on it, as anyone would; the
    folder lm_eval wrote its results (and, with ``--log_samples``, its samples) to."""
    yaml_path = tmp_path / "export" / f"{name}.yaml"
    export = subprocess.run([sys.executable, "-m", "harness.cli", "export-task", name, "--data", str(test_file),
                             "-o", str(yaml_path), "--limit", str(limit)], capture_output=True, text=True)
    assert export.returncode == 0, export.stderr
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    out = tmp_path / "lm_eval_out"
    direct = subprocess.run(
        [sys.executable, "-m", "lm_eval", "run", "--model", "hf",
         "--model_args", f"pretrained={smollm2_dir},dtype=float32", "--tasks", str(yaml_path),
         "--limit", str(limit), "--batch_size", str(batch_size), *extra, "--output_path", str(out)],
        env=env, capture_output=True, text=True, cwd=tmp_path)
    assert direct.returncode == 0, direct.stderr[-3000:]
    return out


@pytest.mark.slow
def test_sst2_local_score_equals_lm_eval_on_the_exported_yaml(tmp_path, smollm2_dir):
    test_file = SHARED_DATA / "sst2" / "test.tsv"
    if not test_file.is_file():
        pytest.skip(f"{test_file} is absent: the shared SST-2 copy is needed for this check")
    from harness_plugins.tasks.sst2 import SST2

    ours = harness_cell(smollm2_dir, SST2(data_files={"test": str(test_file)}), tmp_path, LIMIT, 16)
    assert ours.n == LIMIT
    out = lm_eval_on_export(smollm2_dir, "sst2", test_file, tmp_path, LIMIT, 16)
    (result_file,) = out.rglob("results_*.json")
    theirs = json.loads(result_file.read_text())["results"]["sst2"]
    assert abs(ours.value - theirs["acc,none"]) < 1e-6, (ours.value, theirs)
    assert 0.5 < ours.value, ours.value  # SmolLM2 is better than chance on SST-2: the rows really were scored


GSM8K_LIMIT = 20


@pytest.mark.slow
def test_gsm8k_multi_filter_cell_equals_lm_eval_on_the_exported_yaml(tmp_path, smollm2_dir):
    """gsm8k logs every document under strict-match and under flexible-extract: the harness's cell
    keeps the flexible-extract records only, one per document, and its value, n and per-document
    scores equal what the `lm_eval` command reports and logs for that filter."""
    test_file = SHARED_DATA / "gsm8k" / "test.jsonl"
    if not test_file.is_file():
        pytest.skip(f"{test_file} is absent: the shared GSM8K copy is needed for this check")
    from harness_plugins.tasks.gsm8k import GSM8K

    task = GSM8K(data_files={"test": str(test_file)})
    metric = task.metric()
    # One batch of all 20 rows on both sides: greedy generation runs until the longest output
    # stops (256 tokens), so a second batch would double the test's time, not its coverage.
    ours = harness_cell(smollm2_dir, task, tmp_path, GSM8K_LIMIT, GSM8K_LIMIT)
    assert ours.n == GSM8K_LIMIT == len({s["doc_id"] for s in ours.samples}) == len(ours.samples)
    out = lm_eval_on_export(smollm2_dir, "gsm8k", test_file, tmp_path, GSM8K_LIMIT, GSM8K_LIMIT,
                            "--num_fewshot", "0", "--log_samples")
    (result_file,) = out.rglob("results_*.json")
    theirs = json.loads(result_file.read_text())["results"]["gsm8k"]
    assert abs(ours.value - theirs[metric]) < 1e-6, (ours.value, theirs)
    (samples_file,) = out.rglob("samples_gsm8k_*.jsonl")
    logged = [json.loads(line) for line in samples_file.read_text().splitlines()]
    assert len(logged) == 2 * GSM8K_LIMIT  # lm_eval itself logs each document once per filter
    flexible = {r["doc_id"]: float(r["exact_match"]) for r in logged if r["filter"] == "flexible-extract"}
    assert {s["doc_id"]: s["correct"] for s in ours.samples} == flexible
    n = GSM8K_LIMIT
    mean = sum(flexible.values()) / n
    se = (sum((x - mean) ** 2 for x in flexible.values()) / (n - 1) / n) ** 0.5
    assert ours.stderr == pytest.approx(se, abs=1e-9)
