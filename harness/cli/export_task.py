"""``harness export-task NAME``: a task as an lm-eval task YAML that ``lm_eval --tasks FILE`` runs."""

from __future__ import annotations

import sys
from pathlib import Path


def add_parser(sub) -> None:
    exp = sub.add_parser("export-task", help="Write a task as an lm-eval task YAML (run it with `lm_eval --tasks FILE`).",
                         description="Write a task as an lm-eval task YAML, with its test rows as JSON lines next to "
                                     "it, so that `lm_eval --tasks FILE` scores exactly what the harness scores.")
    exp.add_argument("name", help="Task name (see `harness plugins --kind task`).")
    exp.add_argument("--data", type=Path, help="Local test file of a task read from files (CSV, TSV, JSONL, Parquet).")
    exp.add_argument("-o", "--output", type=Path, help="YAML file to write (default: ./<NAME>.yaml).")
    exp.add_argument("--limit", type=int, help="Test rows to export (default: 100; a file task: at most its usable rows).")
    exp.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                     help="A task option, value read as YAML (repeatable), e.g. --option digits=3.")
    exp.set_defaults(handler=main)


def main(args, err) -> int:
    import shlex

    from harness.authoring.export import ExportError, export_task, lm_eval_command, make_task, parse_options, task_class
    from harness.errors import PluginError

    try:
        cls = task_class(args.name)
        task = make_task(cls, parse_options(args.option), args.data)
        output = args.output if args.output is not None else Path.cwd() / f"{args.name}.yaml"
        command = "harness " + " ".join(shlex.quote(str(a)) for a in args.argv)
        path = export_task(task, output, limit=args.limit, command=command)
    except (ExportError, PluginError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(path)
    err.print(f"Run it with:\n  {lm_eval_command(path)}", markup=False, highlight=False, soft_wrap=True)
    return 0
