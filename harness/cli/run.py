"""``harness run REGISTRY``: fine-tune, evaluate, analyse, report (``--watch``: again on each change)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from harness.cli.common import on_registry, print_problem


def add_parser(sub) -> None:
    run = sub.add_parser("run", help="Run an experiment: fine-tune, evaluate, analyse, report.")
    run.add_argument("registry", type=Path)
    run.add_argument("--out", type=Path, help="Output directory (default: the registry's output_dir).")
    run.add_argument("--quiet", action="store_true", help="No progress bars or summary; errors still print.")
    run.add_argument("--dry-run", action="store_true", help="Print the plan (cached vs to run) and stop.")
    run.add_argument("--json", action="store_true", help="On stdout, a JSON summary of the run (folder, files, "
                                                         "failures, work reused and computed); progress stays on stderr.")
    run.add_argument("--executor", choices=["local", "ray"], help="Where fine-tune and evaluation jobs run (default: "
                     "the registry's executor, else local): ray runs each as a Ray task (pip install "
                     "\"transfer-harness[ray]\").")
    run.add_argument("--address", metavar="ADDR", help="Ray cluster to run on: 'auto' (the cluster `ray start` "
                     "started on this node) or HEAD:PORT; implies --executor ray. Default: a Ray instance on this machine.")
    run.add_argument("--adapter", action="append", default=[], metavar="NAME=PATH", help="Also score this peft "
                     "adapter folder (or hub id), named NAME in results, as a source of the registry (repeatable).")
    run.add_argument("--checkpoint", action="append", default=[], metavar="NAME=PATH", help="Also score this full "
                     "model folder, named NAME in results, as a source of the registry (repeatable).")
    run.add_argument("--watch", action="store_true", help="After the run, wait; run again each time the registry "
                     "file (or a data file it names) changes, with the base model kept loaded, until Ctrl-C. With "
                     "--json, one summary line per run.")
    run.set_defaults(handler=main)


def extra_sources(args) -> list[tuple[str, dict]]:
    """``--adapter`` and ``--checkpoint`` as registry sources: (origin, entry) pairs, relative
    paths made absolute against the current folder. Raises ValueError for one not NAME=PATH."""
    from harness.config.registry import HUB_ID

    out = []
    for field in ("adapter", "checkpoint"):
        for value in getattr(args, field, None) or []:
            name, sep, path = value.partition("=")
            if not sep or not name or not path:
                raise ValueError(f"--{field} {value!r}: give NAME=PATH, e.g. --{field} mine=./my-{field}")
            local = Path(path).expanduser()
            hub = field == "adapter" and not local.exists() and HUB_ID.fullmatch(path) and not path.startswith(".")
            out.append((f"--{field} {name}", {"alias": name, field: path if hub else str(local.absolute())}))
    return out


def main(args, err) -> int:
    try:
        args.extra_sources = extra_sources(args)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return on_registry(args, err, lambda registry: _watch(args, registry, err) if args.watch else run_once(args, registry, err),
                       prepare=lambda registry: override_executor(registry, args) if args.executor or args.address else None)


def _watch(args, registry, err) -> int:
    from rich.console import Console

    from harness.config.registry import load_registry
    from harness.errors import ExecutorError
    from harness.execution.watch import watch

    def load():
        registry = load_registry(args.registry, args.extra_sources)
        problem = override_executor(registry, args) if args.executor or args.address else None
        if problem:
            raise ExecutorError(problem)
        return registry

    status = Console(stderr=True, quiet=args.quiet)
    return watch(args.registry.resolve(), registry, status, lambda reg, keep: run_once(args, reg, err, keep),
                 load, print_problem, load_model=not args.dry_run)


def run_once(args, registry, err, keep=None) -> int:
    """One ``harness run``: the run, then its JSON summary (``--json``) and where the results are."""
    from harness.execution.pipeline import run

    outcome = run(registry, args.registry.resolve(), out=args.out, quiet=args.quiet, dry_run=args.dry_run, keep=keep)
    if outcome.results is not None and args.json:
        prov = outcome.results["provenance"]
        summary = {"run_dir": str(outcome.run_dir), "exit_code": outcome.exit_code,
                   "files": sorted(str(p.relative_to(outcome.run_dir)) for p in outcome.run_dir.rglob("*")
                                   if p.is_file() and p.parent.name != "samples" and "samples" not in p.parts),
                   "failures": outcome.results["failures"], "reused": prov["reused"],
                   "computed": prov["computed"], "seconds": prov["seconds"],
                   "cache_repairs": prov.get("cache_repairs", [])}
        # --watch prints one summary per run: one line each (JSON lines), flushed, for a reader that follows.
        print(json.dumps(summary) if args.watch else json.dumps(summary, indent=2), flush=True)
    if outcome.results is not None and not args.quiet:
        err.print(f"Results in {outcome.run_dir}", markup=False, highlight=False)
    return outcome.exit_code


def override_executor(registry, args) -> str | None:
    """Apply --executor/--address to the registry's executor; a message when they conflict."""
    from pydantic import ValidationError

    from harness.config.registry import ExecutorSettings

    if args.address and args.executor == "local":
        return "--address is a Ray cluster address; use it with --executor ray"
    update = {"kind": "ray" if args.address else args.executor}
    if args.address:
        update["address"] = args.address
    elif update["kind"] == "local":
        update["address"] = None  # the registry's Ray address means nothing to a local run
    try:
        registry.executor = ExecutorSettings.model_validate({**registry.executor.model_dump(), **update})
    except ValidationError as exc:
        return "; ".join(e["msg"].removeprefix("Value error, ") for e in exc.errors())
    return None
