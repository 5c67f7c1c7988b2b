"""Smoke tests of benchmarks/: each script runs with --quick on the tiny random model and ends with a
parseable ``BENCHMARK {json}`` line holding its figures. The figures themselves are not checked:
on a random two-layer model they mean nothing."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from helpers import ROOT

BENCHMARKS = ROOT / "benchmarks"


def run_benchmark(name: str, model_dir, tmp_path, *extra: str) -> dict:
    proc = subprocess.run(
        [sys.executable, str(BENCHMARKS / f"{name}.py"), "--quick", "--model-dir", str(model_dir),
         "--cache-dir", str(tmp_path / "cache"), "--work-dir", str(tmp_path / "work"), *extra],
        capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    last = proc.stdout.rstrip().splitlines()[-1]
    assert last.startswith("BENCHMARK "), proc.stdout[-3000:]
    result = json.loads(last.removeprefix("BENCHMARK "))
    assert result["benchmark"] == name and result["quick"] is True and result["machine"]["cpus"] >= 1
    return result


def assert_ratio_of_rounded(ratio: float, numerator: float, denominator: float, numerator_terms: int = 1):
    """The benchmarks round seconds to 3 decimals but compute ratios from the unrounded values. On the
    tiny model a column takes a few hundredths of a second, so recomputing a ratio from the rounded
    seconds can be off by several percent: check it against the interval the rounding allows."""
    half = 5e-4
    low = (numerator - numerator_terms * half) / (denominator + half)
    high = (numerator + numerator_terms * half) / max(denominator - half, 1e-9)
    assert low - 1e-4 <= ratio <= high + 1e-4, (low, ratio, high)


def test_eval_vs_lm_eval(tiny_model_dir, tmp_path):
    # One lm_eval command (the adapter, through peft=, at the harness's batch size): each command
    # costs lm_eval's start-up (imports, its task index, the model), about 20 s on 2 cores.
    result = run_benchmark("eval_vs_lm_eval", tiny_model_dir, tmp_path,
                           "--lm-eval-models", "arithmetic", "--lm-eval-batch-sizes", "harness")
    assert result["models"] == 2 and result["targets"] == ["sentiment"] and result["lm_eval_models"] == ["arithmetic"]
    assert result["harness_seconds"] > 0 and result["harness_stage_seconds"]["evaluate"] > 0
    run = result["lm_eval_runs"]["harness"]
    assert run["batch_size"] == result["harness_batch_size"] and run["seconds"] > 0
    assert result["scores_identical"] is True and result["max_abs_score_difference"] == 0
    for key in ("speedup_vs_lm_eval_default_bs", "speedup_vs_lm_eval_same_bs", "lm_eval_default_bs_seconds",
                "lm_eval_same_bs_seconds", "per_model", "per_model_ratio", "targets_met"):
        assert key in result  # None here: lm_eval did not score every model, and --quick times no one-row command


def test_incremental(tiny_model_dir, tmp_path):
    result = run_benchmark("incremental", tiny_model_dir, tmp_path)
    for key in ("cold_seconds", "warm_seconds"):
        assert result[key] > 0, key
    assert result["warm_over_cold"] == pytest.approx(result["warm_seconds"] / result["cold_seconds"], abs=1e-3)
    (target,) = result["added_targets"]
    added = result["added"][target]
    assert added["column_eval_seconds"] > 0 and added["column_cells"] == len(result["sources"]) + 1
    assert_ratio_of_rounded(added["ratio"], added["seconds"], added["column_eval_seconds"])
    assert added["fixed_seconds"] == pytest.approx(added["seconds"] - added["column_eval_seconds"], abs=1e-2)
    watched = result["added_in_watch_session"][target]  # the same column added in a `harness run --watch` session
    assert watched["column_eval_seconds"] > 0 and watched["column_cells"] == len(result["sources"]) + 1
    assert_ratio_of_rounded(watched["ratio"], watched["seconds"], watched["column_eval_seconds"])
    assert watched["stages"]["evaluate"] > 0
    assert set(result["targets_met"]) == {"warm_over_cold<=0.05", f"added {target} over column eval<=1.5",
                                          f"added {target} in watch session over column eval<=1.5"}


def test_training_throughput(tiny_model_dir, tmp_path):
    result = run_benchmark("training_throughput", tiny_model_dir, tmp_path, "--sources", "nli")
    nli = result["sources"]["nli"]
    assert nli["real_tokens"] > 0 and nli["trainer_padded_tokens"] == result["steps"] * result["batch_size"] * 128
    assert nli["harness_padded_tokens"] < nli["trainer_padded_tokens"]
    assert result["overall_ratio"] > 0 and isinstance(result["target_met"], bool)


def test_eval_overhead(tiny_model_dir, tmp_path):
    result = run_benchmark("eval_overhead", tiny_model_dir, tmp_path)
    assert result["forward_calls"] > 0 and 0 < result["forward_seconds"] <= result["model_call_seconds"] + 1e-6
    assert result["model_call_seconds"] <= result["cells_seconds"] <= result["stage_seconds"] + 1e-6
    stage, forward = result["stage_seconds"], result["forward_seconds"]
    assert_ratio_of_rounded(result["overhead_ratio"], stage - forward, forward, numerator_terms=2)
