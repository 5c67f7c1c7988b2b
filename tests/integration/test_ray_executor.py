"""The Ray executor: the same registry run locally and as Ray tasks (a local Ray instance on CPU)
gives identical results; a job that fails on a worker is recorded and the others finish; the
`executor` key parses, and a bad one is reported at its line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness.config.registry import load_registry, parse_registry
from harness.errors import RegistryError

# Three sources and a multiple-choice and a generation target: every kind of job, kept small.
# cpus_per_job pins the torch threads of every job in both executors (on CPU the thread count
# changes the last bits of training), so the numbers do not depend on this machine's cores.
REGISTRY = """\
experiment: tiny_ray
output_dir: out
base_model: {{path: {model}}}
sources:
  - {{task: sentiment, n_train: 32}}
  - {{task: nli, n_train: 32}}
  - {{task: arithmetic, n_train: 32}}
targets:
  - {{task: sentiment, limit: 12}}
  - {{task: arithmetic, limit: 4}}
lora: {{steps: 6, batch_size: 4, learning_rate: 0.01, target_modules: [q_proj, v_proj, up_proj]}}
evaluation: {{batch_size: 8}}
analysis: {{bootstrap: 20}}
executor: {{cpus_per_job: 1}}
"""


@pytest.fixture(scope="module")
def ray_address():
    """A Ray instance on this machine with 2 CPUs, shut down after the module's tests."""
    try:
        import ray
    except ImportError as exc:
        pytest.skip(f'Ray is not installed ({exc}); pip install "transfer-harness[ray]" to run the Ray executor tests')
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        yield ray.get_runtime_context().gcs_address
    finally:
        ray.shutdown()


@pytest.fixture(scope="module")
def workdir(tiny_model_dir, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("ray-run")
    (root / "registry.yaml").write_text(REGISTRY.format(model=tiny_model_dir))
    return root


def _run_in_process(workdir: Path, cache: Path, out: Path, monkeypatch):
    from harness.execution.pipeline import run

    monkeypatch.setenv("HARNESS_CACHE_DIR", str(cache))  # the registry has no cache_dir
    registry = load_registry(workdir / "registry.yaml")
    return registry, run(registry, workdir / "registry.yaml", out=out, quiet=True)


def _cells(cache: Path) -> dict:
    """Every cell in a cache by its key: the stored result without its timing, and its samples."""
    cells = {}
    for entry in (cache / "cells").iterdir():
        if entry.name.startswith("."):
            continue
        data = json.loads((entry / "cell.json").read_text())
        data.pop("seconds")
        cells[entry.name] = (data, (entry / "samples.jsonl").read_text())
    return cells


def test_ray_results_are_identical_to_local(workdir, ray_address, monkeypatch):
    local_registry, local = _run_in_process(workdir, workdir / "cache-local", workdir / "out-local", monkeypatch)
    assert local.exit_code == 0, local.failures
    assert local_registry.executor.kind == "local"

    # The command line, attached to the running Ray instance; its own cache.
    env = {**os.environ, "HARNESS_CACHE_DIR": str(workdir / "cache-ray")}
    out = subprocess.run([sys.executable, "-m", "harness.cli", "run", "registry.yaml", "--out", "out-ray",
                          "--executor", "ray", "--address", ray_address], cwd=workdir, env=env,
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "warning: cache_dir is not set" in out.stderr  # Ray workers may not see the default cache

    a = local.results
    b = json.loads((workdir / "out-ray" / "tiny_ray" / "results.json").read_text())
    assert b["provenance"]["executor"]["kind"] == "ray" and a["provenance"]["executor"]["kind"] == "local"
    assert a["provenance"]["executor"]["threads"] == b["provenance"]["executor"]["threads"] == 1
    assert b["provenance"]["computed"] == {"adapters": 3, "cells": 8} and b["failures"] == []
    print("local seconds", a["provenance"]["seconds"], "ray seconds", b["provenance"]["seconds"])
    # The same keys (the executor is in none) and the same numbers, bit for bit.
    assert a["provenance"]["config_hashes"] == b["provenance"]["config_hashes"]
    assert a["transfer"] == b["transfer"] and a["base"] == b["base"] and a["scores"] == b["scores"]
    assert {k: v for k, v in a.items() if k != "provenance"} == {k: v for k, v in b.items() if k != "provenance"}
    assert _cells(workdir / "cache-local") == _cells(workdir / "cache-ray")  # per-sample outcomes included
    for source in ("sentiment", "nli", "arithmetic"):
        x = json.loads((workdir / "out-local" / "tiny_ray" / "training" / f"{source}.json").read_text())
        y = json.loads((workdir / "out-ray" / "tiny_ray" / "training" / f"{source}.json").read_text())
        assert [s["loss"] for s in x["steps"]] == [s["loss"] for s in y["steps"]]
    for model in ("base", "sentiment", "nli", "arithmetic"):
        for target in ("sentiment", "arithmetic"):
            name = Path("samples") / model / f"{target}.jsonl"
            assert ((workdir / "out-local" / "tiny_ray" / name).read_text()
                    == (workdir / "out-ray" / "tiny_ray" / name).read_text())
    for adapter in (workdir / "cache-local" / "adapters").iterdir():  # the adapters' weights too
        twin = workdir / "cache-ray" / "adapters" / adapter.name
        assert (adapter / "adapter_model.safetensors").read_bytes() == (twin / "adapter_model.safetensors").read_bytes()


def test_a_failing_job_on_ray_is_recorded_and_the_rest_finish(workdir, ray_address, monkeypatch):
    """nli's training pairs break the tokenizer inside its Ray worker: its training and its cells
    are failures, exactly as a local run records them, and every other job is done."""
    import ray

    from harness.api.plugins import catalog

    monkeypatch.setattr(catalog().get("task", "nli").obj, "train_pairs", lambda self, n: [("prompt", None)] * n)
    # Smaller than the registry above: two sources, one target, one task at a time.
    text = (workdir / "registry.yaml").read_text().replace("executor: {cpus_per_job: 1}",
                                                          "executor: {kind: ray, cpus_per_job: 1, max_parallel: 1}")
    text = text.replace("  - {task: arithmetic, n_train: 32}\n", "").replace("  - {task: arithmetic, limit: 4}\n", "")
    (workdir / "failing.yaml").write_text(text)
    monkeypatch.setenv("HARNESS_CACHE_DIR", str(workdir / "cache-failing"))
    from harness.execution.pipeline import run

    outcome = run(load_registry(workdir / "failing.yaml"), workdir / "failing.yaml", out=workdir / "out-failing",
                  quiet=True)
    assert ray.is_initialized()  # a Ray instance the executor did not start is left running
    assert outcome.exit_code == 1
    failures = [f for f in outcome.failures if f["stage"] in ("finetune", "evaluate")]
    assert [(f["stage"], f["source"], f.get("target")) for f in failures] == [
        ("finetune", "nli", None), ("evaluate", "nli", "sentiment")]
    assert "traceback" in failures[0] and "adapter was not trained" in failures[1]["error"]
    results = outcome.results
    assert results["provenance"]["executor"]["max_parallel"] == 1
    # computed counts what this run finished: the failed adapter and its cell are not among them
    assert results["provenance"]["computed"] == {"adapters": 1, "cells": 2}
    assert results["transfer"]["nli"] == {"sentiment": None}
    assert results["transfer"]["sentiment"]["sentiment"] is not None and results["base"]["sentiment"] is not None
    # The failed adapter is not cached (a re-run retries it); the finished ones are.
    plan_keys = results["provenance"]["config_hashes"]
    cache = workdir / "cache-failing"
    assert (cache / "adapters" / plan_keys["adapters"]["sentiment"]).is_dir()
    assert not (cache / "adapters" / plan_keys["adapters"]["nli"]).exists()
    assert (cache / "cells" / plan_keys["cells"]["sentiment/sentiment"] / "samples.jsonl").is_file()


def test_executor_in_yaml(tiny_model_dir, tmp_path):
    base = REGISTRY.format(model=tiny_model_dir).replace("executor: {cpus_per_job: 1}\n", "")
    assert parse_registry(base).executor.kind == "local"
    registry = parse_registry(base + "executor: ray\n")
    assert registry.executor.kind == "ray" and registry.executor.address is None
    assert registry.executor.gpus_per_job == 0 and registry.executor.cpus_per_job is None
    full = parse_registry(base + "executor:\n  kind: ray\n  address: auto\n  gpus_per_job: 0.5\n  max_parallel: 4\n")
    assert full.executor.address == "auto" and full.executor.gpus_per_job == 0.5 and full.executor.threads() == 1

    bad = base + "executor: rey\n"
    with pytest.raises(RegistryError) as exc:
        parse_registry(bad, "reg.yaml")
    (problem,) = exc.value.problems
    assert problem.path == "executor" and problem.line == bad.count("\n")
    assert "unknown executor 'rey'" in problem.message and "did you mean 'ray'" in problem.message
    assert problem.format("reg.yaml").startswith(f"reg.yaml:{problem.line}: executor: ")

    for extra, path, words in (("executor: {kind: ray, gpus_per_job: -1}\n", "executor.gpus_per_job", "greater than"),
                               ("executor: {address: auto}\n", "executor", "set kind: ray"),
                               ("executor: {kind: ray, cpu_per_job: 2}\n", "executor.cpu_per_job", "unknown field")):
        with pytest.raises(RegistryError) as exc:
            parse_registry(base + extra, "reg.yaml")
        (problem,) = exc.value.problems
        assert problem.path == path and words in problem.message and problem.line == (base + extra).count("\n")

    # The command line: exit 2 with file:line, like every other input error.
    (tmp_path / "bad.yaml").write_text(bad)
    out = subprocess.run([sys.executable, "-m", "harness.cli", "validate", "bad.yaml"], cwd=tmp_path,
                         capture_output=True, text=True)
    assert out.returncode == 2 and f"bad.yaml:{problem.line}: executor: unknown executor 'rey'" in out.stderr


def test_executor_does_not_enter_the_cache_keys(tiny_model_dir, tmp_path):
    from harness.api.plugins import catalog
    from harness.cache.store import Cache
    from harness.model import loading as models
    from harness.stages.plan import make_plan

    base = REGISTRY.format(model=tiny_model_dir).replace("executor: {cpus_per_job: 1}\n", "")
    keys = []
    for extra in ("", "executor: {kind: ray, address: auto, cpus_per_job: 3, gpus_per_job: 0, max_parallel: 2}\n"):
        registry = parse_registry(base + extra)
        cache = Cache(tmp_path)
        plan = make_plan(registry, catalog(), cache, models.locate(registry.base_model, cache))
        keys.append([a.key for a in plan.adapters] + [c.key for c in plan.cells])
    assert keys[0] == keys[1]


def test_missing_ray_is_a_clear_input_error(workdir, monkeypatch, capsys):
    from harness.cli import main

    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    monkeypatch.setenv("HARNESS_CACHE_DIR", str(workdir / "cache-unused"))
    assert main(["run", str(workdir / "registry.yaml"), "--executor", "ray", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert 'pip install "transfer-harness[ray]"' in err and "not installed" in err
    assert not (workdir / "cache-unused" / "adapters").exists()  # it failed before any work
    assert main(["run", str(workdir / "registry.yaml"), "--executor", "local", "--address", "auto"]) == 2
    assert "--address is a Ray cluster address" in capsys.readouterr().err


def test_cache_warning_for_clusters(tiny_model_dir, tmp_path):
    from harness.cache.store import Cache
    from harness.execution.executors import cache_warning

    base = REGISTRY.format(model=tiny_model_dir)
    unset = parse_registry(base)
    assert cache_warning(unset, Cache(tmp_path), None) is None  # a local Ray instance: one machine
    assert "per-user default" in cache_warning(unset, Cache(tmp_path), "auto")
    relative = parse_registry(base + "cache_dir: cache\n")
    assert "is relative" in cache_warning(relative, Cache(tmp_path / "cache"), "auto")
    shared = parse_registry(base + "cache_dir: /shared/harness-cache\n")
    assert cache_warning(shared, Cache("/shared/harness-cache"), "head:6379") is None
    tmp = parse_registry(base + "cache_dir: /tmp/harness-cache\n")
    assert "local to each node" in cache_warning(tmp, Cache("/tmp/harness-cache"), "auto")
