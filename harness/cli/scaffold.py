"""``harness new-task NAME`` and ``harness new-trait NAME``: an installable plugin package to start from."""

from __future__ import annotations

import sys
from pathlib import Path


def add_parser(sub) -> None:
    new = sub.add_parser("new-task", help="Scaffold an installable task plugin package harness-task-NAME.")
    new.add_argument("name", help="Task name: a Python identifier.")
    new.add_argument("--dir", type=Path, help="Package directory to create (default: ./harness-task-NAME).")
    new.set_defaults(handler=main, kind="task")
    new_trait = sub.add_parser("new-trait", help="Scaffold an installable trait plugin package harness-trait-NAME.")
    new_trait.add_argument("name", help="Trait name: a Python identifier.")
    new_trait.add_argument("--dir", type=Path, help="Package directory to create (default: ./harness-trait-NAME).")
    new_trait.set_defaults(handler=main, kind="trait")


def main(args, err) -> int:
    from harness.api.plugins import catalog
    from harness.authoring.scaffold import ScaffoldError, distribution_name, module_name, scaffold
    from harness.errors import PluginError

    kind = args.kind
    try:
        existing = catalog().names(kind)
    except PluginError:
        existing = []
    try:
        root = scaffold(args.name, args.dir, existing, kind=kind)
    except ScaffoldError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(root)
    err.print(f"Created {distribution_name(args.name, kind)} ({kind} {args.name!r} in "
              f"{module_name(args.name, kind)}/{kind}.py). "
              f"Next:\n  cd {root} && pip install -e \".[test]\" && python -m pytest -q\n"
              f"  harness plugins --kind {kind}", markup=False, highlight=False, soft_wrap=True)
    return 0
