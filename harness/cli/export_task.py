"""``harness export-task NAME`` (a task plugin) or ``harness export-task --registry REG --target
NAME`` (a registry's target, lm-eval targets included): an lm-eval task YAML that ``lm_eval --tasks
FILE`` runs."""

from __future__ import annotations

import sys
from pathlib import Path


def add_parser(sub) -> None:
    exp = sub.add_parser("export-task", help="Write a task as an lm-eval task YAML (run it with `lm_eval --tasks FILE`).",
                         description="Write a task as an lm-eval task YAML, with its test rows as JSON lines next to "
                                     "it, so that `lm_eval --tasks FILE` scores exactly what the harness scores. "
                                     "Give a task plugin's NAME, or a registry and one of its targets (--registry "
                                     "REG --target NAME: lm-eval targets too).")
    exp.add_argument("name", nargs="?", help="Task name (see `harness plugins --kind task`).")
    exp.add_argument("--registry", type=Path, help="A registry whose target --target is exported (with its options, "
                     "overrides and limit).")
    exp.add_argument("--target", help="The target's name in results (its alias, else its task's name); with --registry.")
    exp.add_argument("--data", type=Path, help="Local test file of a task read from files (CSV, TSV, JSONL, Parquet).")
    exp.add_argument("-o", "--output", type=Path, help="YAML file to write (default: ./<NAME>.yaml).")
    exp.add_argument("--limit", type=int, help="Test rows to export (default: 100; a file task: at most its usable rows; "
                     "a registry's target: its limit).")
    exp.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                     help="A task option, value read as YAML (repeatable), e.g. --option digits=3.")
    exp.set_defaults(handler=main)


def usage_problem(args) -> str | None:
    """What is wrong with the command line's choice of what to export, or None."""
    if args.registry is None and args.target is None:
        return None if args.name else "give a task NAME, or --registry REG --target NAME"
    if args.name:
        return "give a task NAME or --registry/--target, not both"
    if args.registry is None or args.target is None:
        return "--registry and --target go together: --registry REG --target NAME"
    if args.data is not None or args.option:
        return "--data and --option are for a task NAME; a registry's target takes its options from the registry"
    return None


def main(args, err) -> int:
    import shlex

    from harness.authoring import export
    from harness.cli.common import print_problem
    from harness.errors import HarnessError, PluginError

    problem = usage_problem(args)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    command = "harness " + " ".join(shlex.quote(str(a)) for a in args.argv)
    try:
        if args.registry is not None:
            from harness.config.registry import load_registry

            path, run = export.export_target(load_registry(args.registry), args.target, args.output, args.limit, command)
        else:
            cls = export.task_class(args.name)
            task = export.make_task(cls, export.parse_options(args.option), args.data)
            output = args.output if args.output is not None else Path.cwd() / f"{args.name}.yaml"
            path = export.export_task(task, output, limit=args.limit, command=command)
            run = export.lm_eval_command(path)
    except (export.ExportError, PluginError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except HarnessError as exc:  # an invalid registry: every problem, with its line
        print_problem(exc)
        return 2
    print(path)
    err.print(f"Run it with:\n  {run}", markup=False, highlight=False, soft_wrap=True)
    return 0
