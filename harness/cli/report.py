"""``harness report RUN``: rebuild report.md, report.html and plots/ of a run from its results.json."""

from __future__ import annotations

import json
import sys
from pathlib import Path


def add_parser(sub) -> None:
    rep = sub.add_parser("report", help="Rebuild report.md, report.html and plots/ of a run from its results.json.")
    rep.add_argument("run_dir", type=Path, help="A run folder (holding results.json).")
    rep.add_argument("--json", action="store_true", help="Print the files written as JSON.")
    rep.set_defaults(handler=main)


def main(args, err) -> int:
    import jsonschema
    from rich.console import Console

    from harness.reporting.check import CheckError, load_results
    from harness.reporting.console import print_summary
    from harness.reporting.results_schema import validate_results
    from harness.stages.report import write_reports

    try:
        results = load_results(args.run_dir, role="run")
        if "hypotheses" not in results:  # a run from before them: test them on what it recorded
            from harness.analysis.hypotheses import HypothesisSettings, assess

            fdr = (results.get("analysis_settings") or {}).get("fdr", 0.05)
            results["hypotheses"] = assess(results, HypothesisSettings(level=fdr))
        validate_results(results)
    except CheckError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except jsonschema.ValidationError as exc:
        where = "/".join(map(str, exc.absolute_path)) or "(top level)"
        print(f"error: {args.run_dir}: results.json does not follow the schema at {where}: {exc.message}", file=sys.stderr)
        return 2
    run_dir = args.run_dir if args.run_dir.is_dir() else args.run_dir.parent
    written = write_reports(run_dir, results)
    if args.json:
        print(json.dumps({name: str(path) for name, path in written.items()}, indent=2))
    else:
        print_summary(results, Console())
        Console(stderr=True).print(f"Wrote {run_dir / 'report.html'}, report.md and {len(written) - 2} plot(s).")
    return 0
