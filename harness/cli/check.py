"""``harness check RUN --baseline RESULTS``: the CI gate, comparing every cell with a baseline."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path


def add_parser(sub) -> None:
    chk = sub.add_parser("check", help="Gate on regressions against a baseline results.json (exit 1 on regression).",
                         description="Compare every cell (base and adapters) with a baseline. A cell fails when it is "
                                     "lower by more than the tolerance AND the drop is significant given both stderrs "
                                     "(more than z * sqrt(se1^2 + se2^2)); a cell that stopped scoring fails too. "
                                     "Prints a Markdown diff table; exit 0 pass, 1 regression, 2 usage error.")
    chk.add_argument("run_dir", type=Path, help="A run folder, or its results.json.")
    chk.add_argument("--baseline", type=Path, required=True, help="The baseline results.json (or run folder).")
    chk.add_argument("--tolerance", type=float, default=0.0, help="Drop allowed in the metric's units (default 0).")
    chk.add_argument("--z", type=float, default=1.96, help="Significance multiple of the combined stderr (default 1.96).")
    chk.add_argument("--junit", type=Path, help="Also write JUnit XML here, one test case per cell.")
    chk.add_argument("--json", action="store_true", help="Print the comparison as JSON instead of Markdown.")
    chk.set_defaults(handler=main)


def main(args, err) -> int:
    from harness.reporting.check import CheckError, compare, load_results, to_json, to_junit, to_markdown
    from harness.reporting.text import md_escape

    try:
        current = load_results(args.run_dir, role="current run")
        baseline = load_results(args.baseline, role="baseline")
        result = compare(current, baseline, tolerance=args.tolerance, z=args.z)
    except CheckError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.junit:
        try:
            args.junit.parent.mkdir(parents=True, exist_ok=True)
            args.junit.write_text(to_junit(result), encoding="utf-8")
        except OSError as exc:
            print(f"error: cannot write {args.junit}: {exc.strerror}", file=sys.stderr)
            return 2
    markdown = to_markdown(result)
    print(json.dumps(to_json(result), indent=2) if args.json else markdown)
    write_step_summary(f"### harness check: {md_escape(args.run_dir)} against {md_escape(args.baseline)}\n\n"
                       f"{markdown}\n", err)
    return 0 if result.passed else 1


def write_step_summary(markdown: str, err) -> bool:
    """Append ``markdown`` to the file ``$GITHUB_STEP_SUMMARY`` names, when it is set: GitHub Actions
    shows it on the job's page (other steps append theirs too, so never truncate). A summary that
    cannot be written is a warning, not a failed gate: the verdict is the exit code."""
    summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if not summary:
        return False
    try:
        with open(summary, "a", encoding="utf-8") as fh:
            fh.write(markdown)
    except OSError as exc:
        from rich.markup import escape

        err.print(f"[yellow]warning:[/] cannot append the diff to $GITHUB_STEP_SUMMARY ({escape(summary)}): "
                  f"{escape(exc.strerror or str(exc))}", highlight=False)
        return False
    return True
