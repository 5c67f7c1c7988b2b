"""The run, stage by stage: plan -> fine-tune -> evaluate -> matrix -> traits -> analyse -> report (-> track).

Each stage reads what the one before produced; adapters and scored cells go through the cache, so
a re-run with nothing changed loads no model at all.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console
from rich.markup import escape

from harness.api.plugins import catalog
from harness.config.paths import resolve_dirs
from harness.config.registry import Registry
from harness.execution.executors import make_executor
from harness.files import write_json_atomic
from harness.model import loading
from harness.reporting import console as console_report
from harness.stages import analyse, matrix, report, track, traits
from harness.stages import plan as plan_stage

if TYPE_CHECKING:
    from harness.model.kept import KeptModel


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


def run(registry: Registry, registry_path: Path | None = None, out: Path | None = None,
        quiet: bool = False, dry_run: bool = False, console: Console | None = None,
        keep: KeptModel | None = None) -> RunOutcome:
    """Run the experiment ``registry`` describes, end to end; what the cache holds is not redone.

    ``keep`` (a :class:`~harness.model.kept.KeptModel`) keeps the base model loaded after this run
    for the next one that passes the same object: ``harness run --watch``, or repeated runs from a
    notebook.
    """
    console = console or Console(stderr=True, quiet=quiet)
    timer = Timer()
    run_dir, cache = resolve_dirs(registry, registry_path, out)
    cache.warn = lambda message: console.log(f"[yellow]warning:[/] {escape(message)}")
    cat = catalog()
    executor = make_executor(registry.executor, console, keep)  # a missing Ray fails here, before any work

    with timer.stage("plan"):
        location, plan = plan_stage.plan_run(registry, cat, cache, executor, dry_run)
    if dry_run:
        executor.close()
        console_report.print_plan(plan, Console(quiet=False), run_dir, cache)
        return RunOutcome(run_dir, None)

    for line in console_report.seed_notes(plan):
        console.log(line)
    left = cache.clean_leftovers()
    if left:
        console.log(f"removed {len(left)} unfinished cache entr{'y' if len(left) == 1 else 'ies'} left by an "
                    "interrupted run")
    failures: list[dict] = []
    # Fine-tune and evaluate (harness.execution.executors): in this process, or as Ray tasks; either
    # way every adapter and cell lands in the cache, which is all the stages below read.
    try:
        executor.run_jobs(plan, registry, cache, location, timer, failures)
    finally:
        executor.close()
    with timer.stage("matrix"):
        mat = matrix.assemble(plan, cache)
    with timer.stage("traits"):
        trait_results, behaviour = traits.traits_stage(registry, plan, cat, cache, location, executor, keep)
        failures += trait_results.failures
    with timer.stage("analyse"):
        analysed, analysis_failures = analyse.analyse_run(registry, plan, mat, trait_results, behaviour, cat,
                                                                tokenizer=getattr(executor, "tokenizer", None))
        failures += analysis_failures
    results = report.build_results(registry, plan, mat, trait_results, analysed,
                                   report.provenance(registry, plan, cache, location, executor, timer.seconds),
                                   failures)
    with timer.stage("report"):
        report.write_outputs(run_dir, results, mat, plan, cache)
        report.write_reports(run_dir, results)
    results["provenance"]["seconds"] = timer.seconds
    write_json_atomic(run_dir / "results.json", results)
    console_report.print_summary(results, console)
    failures += track.track_stage(registry, results, run_dir, registry_path, console)  # MLflow, W&B: after all else
    return RunOutcome(run_dir, results, failures)


def run_traits(registry: Registry, registry_path: Path | None = None, out: Path | None = None,
               quiet: bool = False, console: Console | None = None) -> RunOutcome:
    """Source and pair traits only, without fine-tuning: triage of candidate source datasets."""
    console = console or Console(stderr=True, quiet=quiet)
    run_dir, cache = resolve_dirs(registry, registry_path, out)
    cat = catalog()
    location = loading.locate(registry.base_model, cache)
    plan = plan_stage.make_plan(registry, cat, cache, location)
    model, tokenizer = traits.trait_model(registry, cat, location, cache, None, None, plan)
    results = traits.compute_all(registry, plan, cat, tokenizer, model, cache=cache, scopes=("source", "pair"))
    report.write_traits(run_dir, [a.source for a in plan.adapters], results)
    for failure in results.failures:
        console.print(f"[red]trait {failure['plugin']} failed"
                      + (f" on {failure['source']}" if "source" in failure else "") + f":[/] {failure['error']}",
                      highlight=False)
    console.print(f"Traits of {len(plan.adapters)} sources in {run_dir / 'traits.csv'}")
    return RunOutcome(run_dir, None, results.failures)


