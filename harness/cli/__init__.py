"""The ``harness`` command: run, validate, plugins, traits, analyze, recommend, report, check,
cache, export-task, new-task, new-trait.

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
    run.add_argument("--json", action="store_true", help="On stdout, a JSON summary of the run (folder, files, "
                                                         "failures, work reused and computed); progress stays on stderr.")
    run.add_argument("--executor", choices=["local", "ray"], help="Where fine-tune and evaluation jobs run (default: "
                     "the registry's executor, else local): ray runs each as a Ray task (pip install "
                     "\"transfer-harness[ray]\").")
    run.add_argument("--address", metavar="ADDR", help="Ray cluster to run on: 'auto' (the cluster `ray start` "
                     "started on this node) or HEAD:PORT; implies --executor ray. Default: a Ray instance on this machine.")
    run.add_argument("--watch", action="store_true", help="After the run, wait; run again each time the registry "
                     "file (or a data file it names) changes, with the base model kept loaded, until Ctrl-C. With "
                     "--json, one summary line per run.")
    val = sub.add_parser("validate", help="Check a registry file; exit 2 listing every problem.")
    val.add_argument("registry", type=Path)
    plug = sub.add_parser("plugins", help="List the installed task, trait and decomposer plugins.")
    plug.add_argument("--kind", choices=["task", "trait", "decomposer"])
    plug.add_argument("--json", action="store_true")
    exp = sub.add_parser("export-task", help="Write a task as an lm-eval task YAML (run it with `lm_eval --tasks FILE`).",
                         description="Write a task as an lm-eval task YAML, with its test rows as JSON lines next to "
                                     "it, so that `lm_eval --tasks FILE` scores exactly what the harness scores.")
    exp.add_argument("name", help="Task name (see `harness plugins --kind task`).")
    exp.add_argument("--data", type=Path, help="Local test file of a task read from files (CSV, TSV, JSONL, Parquet).")
    exp.add_argument("-o", "--output", type=Path, help="YAML file to write (default: ./<NAME>.yaml).")
    exp.add_argument("--limit", type=int, help="Test rows to export (default: 100; a file task: at most its usable rows).")
    exp.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                     help="A task option, value read as YAML (repeatable), e.g. --option digits=3.")
    new = sub.add_parser("new-task", help="Scaffold an installable task plugin package harness-task-NAME.")
    new.add_argument("name", help="Task name: a Python identifier.")
    new.add_argument("--dir", type=Path, help="Package directory to create (default: ./harness-task-NAME).")
    new_trait = sub.add_parser("new-trait", help="Scaffold an installable trait plugin package harness-trait-NAME.")
    new_trait.add_argument("name", help="Trait name: a Python identifier.")
    new_trait.add_argument("--dir", type=Path, help="Package directory to create (default: ./harness-trait-NAME).")
    traits = sub.add_parser("traits", help="Compute source and pair traits of a registry without fine-tuning.")
    traits.add_argument("registry", type=Path)
    traits.add_argument("--out", type=Path, help="Output directory (default: the registry's output_dir).")
    traits.add_argument("--quiet", action="store_true")
    traits.add_argument("--json", action="store_true", help="Print the traits as JSON on stdout.")
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
    rec = sub.add_parser("recommend", help="Rank sources for a target, including datasets not fine-tuned yet.",
                         description="Rank the run's sources for one target by measured transfer, and candidate "
                                     "datasets (the registry's `candidates`, or --candidates) by the transfer their "
                                     "traits predict, with a 90% interval. Needs a finished `harness run`.")
    rec.add_argument("registry", type=Path)
    rec.add_argument("--target", required=True, help="A target of the registry.")
    rec.add_argument("--candidates", nargs="*", default=[], help="Task names to consider besides the registry's candidates.")
    rec.add_argument("--out", type=Path, help="Output directory the run was written to (default: the registry's).")
    rec.add_argument("--json", action="store_true")
    from harness.execution import cache_admin

    cache_admin.add_parser(sub)
    rep = sub.add_parser("report", help="Rebuild report.md, report.html and plots/ of a run from its results.json.")
    rep.add_argument("run_dir", type=Path, help="A run folder (holding results.json).")
    rep.add_argument("--json", action="store_true", help="Print the files written as JSON.")
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
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    from rich.console import Console

    err = Console(stderr=True)
    if args.command == "plugins":
        return _plugins(args)
    if args.command == "export-task":
        return _export_task(args, err, sys.argv[1:] if argv is None else list(argv))
    if args.command in ("new-task", "new-trait"):
        return _new_plugin(args, err, args.command.removeprefix("new-"))
    if args.command == "analyze":
        return _analyze(args, err)
    if args.command == "cache":
        from harness.execution import cache_admin

        return cache_admin.main(args)
    if args.command == "report":
        return _report(args)
    if args.command == "check":
        return _check(args)
    from harness.errors import RegistryError
    from harness.config.registry import load_registry

    try:
        registry = load_registry(args.registry)
    except RegistryError as exc:
        _print_problem(exc)
        return 2
    if args.command == "validate":
        err.print(f"{args.registry}: ok ({len(registry.sources)} sources, {len(registry.targets)} targets)",
                  markup=False, highlight=False)
        return 0
    from harness.errors import ExecutorError
    from harness.errors import DataError
    from harness.errors import ModelNotFound
    from harness.execution.pipeline import run_traits

    if args.command == "run" and (args.executor or args.address):
        problem = _override_executor(registry, args)
        if problem:
            print(f"error: {problem}", file=sys.stderr)
            return 2

    _stop_on_sigterm()
    try:
        if args.command == "recommend":
            return _recommend(args, registry)
        if args.command == "traits":
            outcome = run_traits(registry, args.registry.resolve(), out=args.out, quiet=args.quiet)
            if args.json:
                print((outcome.run_dir / "traits.json").read_text())
            return outcome.exit_code
        if args.watch:
            from harness.execution.watch import watch

            def load():
                registry = load_registry(args.registry)
                problem = _override_executor(registry, args) if args.executor or args.address else None
                if problem:
                    raise ExecutorError(problem)
                return registry

            status = Console(stderr=True, quiet=args.quiet)
            return watch(args.registry.resolve(), registry, status, lambda reg, keep: _run(args, reg, err, keep),
                         load, _print_problem, load_model=not args.dry_run)
        return _run(args, registry, err)
    except (ModelNotFound, DataError, ExecutorError) as exc:
        _print_problem(exc)
        return 2
    except KeyboardInterrupt:
        _print_interrupted(err, sys.argv[1:] if argv is None else list(argv))
        return 130


def _print_problem(exc: Exception) -> None:
    """An invalid registry (every problem, one per line), or why a run cannot start."""
    from harness.errors import RegistryError

    if isinstance(exc, RegistryError):
        # Plain lines, never wrapped: editors and CI annotators parse "file:line: message".
        print(f"{len(exc.problems)} problem(s) in {exc.filename}:", file=sys.stderr)
        for problem in exc.problems:
            print("  " + problem.format(exc.filename), file=sys.stderr)
    else:
        print(f"error: {exc}", file=sys.stderr)


def _print_interrupted(err, argv: list[str]) -> None:
    import shlex

    from rich.markup import escape

    command = "harness " + " ".join(shlex.quote(a) for a in argv)
    err.print("[yellow]Interrupted.[/] Every adapter and cell finished so far is in the cache; nothing "
              f"else was kept. To resume, run the same command again:\n  {escape(command)}", markup=True,
              highlight=False, soft_wrap=True)


def _run(args, registry, err, keep=None) -> int:
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


def _stop_on_sigterm() -> None:
    """SIGTERM (a batch scheduler's stop, `kill`) ends a run the way Ctrl-C does: cleanly, keeping
    every finished job, with the command that resumes it."""
    import signal

    def stop(signum, frame):
        raise KeyboardInterrupt

    try:
        signal.signal(signal.SIGTERM, stop)
    except ValueError:  # not the main thread (an embedding application): leave its handlers alone
        pass


def _override_executor(registry, args) -> str | None:
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


def _plugins(args) -> int:
    from rich.console import Console
    from rich.table import Table

    from harness.api.plugins import catalog

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


def _analyze(args, err) -> int:
    from pydantic import ValidationError

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
    from rich.markup import escape

    for failure in failures:
        err.print(f"[red]{escape(str(failure.get('plugin', failure['stage'])))} failed:[/] {escape(failure['error'])}",
                  highlight=False)
    return 1 if failures else 0


def _recommend(args, registry) -> int:
    from rich.console import Console

    from harness.execution.recommend import RecommendError, print_ranking, recommend_sources

    try:
        result = recommend_sources(registry, args.registry.resolve(), args.target, args.candidates, args.out)
    except (RecommendError, ValueError) as exc:  # ValueError: too few sources to fit a prediction
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print_ranking(result, Console())
    return 0


def _report(args) -> int:
    from rich.console import Console

    from harness.reporting.check import CheckError, load_results
    from harness.reporting.console import print_summary
    from harness.stages.report import write_reports

    import jsonschema

    from harness.reporting.results_schema import validate_results

    try:
        results = load_results(args.run_dir, role="run")
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


def _check(args) -> int:
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


def _export_task(args, err, argv: list[str]) -> int:
    import shlex

    from harness.authoring.export import ExportError, export_task, lm_eval_command, make_task, parse_options, task_class
    from harness.errors import PluginError

    try:
        cls = task_class(args.name)
        task = make_task(cls, parse_options(args.option), args.data)
        output = args.output if args.output is not None else Path.cwd() / f"{args.name}.yaml"
        command = "harness " + " ".join(shlex.quote(str(a)) for a in argv)
        path = export_task(task, output, limit=args.limit, command=command)
    except (ExportError, PluginError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(path)
    err.print(f"Run it with:\n  {lm_eval_command(path)}", markup=False, highlight=False, soft_wrap=True)
    return 0


def _new_plugin(args, err, kind: str) -> int:
    from harness.errors import PluginError
    from harness.api.plugins import catalog
    from harness.authoring.scaffold import ScaffoldError, distribution_name, module_name, scaffold

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


if __name__ == "__main__":
    sys.exit(main())
