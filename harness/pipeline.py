"""The run, stage by stage: plan -> fine-tune -> evaluate -> matrix -> traits -> decompose -> report.

Each stage reads what the one before produced; adapters and scored cells go through the cache, so
a re-run with nothing changed loads no model at all.
"""

from __future__ import annotations

import json
import time
import traceback
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console
from rich.markup import escape

from harness import models
from harness.cache import Cache, default_cache_dir, stable_hash, write_json_atomic
from harness.plan import BASE, Plan, library_versions, make_plan
from harness.plugins import catalog
from harness.progress import make_progress
from harness.registry import Registry

if TYPE_CHECKING:
    from harness.executors import KeptModel


@dataclass
class RunOutcome:
    run_dir: Path
    results: dict | None
    failures: list[dict] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        return 1 if self.failures else 0


class Timer:
    def __init__(self):
        self.seconds: dict[str, float] = {}

    @contextmanager
    def stage(self, name: str):
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = round(self.seconds.get(name, 0.0) + time.perf_counter() - start, 3)


def resolve_dirs(registry: Registry, registry_path: Path | None, out: Path | None) -> tuple[Path, Cache]:
    """Run folder and cache; relative paths in a registry are relative to the registry file."""
    here = registry_path.parent if registry_path else Path.cwd()
    output = Path(out) if out else here / registry.output_dir
    cache_root = Path(registry.cache_dir).expanduser() if registry.cache_dir else default_cache_dir()
    if registry.cache_dir and not cache_root.is_absolute():
        cache_root = here / cache_root
    return output / registry.experiment, Cache(cache_root)


def adapter_name(job) -> str:
    # peft keeps adapters in ModuleDicts, whose keys may not contain dots: use the cache key.
    return f"adapter_{job.key[:12]}"


def run(registry: Registry, registry_path: Path | None = None, out: Path | None = None,
        quiet: bool = False, dry_run: bool = False, console: Console | None = None,
        keep: KeptModel | None = None) -> RunOutcome:
    """Run the experiment ``registry`` describes, end to end; what the cache holds is not redone.

    ``keep`` (an ``executors.KeptModel``) keeps the base model loaded after this run for the next
    one that passes the same object: ``harness run --watch``, or repeated runs from a notebook.
    """
    console = console or Console(stderr=True, quiet=quiet)
    timer = Timer()
    run_dir, cache = resolve_dirs(registry, registry_path, out)
    cache.warn = lambda message: console.log(f"[yellow]warning:[/] {escape(message)}")
    cat = catalog()
    from harness.executors import make_executor

    executor = make_executor(registry.executor, console, keep)  # a missing Ray fails here, before any work

    with timer.stage("plan"):
        try:
            location = models.locate(registry.base_model, cache, download=not dry_run)
        except models.ModelNotFound as exc:
            if not dry_run:
                raise
            # A dry run still shows the plan: nothing can be cached for a model never seen here.
            location = models.ModelLocation(key="unavailable", how=f"unavailable here ({exc})")
        # Keyed by the device and dtype the jobs will compute in: a Ray worker's, not this machine's.
        compute = executor.compute(registry.base_model.dtype, dry_run=dry_run)
        plan = make_plan(registry, cat, cache, location, dry_run=dry_run, compute=compute)
    if dry_run:
        from harness.report import print_plan

        executor.close()
        print_plan(plan, Console(quiet=False), run_dir, cache)
        return RunOutcome(run_dir, None)

    left = cache.clean_leftovers()
    if left:
        console.log(f"removed {len(left)} unfinished cache entr{'y' if len(left) == 1 else 'ies'} left by an "
                    "interrupted run")
    failures: list[dict] = []
    # Fine-tune and evaluate (harness/executors.py): in this process, or as Ray tasks; either way
    # every adapter and cell lands in the cache, which is all the stages below read.
    try:
        executor.run_jobs(plan, registry, cache, location, timer, failures)
    finally:
        executor.close()
    model, tokenizer, host = executor.model, executor.tokenizer, executor.host  # loaded here by local runs
    # What this run computed itself; everything else came from the cache (or from another run
    # sharing it, or failed).
    computed = {"adapters": sum(a.done_here for a in plan.adapters), "cells": sum(c.done_here for c in plan.cells)}
    reused = {"adapters": sum(a.cached and not a.done_here for a in plan.adapters),
              "cells": sum(c.cached and not c.done_here for c in plan.cells)}

    from harness import analysis, matrix, report, traits
    from harness.outcomes import collect

    with timer.stage("matrix"):
        mat = matrix.assemble(plan, cache)
    with timer.stage("traits"):
        model, tokenizer = _trait_model(registry, cat, location, cache, model, tokenizer, plan, keep)
        behaviour = _behaviour_data(plan, cache)
        with (host.base_only() if host is not None else nullcontext()):
            trait_results = traits.compute_all(registry, plan, cat, tokenizer, model, samples=behaviour, cache=cache)
        failures += trait_results.failures
    with timer.stage("analyse"):
        data = analysis.TransferData(
            sources=mat.sources, targets=mat.targets, transfer=mat.transfer,
            base={t: (c["value"] if c else None) for t, c in mat.base.items()},
            abilities={t: plan.tasks[t].abilities for t in mat.targets},
            traits=trait_results.values,
            source_trait_names=[k for k, scope in trait_results.scopes.items() if scope == "source"],
            pair_traits=trait_results.pairs,
            outcomes=collect(behaviour.samples, mat.sources, mat.targets, {BASE: mat.base, **mat.scores}))
        analysed, analysis_failures = analysis.analyse(data, registry.decomposers, cat, registry.analysis)
        failures += analysis_failures

    provenance = {
        "versions": library_versions(),
        "seeds": {"lora": registry.lora.seed, "evaluation": registry.evaluation.seed,
                  "tasks": {name: t.options.seed for name, t in plan.tasks.items()}},
        # Where jobs ran is not part of the experiment: the same registry hashes the same on any executor.
        "config_hashes": {"registry": stable_hash(registry.model_dump(mode="json", exclude={"executor"})),
                          "base_model": location.key,
                          "adapters": {a.source: a.key for a in plan.adapters},
                          "cells": {f"{c.model}/{c.target}": c.key for c in plan.cells}},
        "seconds": timer.seconds,
        # Where each target's few-shot examples came from: its training rows ("train") or its test
        # split with the scored document left out ("test"); empty at 0 shots.
        "fewshot": ({t: c.get("fewshot_split") for t, c in plan.target_configs.items()}
                    if registry.evaluation.num_fewshot else {}),
        "cache_dir": str(cache.root),
        "executor": executor.describe(),
        "reused": reused,
        "computed": computed,
        "cache_repairs": list(cache.repairs),
    }
    results = report.build_results(registry, plan, mat, trait_results, analysed, provenance, failures)
    with timer.stage("report"):
        report.write_outputs(run_dir, results, mat, plan, cache)
        report.write_reports(run_dir, results)
    results["provenance"]["seconds"] = timer.seconds
    write_json_atomic(run_dir / "results.json", results)
    report.print_summary(results, console)
    return RunOutcome(run_dir, results, failures)


def _trait_model(registry: Registry, cat, location, cache: Cache, model, tokenizer, plan: Plan | None = None,
                 keep=None):
    """(model, tokenizer) for the traits stage: the tokenizer when a trait that reads it has values
    not yet cached, the base model too when such a trait requires it (from ``keep`` when given).
    A fully cached run loads neither (``None``), which keeps a warm re-run free of transformers'
    imports. Without a ``plan`` nothing is known to be cached."""
    from harness.traits import trait_is_cached

    needing = [trait for trait in (cat.get("trait", use.name).obj(**use.params) for use in registry.traits)
               if trait.requires & {"tokenizer", "base_model"} and not (plan and trait_is_cached(trait, plan, cache))]
    wants_model = any("base_model" in trait.requires for trait in needing)
    if not needing or (tokenizer is not None and (model is not None or not wants_model)):
        return model, tokenizer
    if wants_model and model is None:
        if keep is not None:
            return keep.get(location, registry.base_model, cache)[1:3]
        return models.load_checked(location, registry.base_model, cache)[1:]
    return model, models.load_tokenizer(models.materialise(location, registry.base_model, cache))


def _behaviour_data(plan: Plan, cache: Cache):
    from harness.matrix import read_samples
    from harness.traits import BehaviourData

    data = BehaviourData(sources=[a.source for a in plan.adapters], targets=dict(plan.tasks))
    for cell in plan.cells:
        records = read_samples(cache, cell.key)
        if records:
            data.samples.setdefault(cell.model, {})[cell.target] = records
    return data


def run_traits(registry: Registry, registry_path: Path | None = None, out: Path | None = None,
               quiet: bool = False, console: Console | None = None) -> RunOutcome:
    """Source and pair traits only, without fine-tuning: triage of candidate source datasets."""
    from harness import report, traits

    console = console or Console(stderr=True, quiet=quiet)
    run_dir, cache = resolve_dirs(registry, registry_path, out)
    cat = catalog()
    location = models.locate(registry.base_model, cache)
    plan = make_plan(registry, cat, cache, location)
    model, tokenizer = _trait_model(registry, cat, location, cache, None, None, plan)
    results = traits.compute_all(registry, plan, cat, tokenizer, model, cache=cache, scopes=("source", "pair"))
    report.write_traits(run_dir, [a.source for a in plan.adapters], results)
    for failure in results.failures:
        console.print(f"[red]trait {failure['plugin']} failed"
                      + (f" on {failure['source']}" if "source" in failure else "") + f":[/] {failure['error']}",
                      highlight=False)
    console.print(f"Traits of {len(plan.adapters)} sources in {run_dir / 'traits.csv'}")
    return RunOutcome(run_dir, None, results.failures)


def _claimed(cache: Cache, kind: str, jobs: list, console, what):
    """The jobs this run should compute, each yielded while this run holds its lock.

    Runs sharing a cache: a job another run holds is put off until the rest are done, then waited
    for; a job found finished (by another run, meanwhile) is marked cached and skipped. So no job
    is computed twice, and nobody idles while there is other work.
    """
    later = []
    for job in jobs:
        with cache.lock(kind, job.key, blocking=False) as mine:
            if not mine:
                later.append(job)
                continue
            if cache.has(kind, job.key):
                job.cached = True
                continue
            yield job
    for job in later:
        console.log(f"waiting for another run sharing the cache to finish {what(job)}")
        with cache.lock(kind, job.key):
            if cache.has(kind, job.key):
                job.cached = True
                continue
            yield job


def _finetune(plan: Plan, registry: Registry, cache: Cache, host, tokenizer, console, failures,
              threads: int | None = None) -> None:
    todo = plan.todo_adapters
    if not todo:
        return
    with make_progress(console) as progress:
        for job in _claimed(cache, "adapters", todo, console, lambda j: f"training {j.source}"):
            bar = progress.add_task(f"train {job.source}", total=registry.lora.steps or 1)

            def on_step(step, total, loss, bar=bar):
                progress.update(bar, completed=step, total=total, description=f"train {job.source} loss {loss:.3f}")

            try:
                pairs = job.task.train_pairs(job.n_train)
                log = _train_and_store(cache, job.key, job.source, host, adapter_name(job), tokenizer, pairs,
                                       registry.lora, on_step, threads)
                job.cached = job.done_here = True
                console.log(f"trained {job.source}: loss {log['first_loss']:.3f} -> {log['last_loss']:.3f} "
                            f"in {log['seconds']:.0f}s ({log['tokens_per_second']:.0f} tokens/s)")
            except Exception as exc:  # one source failing must not cost the others
                failures.append({"stage": "finetune", "source": job.source, "error": f"{type(exc).__name__}: {exc}",
                                 "traceback": traceback.format_exc(limit=5)})
                console.log(f"[red]training {job.source} failed:[/] {escape(str(exc))}")
                _free_accelerator_memory()


def _free_accelerator_memory() -> None:
    """After a failure (out of memory above all), give the GPU's cached blocks back so the next
    job starts from a clean allocator."""
    import sys

    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        torch.cuda.empty_cache()


def _train_and_store(cache: Cache, key: str, source: str, host, name: str, tokenizer, pairs, lora,
                     on_step=None, threads: int | None = None) -> dict:
    """Train one adapter and file it (with its training log) in the cache, atomically; the same
    code for the local executor and a Ray worker."""
    from harness.finetune import train_adapter

    with cache.entry("adapters", key) as tmp:
        log = train_adapter(host, name, tokenizer, pairs, lora, tmp, on_step, threads=threads)
        log["source"] = source
        write_json_atomic(tmp / "train_log.json", log)
    return log


def _evaluate(plan: Plan, registry: Registry, cache: Cache, host, model, tokenizer, console, failures,
              model_dir: Path | None = None) -> None:
    from harness.evaluate import Evaluator

    todo = plan.todo_cells
    if not todo:
        return
    vllm = registry.evaluation.backend == "vllm"
    adapters = {a.source: a for a in plan.adapters}
    scorable = []
    for cell in todo:
        job = adapters.get(cell.model)
        if job is not None and not job.cached and not cache.has("adapters", job.key):
            failures.append({"stage": "evaluate", "source": cell.model, "target": cell.target,
                             "error": "adapter was not trained (see the finetune failure)"})
        else:
            if job is not None:
                job.cached = True  # trained here, or by another run sharing the cache
            scorable.append(cell)
    if not scorable:
        return
    evaluator = (_vllm_evaluator(plan, registry, cache, model, model_dir) if vllm
                 else Evaluator(model, tokenizer, registry.evaluation))
    # One model at a time (each adapter is switched in once), in plan order.
    order = {name: i for i, name in enumerate(dict.fromkeys(c.model for c in scorable))}
    scorable.sort(key=lambda c: order[c.model])
    active = None
    with make_progress(console) as progress:
        bar = progress.add_task("evaluate", total=len(scorable))
        for cell in _claimed(cache, "cells", scorable, console, lambda c: f"scoring {c.model} on {c.target}"):
            model_name = cell.model
            progress.update(bar, description=f"evaluate {model_name} on {cell.target}")
            try:
                if model_name != active:
                    if model_name != BASE:
                        job = adapters[model_name]
                        if vllm:
                            evaluator.activate(adapter_name(job), cache.path("adapters", job.key))
                        else:
                            host.load(adapter_name(job), cache.path("adapters", job.key))
                    elif vllm:
                        evaluator.activate(None)
                    active = model_name
                start = time.perf_counter()
                if model_name == BASE and not vllm:
                    with host.base_only():
                        result = _score(evaluator, plan, cell.target)
                else:
                    result = _score(evaluator, plan, cell.target)
                _store_cell(cache, cell, result, time.perf_counter() - start)
                cell.done_here = True
            except Exception as exc:  # one cell failing (out of memory, a task bug) must not cost the others
                active = None  # switch the model in again for the next cell
                failures.append({"stage": "evaluate", "source": model_name, "target": cell.target,
                                 "error": f"{type(exc).__name__}: {exc}",
                                 "traceback": traceback.format_exc(limit=5)})
                console.log(f"[red]scoring {model_name} on {cell.target} failed:[/] {escape(str(exc))}")
                _free_accelerator_memory()
            progress.advance(bar)
        progress.update(bar, completed=len(scorable))  # cells another run scored meanwhile


def _vllm_evaluator(plan: Plan, registry: Registry, cache: Cache, model, model_dir: Path | None):
    """lm-eval's vLLM backend on the converted model directory, LoRA enabled through the first
    trained adapter. The training model leaves the GPU first: vLLM loads its own copy."""
    import torch

    from harness.compute import resolve_dtype
    from harness.evaluate import VLLMEvaluator

    if model is not None:
        model.to("cpu")
        torch.cuda.empty_cache()
    trained = [a for a in plan.adapters if a.cached]
    first = cache.path("adapters", trained[0].key) if trained else None
    return VLLMEvaluator(model_dir, registry.evaluation, first, registry.lora.rank,
                         resolve_dtype(registry.base_model.dtype))


def check_backend(registry: Registry) -> None:
    """Refuse, before any work, an evaluation backend this machine cannot run."""
    if registry.evaluation.backend != "vllm":
        return
    import importlib.util

    from harness.compute import device
    from harness.executors import ExecutorError

    if device() != "cuda" or importlib.util.find_spec("vllm") is None:
        raise ExecutorError("evaluation.backend vllm needs a CUDA GPU and `pip install vllm`; "
                            "this machine has " + ("no vLLM" if device() == "cuda" else "no CUDA")
                            + ". Use backend: hf")


def _score(evaluator, plan: Plan, target: str):
    task = plan.tasks[target]
    return evaluator.evaluate({target: plan.target_configs[target]}, {target: task.metric()})[target]


def _store_cell(cache: Cache, cell, result, seconds: float) -> None:
    with cache.entry("cells", cell.key) as tmp:
        write_json_atomic(tmp / "cell.json", {"model": cell.model, "target": cell.target, "value": result.value,
                                              "stderr": result.stderr, "metric": result.metric, "n": result.n,
                                              "aggregation": result.aggregation, "seconds": round(seconds, 3)})
        with open(tmp / "samples.jsonl", "w") as fh:
            for sample in result.samples:
                fh.write(json.dumps(sample) + "\n")
    cell.cached = True
