"""Nothing lost: runs killed at any stage resume without redoing finished jobs, runs sharing a
cache do each job once, damaged cache entries are found and recomputed, and one failing cell
costs only itself.

The kill tests run ``harness run`` as a real subprocess, watch its cache from outside, SIGKILL it
at a chosen stage, resume with the same command and compare every number with a run that was
never interrupted.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.cache.store import MANIFEST

# Long enough training (steps) and scoring (limits) on the tiny model that a watcher polling
# every 20 ms can stop the run in the middle of a stage.
REGISTRY = """\
experiment: resilient
output_dir: out
cache_dir: {cache}
base_model: {{path: {model}}}
sources:
  - {{task: sentiment, n_train: 32}}
  - {{task: nli, n_train: 32}}
targets:
  - {{task: sentiment, limit: 24}}
  - {{task: nli, limit: 24}}
  - {{task: ordering, limit: 24}}
lora: {{steps: 16, batch_size: 8, learning_rate: 0.01, target_modules: [q_proj, v_proj]}}
evaluation: {{batch_size: 4}}
traits: [class_distribution, completion_length, behaviour]
analysis: {{bootstrap: 20, permutations: 500}}
"""
N_ADAPTERS, N_CELLS = 2, 9  # (base + 2 adapters) x 3 targets


def write_registry(root: Path, model: Path, cache: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    path = root / "registry.yaml"
    path.write_text(REGISTRY.format(model=model, cache=cache))
    return path


def harness(*args, cwd: Path, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "harness.cli", *args], cwd=cwd, capture_output=True, text=True,
                          **kwargs)


def entries(cache: Path, kind: str) -> list[Path]:
    folder = cache / kind
    return sorted(p for p in folder.iterdir() if not p.name.startswith(".")) if folder.is_dir() else []


def numbers(run_dir: Path) -> dict:
    """Everything a run computed, without provenance (timings, paths, cache counts)."""
    results = json.loads((run_dir / "results.json").read_text())
    samples = {str(p.relative_to(run_dir)): p.read_text() for p in sorted((run_dir / "samples").rglob("*.jsonl"))}
    training = {}
    for p in sorted((run_dir / "training").glob("*.json")):  # losses and tokens; not the timings
        log = {k: v for k, v in json.loads(p.read_text()).items() if k not in ("seconds", "tokens_per_second")}
        log["steps"] = [{k: v for k, v in step.items() if k != "seconds"} for step in log["steps"]]
        training[p.name] = log
    return {"results": {k: v for k, v in results.items() if k != "provenance"}, "samples": samples,
            "training": training}


@pytest.fixture(scope="module")
def finished(tiny_model_dir, tmp_path_factory):
    """An uninterrupted run: (its numbers, its cache). Every resumed run must reproduce the numbers;
    tests that need finished jobs start from copies of the cache."""
    root = tmp_path_factory.mktemp("reference")
    registry = write_registry(root, tiny_model_dir, root / "cache")
    done = harness("run", str(registry), "--quiet", "--json", cwd=root)
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads(done.stdout)
    assert summary["computed"] == {"adapters": N_ADAPTERS, "cells": N_CELLS}
    return numbers(root / "out" / "resilient"), root / "cache"


@pytest.fixture(scope="module")
def reference(finished):
    return finished[0]


def copy_cache(finished, dest: Path, without: tuple[str, ...] = ()) -> Path:
    """A copy of the finished run's cache, less the kinds named in ``without``."""
    import shutil

    shutil.copytree(finished[1], dest, ignore=lambda folder, names: [n for n in names if n in without
                                                                   and Path(folder) == finished[1]])
    return dest


def kill_when(registry: Path, cwd: Path, condition, timeout: float = 300) -> None:
    """Start `harness run`, SIGKILL it as soon as ``condition()`` holds."""
    proc = subprocess.Popen([sys.executable, "-m", "harness.cli", "run", str(registry), "--quiet"], cwd=cwd,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + timeout
    try:
        while not condition():
            if proc.poll() is not None:
                pytest.fail(f"the run ended (exit {proc.returncode}) before the kill point: "
                            f"{proc.stderr.read()[-2000:]}")
            if time.monotonic() > deadline:
                pytest.fail("the kill point was never reached")
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
        proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL


@pytest.mark.parametrize("stage", ["training", "evaluation", "report"])
def test_killed_run_resumes_without_redoing_finished_jobs(stage, finished, reference, tiny_model_dir, tmp_path):
    cache = tmp_path / "cache"
    # Training starts from nothing; evaluation from the trained adapters (no cells); the report
    # stage from every job done (the killed run only analyses and writes).
    if stage == "evaluation":
        copy_cache(finished, cache, without=("cells", "traits"))
    elif stage == "report":
        copy_cache(finished, cache)
    registry = write_registry(tmp_path, tiny_model_dir, cache)
    run_dir = tmp_path / "out" / "resilient"
    conditions = {
        # the first adapter is filed, the second is training
        "training": lambda: len(entries(cache, "adapters")) == 1,
        # some cells are scored, not all
        "evaluation": lambda: 1 <= len(entries(cache, "cells")) < N_CELLS - 2,
        # every job is done; the run is writing its outputs (matrix.csv comes before the report)
        "report": lambda: (run_dir / "matrix.csv").exists() and not (run_dir / "report.html").exists(),
    }
    kill_when(registry, tmp_path, conditions[stage])
    adapters_before, cells_before = entries(cache, "adapters"), entries(cache, "cells")
    if stage == "training":
        assert len(adapters_before) == 1 and cells_before == []
    if stage == "evaluation":
        assert len(adapters_before) == N_ADAPTERS and 1 <= len(cells_before) < N_CELLS
    if stage == "report":
        assert len(adapters_before) == N_ADAPTERS and len(cells_before) == N_CELLS

    resumed = harness("run", str(registry), "--json", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    summary = json.loads(resumed.stdout)
    # Exactly the unfinished jobs ran again, and nothing the killed run had finished.
    assert summary["computed"] == {"adapters": N_ADAPTERS - len(adapters_before),
                                   "cells": N_CELLS - len(cells_before)}
    assert summary["reused"] == {"adapters": len(adapters_before), "cells": len(cells_before)}
    if stage == "training":
        finished = json.loads((adapters_before[0] / "train_log.json").read_text())["source"]
        assert f"trained {finished}:" not in resumed.stderr
    assert numbers(run_dir) == reference
    # The folders the killed run was filling are gone.
    assert not [p for kind in ("adapters", "cells", "traits") for p in (cache / kind).glob(".*.tmp")]


def test_ctrl_c_stops_cleanly_and_says_how_to_resume(tiny_model_dir, tmp_path):
    cache = tmp_path / "cache"
    registry = write_registry(tmp_path, tiny_model_dir, cache)
    proc = subprocess.Popen([sys.executable, "-m", "harness.cli", "run", str(registry)], cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while len(entries(cache, "adapters")) < 1 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-2000:]
    assert "Interrupted" in err and f"harness run {registry}" in err
    assert "Traceback" not in err
    assert not [p for kind in ("adapters", "cells") for p in (cache / kind).glob(".*.tmp")]
    assert len(entries(cache, "adapters")) >= 1  # what finished before the stop is kept


def test_two_runs_sharing_a_cache_do_each_job_once(reference, tiny_model_dir, tmp_path):
    cache = tmp_path / "cache"
    registry = write_registry(tmp_path, tiny_model_dir, cache)
    procs = [subprocess.Popen([sys.executable, "-m", "harness.cli", "run", str(registry), "--json",
                               "--out", str(tmp_path / f"out{i}")], cwd=tmp_path,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in (1, 2)]
    outs = [p.communicate(timeout=600) for p in procs]
    for proc, (out, err) in zip(procs, outs):
        assert proc.returncode == 0, err[-3000:]
    summaries = [json.loads(out) for out, _ in outs]
    assert sum(s["computed"]["adapters"] for s in summaries) == N_ADAPTERS
    assert sum(s["computed"]["cells"] for s in summaries) == N_CELLS
    for i in (1, 2):
        assert numbers(tmp_path / f"out{i}" / "resilient") == reference
    assert len(entries(cache, "adapters")) == N_ADAPTERS and len(entries(cache, "cells")) == N_CELLS


def test_damaged_cache_entries_are_reported_and_recomputed(finished, reference, tiny_model_dir, tmp_path):
    cache = copy_cache(finished, tmp_path / "cache")
    registry = write_registry(tmp_path, tiny_model_dir, cache)
    # A truncated JSON cell, an adapter whose weights were overwritten in place (same size), a
    # trait entry without its manifest.
    cell = entries(cache, "cells")[0]
    samples = cell / "samples.jsonl"
    samples.write_bytes(samples.read_bytes()[: samples.stat().st_size // 2])
    adapter = entries(cache, "adapters")[0]
    weights = adapter / "adapter_model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-64:] = bytes(64)
    weights.write_bytes(bytes(data))
    trait = entries(cache, "traits")[0]
    (trait / MANIFEST).unlink()

    again = harness("run", str(registry), "--json", cwd=tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    summary = json.loads(again.stdout)
    repairs = "\n".join(summary["cache_repairs"])
    assert f"cells/{cell.name} is damaged: samples.jsonl is" in repairs
    assert f"adapters/{adapter.name} is damaged: adapter_model.safetensors does not match its checksum" in repairs
    assert f"traits/{trait.name} is damaged: it has no {MANIFEST}" in repairs
    assert "damaged" in again.stderr  # and said so on the terminal
    assert summary["computed"] == {"adapters": 1, "cells": 1}
    assert numbers(tmp_path / "out" / "resilient") == reference


def test_a_failing_cell_costs_only_itself(finished, tiny_model_dir, tmp_path, monkeypatch):
    """An out-of-memory error in one cell: it is marked failed with its error, the others are
    scored, the exit code is 1, the reports show the gap, and a re-run scores just that cell."""
    import torch

    from harness.cache import entries
    from harness.config.registry import load_registry
    from harness.execution import pipeline

    cache = copy_cache(finished, tmp_path / "cache", without=("cells",))
    registry_path = write_registry(tmp_path, tiny_model_dir, cache)
    registry = load_registry(registry_path)
    store = entries.store_cell

    def out_of_memory(cache, cell, result, seconds):  # inside the cell's work, as a real OOM would be
        if (cell.model, cell.target) == ("sentiment", "nli"):
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return store(cache, cell, result, seconds)

    monkeypatch.setattr(entries, "store_cell", out_of_memory)
    outcome = pipeline.run(registry, registry_path, quiet=True)
    assert outcome.exit_code == 1
    failed = [f for f in outcome.results["failures"] if f["stage"] == "evaluate"]
    assert [(f["source"], f["target"]) for f in failed] == [("sentiment", "nli")]
    assert all("out of memory" in f["error"] for f in failed)
    results = outcome.results
    assert results["scores"]["sentiment"]["nli"] is None and results["transfer"]["sentiment"]["nli"] is None
    assert results["base"]["nli"] is not None and results["scores"]["sentiment"]["sentiment"] is not None
    report = (outcome.run_dir / "report.md").read_text()
    assert "out of memory" in report
    html = (outcome.run_dir / "report.html").read_text()
    assert "out of memory" in html

    monkeypatch.setattr(entries, "store_cell", store)
    again = pipeline.run(registry, registry_path, quiet=True)
    assert again.exit_code == 0
    assert again.results["provenance"]["computed"] == {"adapters": 0, "cells": 1}
