"""Evaluation overhead: the harness's evaluate stage against the time spent in the model's forward passes.

``harness.execution.pipeline.run`` (in this process) scores K adapters + the base model on N targets; the
adapters are already trained and cached, the cells are not, and traits are off, so the only
forward passes of the run are the evaluation's. Timed:

* forward: every call of the base model object (``model.__call__``: the transformer with its LoRA
  layers, logits included), timed by a forward pre-hook / forward hook pair with
  ``time.perf_counter``. lm-eval's loglikelihood batches are one call each; generation is one call
  per decoding step. This is the time the model itself computes;
* model calls: lm-eval's ``HFLM._model_call`` and ``HFLM._model_generate`` (forward plus, for
  generation, transformers' decoding loop around it: sampling logic, stopping criteria, caches);
* cells: the ``seconds`` the harness records per cell (one ``simple_evaluate`` each: task building,
  requests, tokenisation, model calls, metrics);
* stage: the pipeline's ``evaluate`` stage (results["provenance"]["seconds"]["evaluate"]): the
  cells plus making the lm-eval model and loading and switching adapters.

Figure: (stage - forward) / forward (target: at most 0.15), with where the rest goes.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as c  # noqa: E402


class Clock:
    """Wall and CPU seconds and calls accumulated inside a region (re-entrant calls counted once)."""

    def __init__(self):
        self.seconds = self.cpu_seconds = 0.0
        self.calls = 0
        self._depth = 0
        self._start = self._cpu = 0.0

    def enter(self, *_a, **_k):
        if self._depth == 0:
            self._start, self._cpu = time.perf_counter(), time.process_time()
        self._depth += 1

    def leave(self, *_a, **_k):
        self._depth -= 1
        if self._depth == 0:
            self.seconds += time.perf_counter() - self._start
            self.cpu_seconds += time.process_time() - self._cpu
            self.calls += 1

    def wrap(self, fn):
        def timed(*args, **kwargs):
            self.enter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.leave()
        return timed


def main(argv=None) -> int:
    p = c.parser(__doc__.split("\n\n")[0])
    p.add_argument("--adapters", type=int, help="K: the first K sources of registry.yaml (default 2; --quick 1). "
                                                "The overhead is per cell and per model, so K changes little.")
    p.add_argument("--targets", help="Comma-separated targets (default: registry.yaml's targets; --quick sentiment).")
    p.add_argument("--limit", type=int, help="Test rows per target (default: registry.yaml's limits; --quick 8).")
    p.add_argument("--train-steps", type=int, help="Optimiser steps of each adapter built for the benchmark "
                                                   "(default 4; --quick 2). Weights do not change scoring cost "
                                                   "(beyond generation lengths).")
    args = p.parse_args(argv)
    quick = args.quick
    default = c.default_registry()
    k = args.adapters if args.adapters is not None else (1 if quick else 2)
    steps = args.train_steps or (2 if quick else 4)
    limits = {t.task: t.limit for t in default.targets}
    names = args.targets.split(",") if args.targets else (["sentiment"] if quick else list(limits))
    limit_of = (lambda t: args.limit) if args.limit else ((lambda t: 8) if quick else (lambda t: limits.get(t, 100)))
    targets = [{"task": t, "limit": limit_of(t)} for t in names]
    sources = [{"task": s.task, "n_train": 16 if quick else s.n_train, **({"options": s.options} if s.options else {})}
               for s in default.sources[:k]]
    if not sources:
        p.error("--adapters must be at least 1")
    base_model = c.model_config(args)
    lora = {**default.lora.model_dump(mode="json"), "steps": steps}

    import lm_eval.evaluator as lm_evaluator
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    from harness.execution import pipeline
    from harness.model import loading as models

    forward, model_calls, stage_clock = Clock(), Clock(), Clock()
    # Inside each cell's simple_evaluate: building the task (its dataset), lm-eval's evaluate (requests,
    # model calls, metrics), and the environment report it adds to every result (torch's collect_env,
    # git, tokenizer details).
    task_build, inner_evaluate, env_report = Clock(), Clock(), Clock()
    with c.workspace(args) as (setup_root, work):
        setup = {"experiment": "bench_setup", "base_model": base_model, "sources": sources,
                 "targets": [{"task": "sentiment", "limit": 1}], "lora": lora, "traits": []}
        c.ensure_adapters(c.registry_from(setup), setup_root, c.log)
        run_cache = work / "run-cache"
        c.link_setup(setup_root, run_cache)
        registry = c.registry_from({
            "experiment": "eval_overhead", "output_dir": str(work / "out"), "cache_dir": str(run_cache),
            "base_model": base_model, "sources": sources, "targets": targets, "lora": lora,
            "evaluation": default.evaluation.model_dump(mode="json"), "traits": [],
            "decomposers": [d.model_dump(mode="json", exclude_none=True) for d in default.decomposers],
            "analysis": default.analysis.model_dump(mode="json")})

        original_load = models.load

        def load_with_hooks(*a, **kw):
            model, tokenizer = original_load(*a, **kw)
            model.register_forward_pre_hook(lambda *_: forward.enter())
            model.register_forward_hook(lambda *_: forward.leave())
            return model, tokenizer

        # The evaluate stage's CPU time: around the pipeline's evaluation function, where it has one.
        patched = {HFLM: ("_model_call", "_model_generate"), TaskManager: ("load",),
                   lm_evaluator: ("evaluate", "add_env_info", "add_tokenizer_info", "get_git_commit_hash")}
        if hasattr(pipeline, "_evaluate"):
            patched[pipeline] = ("_evaluate",)
        clocks = {"_model_call": model_calls, "_model_generate": model_calls, "load": task_build,
                  "evaluate": inner_evaluate, "add_env_info": env_report, "add_tokenizer_info": env_report,
                  "get_git_commit_hash": env_report, "_evaluate": stage_clock}
        saved = {(obj, name): getattr(obj, name) for obj, names in patched.items() for name in names
                 if hasattr(obj, name)}
        models.load = load_with_hooks
        for (obj, name), fn in saved.items():
            setattr(obj, name, clocks[name].wrap(fn))
        c.log(f"pipeline.run: {k + 1} models x {len(targets)} targets "
              "(" + ", ".join(f"{t['task']}:{t['limit']}" for t in targets) + ")")
        try:
            start = time.perf_counter()
            outcome = pipeline.run(registry, out=work / "out", quiet=True)
            run_seconds = time.perf_counter() - start
        finally:
            models.load = original_load
            for (obj, name), fn in saved.items():
                setattr(obj, name, fn)
        prov = outcome.results["provenance"]
        if prov["computed"]["adapters"] or prov["computed"]["cells"] != (k + 1) * len(targets):
            raise SystemExit(f"expected only {(k + 1) * len(targets)} cells to be scored, computed {prov['computed']}")
        bad = [f for f in outcome.failures if f.get("stage") in ("finetune", "evaluate")]
        if bad:
            raise SystemExit(f"scoring failed: {bad}")
        cells = [json.loads(f.read_text()) for f in (run_cache / "cells").glob("*/cell.json")]

    stages = prov["seconds"]
    stage = stages["evaluate"]
    cells_s = sum(cell["seconds"] for cell in cells)
    fwd = forward.seconds
    calls = model_calls.seconds
    overhead = (stage - fwd) / fwd if fwd else None
    stage_cpu = stage_clock.cpu_seconds if stage_clock.calls else None
    cpu_overhead = c.ratio(stage_cpu - forward.cpu_seconds, forward.cpu_seconds) if stage_cpu else None
    per_target = {}
    for cell in cells:
        per_target[cell["target"]] = per_target.get(cell["target"], 0.0) + cell["seconds"]

    print(f"\nScoring {k + 1} models (base + {k} adapters) on {len(targets)} targets through the harness "
          f"(pipeline.run, evaluate stage), model {c.model_label(args)}")
    c.table(["part", "seconds", "share of stage"], [
        ["evaluate stage (wall)", stage, 1.0],
        [f"  cells ({len(cells)}, as recorded in cell.json)", cells_s, c.ratio(cells_s, stage)],
        [f"    lm-eval model calls ({model_calls.calls})", calls, c.ratio(calls, stage)],
        [f"      forward passes ({forward.calls})", fwd, c.ratio(fwd, stage)],
        ["      decoding loop around forward (generate)", calls - fwd, c.ratio(calls - fwd, stage)],
        ["    lm-eval per cell outside model calls", cells_s - calls, c.ratio(cells_s - calls, stage)],
        [f"      building tasks and datasets (TaskManager.load, {task_build.calls})", task_build.seconds,
         c.ratio(task_build.seconds, stage)],
        ["      requests and metrics (evaluate() minus model calls)", inner_evaluate.seconds - calls,
         c.ratio(inner_evaluate.seconds - calls, stage)],
        [f"      environment report per result (collect_env, git; {env_report.calls})", env_report.seconds,
         c.ratio(env_report.seconds, stage)],
        ["  harness outside cells (lm-eval model, adapter loads)", stage - cells_s, c.ratio(stage - cells_s, stage)],
    ])
    print(f"load_model stage: {stages.get('load_model', 0.0):.1f}s; whole pipeline.run: {run_seconds:.1f}s; "
          f"stages {json.dumps(stages)}")
    print("Forward time = time inside the base model object's __call__ (forward pre-hook to forward hook): the "
          "transformer with its LoRA layers and the logits, for every loglikelihood batch and every decoding step.")
    print(f"Overhead (stage - forward) / forward = {overhead:.3f} (target <= 0.15: "
          f"{'met' if overhead is not None and overhead <= 0.15 else 'not met'}); over CPU seconds: "
          f"{c.fmt(cpu_overhead)} (stage {c.fmt(stage_cpu)} cpu s, forward {forward.cpu_seconds:.1f} cpu s)")
    result = {
        "benchmark": "eval_overhead", "model": c.model_label(args), "quick": quick,
        "models": k + 1, "adapters": k, "targets": {t["task"]: t["limit"] for t in targets},
        "batch_size": c.eval_batch_size(default.evaluation),
        "timed": "harness.execution.pipeline.run in-process, adapters cached, cells not, traits off; stage = its "
                 "'evaluate' stage",
        "forward_definition": "time inside the base model's __call__ (forward pre-hook..forward hook), all "
                              "loglikelihood batches and decoding steps",
        "stage_seconds": round(stage, 3), "forward_seconds": round(fwd, 3), "forward_calls": forward.calls,
        "model_call_seconds": round(calls, 3), "model_calls": model_calls.calls, "cells_seconds": round(cells_s, 3),
        "task_build_seconds": round(task_build.seconds, 3), "lm_eval_evaluate_seconds": round(inner_evaluate.seconds, 3),
        "environment_report_seconds": round(env_report.seconds, 3),
        "overhead_ratio": round(overhead, 4) if overhead is not None else None,
        "stage_cpu_seconds": round(stage_cpu, 3) if stage_cpu else None,
        "forward_cpu_seconds": round(forward.cpu_seconds, 3), "cpu_overhead_ratio": cpu_overhead,
        "target_met": overhead is not None and overhead <= 0.15,
        "overhead_parts_over_forward": {
            "generate_loop": c.ratio(calls - fwd, fwd),
            "lm_eval_per_cell_outside_model_calls": c.ratio(cells_s - calls, fwd),
            "of_which_task_building": c.ratio(task_build.seconds, fwd),
            "of_which_requests_and_metrics": c.ratio(inner_evaluate.seconds - calls, fwd),
            "of_which_environment_report": c.ratio(env_report.seconds, fwd),
            "harness_outside_cells": c.ratio(stage - cells_s, fwd)},
        "overhead_with_load_model": c.ratio(stage + stages.get("load_model", 0.0) - fwd, fwd),
        "per_target_cell_seconds": {t: round(s, 3) for t, s in per_target.items()},
        "pipeline_stage_seconds": stages, "pipeline_run_seconds": round(run_seconds, 3),
        "machine": c.machine(),
    }
    c.emit(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
