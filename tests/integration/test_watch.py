"""``harness run --watch`` and the base model kept loaded between runs (executors.KeptModel)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from harness.config.registry import load_registry
from harness.execution import pipeline
from harness.execution.watch import fingerprint, preload, wait_for_change, watched_files
from harness.model import loading as models
from harness.model.kept import KeptModel

REGISTRY = """\
experiment: watched
output_dir: out
cache_dir: {cache}
base_model: {{path: {model}}}
sources:
{sources}
targets:
{targets}
lora: {{steps: 3, batch_size: 4, learning_rate: 0.01, target_modules: [q_proj, v_proj]}}
evaluation: {{batch_size: 8}}
traits: [{{name: class_distribution}}]
decomposers: [{{name: pca}}]
"""


def write_registry(path: Path, model: Path, cache: Path, sources, targets) -> Path:
    path.write_text(REGISTRY.format(model=model, cache=cache,
                                    sources="\n".join(f"  - {{task: {s}, n_train: 16}}" for s in sources),
                                    targets="\n".join(f"  - {{task: {t}, limit: 6}}" for t in targets)))
    return path


def cell_numbers(run_dir: Path) -> dict:
    """Every cell's score and per-sample loglikelihoods, keyed (model, target)."""
    results = json.loads((run_dir / "results.json").read_text())
    out = {}
    for model, row in {"base": results["base"], **results["scores"]}.items():
        for target, cell in row.items():
            samples = (run_dir / "samples" / model / f"{target}.jsonl").read_text().splitlines()
            out[model, target] = (cell["value"], [json.loads(s).get("loglikelihoods") for s in samples])
    return out


def test_a_kept_model_scores_an_added_source_and_target_as_a_fresh_process_would(tiny_model_dir, tmp_path, monkeypatch):
    """Run 1 trains and scores with the model loaded once; run 2 (one more source, one more
    target) reuses that very model object without loading again, and its numbers equal those of
    a fresh run of the grown registry in another cache, bit for bit."""
    loads = []
    load_checked = models.load_checked
    monkeypatch.setattr(models, "load_checked", lambda *a, **k: loads.append(1) or load_checked(*a, **k))

    keep = KeptModel()
    small = write_registry(tmp_path / "small.yaml", tiny_model_dir, tmp_path / "cache", ["sentiment", "nli"], ["sentiment"])
    first = pipeline.run(load_registry(small), small, quiet=True, keep=keep)
    assert first.exit_code == 0 and len(loads) == 1
    model = keep.loaded[1]

    grown = write_registry(tmp_path / "grown.yaml", tiny_model_dir, tmp_path / "cache",
                           ["sentiment", "nli", "arithmetic"], ["sentiment", "nli"])
    second = pipeline.run(load_registry(grown), grown, out=tmp_path / "out-kept", quiet=True, keep=keep)
    assert second.exit_code == 0
    assert len(loads) == 1 and keep.loaded[1] is model  # not loaded again
    assert second.results["provenance"]["computed"] == {"adapters": 1, "cells": 5}  # 4 models x 2 targets - 3 cached
    keep.loaded[3].clear()  # what the next run starts from: the bare base model, as loaded
    assert not hasattr(model, "peft_config") and not any("lora" in name for name, _ in model.named_parameters())
    assert all(p.requires_grad for p in model.parameters()) and not model.training

    # The reference grows the same way, each run loading the model afresh: a model's pending cells
    # are scored in one lm-eval call, whose batches mix its targets (as `lm_eval --tasks A B` does),
    # so per-sample loglikelihoods follow which cells were pending together in their last float32
    # bits. Growing the same way isolates what this test is about: the kept model scores as a
    # freshly loaded one, bit for bit.
    fresh_small = write_registry(tmp_path / "fresh-small.yaml", tiny_model_dir, tmp_path / "cache-fresh",
                                 ["sentiment", "nli"], ["sentiment"])
    assert pipeline.run(load_registry(fresh_small), fresh_small, out=tmp_path / "out-fresh-small",
                        quiet=True).exit_code == 0
    fresh = write_registry(tmp_path / "fresh.yaml", tiny_model_dir, tmp_path / "cache-fresh",
                           ["sentiment", "nli", "arithmetic"], ["sentiment", "nli"])
    reference = pipeline.run(load_registry(fresh), fresh, out=tmp_path / "out-fresh", quiet=True)
    assert reference.results["provenance"]["computed"] == {"adapters": 1, "cells": 5}
    assert cell_numbers(tmp_path / "out-kept" / "watched") == cell_numbers(tmp_path / "out-fresh" / "watched")
    for source in ("sentiment", "nli", "arithmetic"):  # the adapter trained on the kept model: the same weights
        kept = (tmp_path / "cache" / "adapters" / second.results["provenance"]["config_hashes"]["adapters"][source])
        new = (tmp_path / "cache-fresh" / "adapters" / reference.results["provenance"]["config_hashes"]["adapters"][source])
        assert (kept / "adapter_model.safetensors").read_bytes() == (new / "adapter_model.safetensors").read_bytes()

    keep.release()
    assert keep.loaded is None


def test_a_kept_model_is_not_reused_for_other_weights_or_settings(tiny_model_dir, tmp_path):
    from harness.cache.store import Cache
    from harness.config.registry import ModelConfig

    cache = Cache(tmp_path / "cache")
    cfg = ModelConfig(path=str(tiny_model_dir))
    location = models.locate(cfg, cache)
    keep = KeptModel()
    model = keep.get(location, cfg, cache)[1]
    assert keep.holds(location, cfg, cache) and keep.get(location, cfg, cache)[1] is model
    other_dtype = ModelConfig(path=str(tiny_model_dir), dtype="bfloat16")
    assert not keep.holds(location, other_dtype, cache)
    assert not keep.holds(models.ModelLocation("other-weights", "path", path=tiny_model_dir), cfg, cache)
    assert not keep.holds(location, cfg, Cache(tmp_path / "another-cache"))
    assert keep.get(location, other_dtype, cache)[1] is not model


def test_preload_loads_the_base_model_for_local_runs_only(tiny_model_dir, tmp_path):
    from rich.console import Console

    path = write_registry(tmp_path / "registry.yaml", tiny_model_dir, tmp_path / "cache", ["sentiment"], ["sentiment"])
    registry, keep, quiet = load_registry(path), KeptModel(), Console(quiet=True)
    registry.executor.kind = "ray"
    preload(registry, path, keep, quiet)
    assert keep.loaded is None  # Ray workers load their own
    registry.executor.kind = "local"
    preload(registry, path, keep, quiet)
    model = keep.loaded[1]
    preload(registry, path, keep, quiet)
    assert keep.loaded[1] is model  # not loaded twice


def test_watched_files_and_fingerprint(tmp_path):
    data, test = tmp_path / "train.csv", tmp_path / "test.csv"
    data.write_text("text,label\na,x\n")
    test.write_text("text,label\nb,y\n")
    registry = tmp_path / "registry.yaml"
    registry.write_text(f"""\
experiment: files
base_model: {{path: {tmp_path}}}
sources: [{{task: sentiment}}]
targets:
  - {{task: sst2, options: {{data_files: {{train: train.csv, test: test.csv}}}}}}
""")
    files = watched_files(registry, load_registry(registry))
    assert files == [registry, data, test]
    before = fingerprint(files)
    assert fingerprint(files) == before
    data.write_text("text,label\na,x\nb,y\n")
    assert fingerprint(files) != before
    changed = fingerprint(files)
    test.unlink()  # a file that goes (or appears) counts as a change
    assert fingerprint(files) != changed


def test_wait_for_change_returns_after_an_edit_settles(tmp_path):
    path = tmp_path / "registry.yaml"
    path.write_text("a")
    seen = fingerprint([path])
    threading.Timer(0.3, lambda: path.write_text("bb")).start()
    start = time.monotonic()
    wait_for_change([path], seen, poll=0.05)
    assert time.monotonic() - start >= 0.3 and path.read_text() == "bb"


def _read_json_line(proc, deadline: float) -> dict:
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if line.strip():
            return json.loads(line)
        if proc.poll() is not None:
            raise AssertionError(f"harness exited {proc.returncode}: {proc.stderr.read()[-3000:]}")
    raise AssertionError("no summary line in time")


@pytest.mark.skipif(sys.platform == "win32", reason="sends SIGINT to the watching process")
def test_watch_command_reruns_after_each_edit_and_survives_a_bad_one(tiny_model_dir, tmp_path):
    """The real command: a summary line per run; an added target scores only its column; an
    invalid edit is reported and waited out; Ctrl-C while waiting ends with the last run's code."""
    registry = write_registry(tmp_path / "registry.yaml", tiny_model_dir, tmp_path / "cache", ["sentiment", "nli"], ["sentiment"])
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "harness.cli", "run", str(registry), "--watch", "--json"],
                            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        deadline = time.monotonic() + 300
        first = _read_json_line(proc, deadline)
        assert first["exit_code"] == 0 and first["computed"] == {"adapters": 2, "cells": 3}

        registry.write_text(registry.read_text().replace("sources:", "sources: [oops"))  # invalid YAML
        time.sleep(1.5)
        write_registry(registry, tiny_model_dir, tmp_path / "cache", ["sentiment", "nli"], ["sentiment", "nli"])
        second = _read_json_line(proc, deadline)
        assert second["exit_code"] == 0
        assert second["computed"] == {"adapters": 0, "cells": 3} and second["reused"] == {"adapters": 2, "cells": 3}
        assert "nli" in json.loads((tmp_path / "out" / "watched" / "results.json").read_text())["targets"]
        time.sleep(1.0)  # back to waiting
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=60) == 0
        err = " ".join(proc.stderr.read().split())  # rich wraps long log lines
        assert "problem(s) in" in err and "registry.yaml changed: running again" in err
        assert err.count("Loading base model") == 1 and "still loaded from the previous run" in err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_watch_loop_reports_bad_edits_and_ends_on_ctrl_c_while_waiting(tmp_path, monkeypatch):
    """The loop alone, with fakes: a run, an invalid edit (reported, nothing run), a valid edit
    (run again, with the same kept model object), then Ctrl-C while waiting: the last run's code."""
    from rich.console import Console

    import harness.execution.watch as watch_module
    from harness.errors import ExecutorError, RegistryError

    path = write_registry(tmp_path / "registry.yaml", tmp_path, tmp_path / "cache", ["sentiment"], ["sentiment"])
    registry = load_registry(path)
    events, keeps, preloads = [], [], []
    waits = iter([None, None, None, KeyboardInterrupt])

    def wait(files, seen):
        step = next(waits)
        if step is KeyboardInterrupt:
            raise KeyboardInterrupt
    loads = iter([RegistryError(str(path), []), ExecutorError("--address conflicts"), registry])

    def load():
        value = next(loads)
        if isinstance(value, Exception):
            raise value
        return value

    def run_once(reg, keep):
        keeps.append(keep)
        events.append("run")
        return 1

    monkeypatch.setattr(watch_module, "wait_for_change", wait)
    monkeypatch.setattr(watch_module, "preload", lambda *a: preloads.append(1))
    code = watch_module.watch(path, registry, Console(quiet=True), run_once, load,
                              lambda exc: events.append(type(exc).__name__), load_model=False)
    assert events == ["run", "RegistryError", "ExecutorError", "run"]
    assert code == 1 and keeps[0] is keeps[1] and not preloads  # dry runs (load_model=False) load nothing
