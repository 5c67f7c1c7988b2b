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
    text = json.dumps(to_json(result), indent=2) if args.json else to_markdown(result)
    print(text)
    summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if summary and not args.json:  # shows up on the GitHub Actions job page
        with open(summary, "a", encoding="utf-8") as fh:
            fh.write(text + "\n")
    return 0 if result.passed else 1
