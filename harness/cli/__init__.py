"""The ``harness`` command: run, validate, plugins, export-task, new-task, new-trait, traits, analyze,
recommend, cache, report, check. One module per command, each with ``add_parser`` and ``main``.

Exit codes: 0 success, 1 the run finished but some cells or plugins failed, 2 invalid input.
"""

from __future__ import annotations

import argparse
import os
import sys

# Quiet third-party progress bars before they are imported: the harness draws its own.
os.environ.setdefault("TQDM_DISABLE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from harness.cli import analyze, cache, check, export_task, plugins, recommend, report, run, scaffold, traits, validate  # noqa: E402

# In the order `harness --help` lists them.
COMMANDS = (run, validate, plugins, export_task, scaffold, traits, analyze, recommend, cache, report, check)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="harness", description="Fine-tune on A, see what happens to B, C, D - and why.")
    sub = parser.add_subparsers(dest="command", required=True)
    for command in COMMANDS:
        command.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from rich.console import Console

    args.argv = sys.argv[1:] if argv is None else list(argv)  # for the resume hint and export's provenance
    return args.handler(args, Console(stderr=True))


if __name__ == "__main__":
    sys.exit(main())
