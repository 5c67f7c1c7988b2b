"""The ``harness`` command: run, validate, plugins.

Exit codes: 0 success, 1 the run finished but some cells or plugins failed, 2 invalid input.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

# Quiet third-party progress bars before they are imported: the harness draws its own.
os.environ.setdefault("TQDM_DISABLE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="harness", description="Fine-tune on A, see what happens to B, C, D - and why.")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="Run an experiment: fine-tune, evaluate, analyse, report.")
    run.add_argument("registry", type=Path)
    run.add_argument("--out", type=Path, help="Output directory (default: the registry's output_dir).")
    run.add_argument("--quiet", action="store_true", help="No progress bars or summary; errors still print.")
    run.add_argument("--dry-run", action="store_true", help="Print the plan (cached vs to run) and stop.")
    val = sub.add_parser("validate", help="Check a registry file; exit 2 listing every problem.")
    val.add_argument("registry", type=Path)
    plug = sub.add_parser("plugins", help="List the installed task, trait and decomposer plugins.")
    plug.add_argument("--kind", choices=["task", "trait", "decomposer"])
    plug.add_argument("--json", action="store_true")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    from rich.console import Console

    err = Console(stderr=True)
    if args.command == "plugins":
        return _plugins(args)
    from harness.registry import RegistryError, load_registry

    try:
        registry = load_registry(args.registry)
    except RegistryError as exc:
        # Plain lines, never wrapped: editors and CI annotators parse "file:line: message".
        print(f"{len(exc.problems)} problem(s) in {exc.filename}:", file=sys.stderr)
        for problem in exc.problems:
            print("  " + problem.format(exc.filename), file=sys.stderr)
        return 2
    if args.command == "validate":
        err.print(f"{args.registry}: ok ({len(registry.sources)} sources, {len(registry.targets)} targets)")
        return 0
    from harness.filetasks import DataError
    from harness.models import ModelNotFound
    from harness.pipeline import run

    try:
        outcome = run(registry, args.registry.resolve(), out=args.out, quiet=args.quiet, dry_run=args.dry_run)
    except (ModelNotFound, DataError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        err.print("[yellow]Interrupted.[/] Finished adapters and cells are cached; run the same command to resume.")
        return 130
    if outcome.results is not None and not args.quiet:
        err.print(f"Results in {outcome.run_dir}")
    return outcome.exit_code


def _plugins(args) -> int:
    from rich.console import Console
    from rich.table import Table

    from harness.plugins import catalog

    cat = catalog()
    rows = []
    for kind in ([args.kind] if args.kind else ["task", "trait", "decomposer"]):
        for name in cat.names(kind):
            e = cat.get(kind, name)
            row = {"name": name, "kind": kind, "plugin": e.plugin, "module": e.module,
                   "distribution": e.distribution, "description": e.description}
            if kind == "task":
                row["abilities"] = list(e.obj.abilities)
                row["task_kind"] = e.obj.kind
            rows.append(row)
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    table = Table("name", "kind", "from", "description")
    for r in rows:
        desc = r["description"] + (f" [{', '.join(r['abilities'])}]" if r.get("abilities") else "")
        table.add_row(r["name"], r["kind"], f"{r['module']}\n({r['distribution'] or 'not installed'})", desc)
    Console().print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
