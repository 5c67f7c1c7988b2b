"""``harness analyze MATRIX``: decompose a transfer matrix made anywhere and test traits against it."""

from __future__ import annotations

import json
import sys
from pathlib import Path


def add_parser(sub) -> None:
    ana = sub.add_parser("analyze", help="Decompose a transfer matrix and test traits against it (no model needed).",
                         description="Analyse a transfer matrix made anywhere: a matrix.csv (source,<target>,...), "
                                     "or a run folder / its results.json, whose traits and per-sample logs are used too.")
    ana.add_argument("matrix", type=Path, help="matrix.csv, a run folder, or a results.json.")
    ana.add_argument("--traits", type=Path, help="traits.csv: source,<trait>,... (a matrix.csv has none otherwise).")
    ana.add_argument("--pair-traits", type=Path, help="pair_traits.csv: source,target,trait,value (e.g. similarity).")
    ana.add_argument("--decomposer", action="append", help="Decomposer name, repeatable (default: pca).")
    ana.add_argument("--n-components", default="parallel",
                     help="An integer, a variance share in (0, 1), or 'parallel' (the default: Horn's parallel analysis).")
    ana.add_argument("--normalisation", default="raw", choices=["raw", "relative", "zscore", "ordinal"])
    ana.add_argument("--bootstrap", type=int, help="Bootstrap resamples (run folders only: needs per-sample logs).")
    ana.add_argument("--permutations", type=int, help="Permutation budget of the trait tests.")
    ana.add_argument("--seed", type=int, default=0)
    ana.add_argument("--json", action="store_true", help="Print the analysis as JSON on stdout.")
    ana.set_defaults(handler=main)


def main(args, err) -> int:
    from pydantic import ValidationError
    from rich.markup import escape

    from harness.execution.analyze import AnalyzeError, analyze

    try:
        analysed, failures = analyze(args)
    except (AnalyzeError, ValidationError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(analysed, indent=2))
    else:
        from rich.console import Console

        from harness.reporting.console import print_analysis

        print_analysis(analysed, Console())
    for failure in failures:
        err.print(f"[red]{escape(str(failure.get('plugin', failure['stage'])))} failed:[/] {escape(failure['error'])}",
                  highlight=False)
    return 1 if failures else 0
