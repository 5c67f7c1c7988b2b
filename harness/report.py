"""Outputs of a run: ``results.json`` (the contract), ``matrix.csv``, ``traits.csv``, ``report.md``,
per-sample logs and training logs, and the terminal summary."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from harness.applicability import describe, skipped_analyses
from harness.cache import Cache, copy_atomic, write_json_atomic, write_text_atomic
from harness.check import difference_stderr
from harness.matrix import Matrix
from harness.plan import BASE, Plan
from harness.registry import Registry
from harness.text import md_escape

SCHEMA_PATH = Path(__file__).parent / "schema" / "results.schema.json"


def build_results(registry: Registry, plan: Plan, mat: Matrix, traits, analysed: dict,
                  provenance: dict, failures: list[dict]) -> dict:
    return {
        "experiment": registry.experiment,
        "base_model": {"name": registry.base_model.display_name, "resolved_from": plan.model.how,
                       "key": plan.model.key},
        "sources": mat.sources,
        "targets": mat.targets,
        "metrics": mat.metrics,
        "abilities": {t: list(plan.tasks[t].abilities) for t in mat.targets},
        "base": mat.base,
        "scores": mat.scores,
        "transfer": mat.transfer,
        "traits": traits.values,
        "trait_scopes": traits.scopes,
        "analysis_settings": registry.analysis.model_dump(),
        "pair_traits": traits.pairs,
        "behaviour": traits.behaviour,
        **analysed,
        "failures": [{k: v for k, v in f.items() if k != "traceback"} for f in failures],
        "provenance": provenance,
    }


def validate_results(results: dict) -> None:
    """Raise ``jsonschema.ValidationError`` unless ``results`` follows the published schema."""
    import jsonschema

    jsonschema.validate(results, json.loads(SCHEMA_PATH.read_text()))


def _csv(header: list[str], rows: list[list]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buf.getvalue()


def _num(value) -> str:
    return "" if value is None else repr(float(value))


def write_outputs(run_dir: Path, results: dict, mat: Matrix, plan: Plan, cache: Cache) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)  # results.json itself is written last, by the pipeline
    write_text_atomic(run_dir / "matrix.csv", _csv(
        ["source", *mat.targets], [[s, *(_num(mat.transfer[s][t]) for t in mat.targets)] for s in mat.sources]))
    _write_trait_tables(run_dir, mat.sources, results["traits"], results["pair_traits"])
    tests = results.get("cell_tests") or {}
    if tests:  # the significance of every matrix.csv cell, in the same long form as pair_traits.csv
        rows = [[s, t, _num(test["delta"]), _num(test["p"]), _num(test["q"]), test["method"], int(test["significant"])]
                for s, row in tests.items() for t, test in row.items()]
        write_text_atomic(run_dir / "cell_tests.csv", _csv(
            ["source", "target", "delta", "p", "q", "method", "significant"], rows))
    # Per-sample logs and training logs travel with the run, so it can be analysed without the cache.
    for cell in plan.cells:
        src = cache.path("cells", cell.key) / "samples.jsonl"
        if src.is_file():
            copy_atomic(src, run_dir / "samples" / cell.model / f"{cell.target}.jsonl")
    for job in plan.adapters:
        src = cache.path("adapters", job.key) / "train_log.json"
        if src.is_file():
            copy_atomic(src, run_dir / "training" / f"{job.source}.json")


def write_reports(run_dir: Path, results: dict) -> dict[str, Path]:
    """report.md, plots/*.png and the self-contained report.html, from ``results`` alone (no model:
    `harness report` calls this on a finished run). Returns what was written, by name."""
    from harness import htmlreport

    run_dir.mkdir(parents=True, exist_ok=True)
    write_text_atomic(run_dir / "report.md", markdown(results))
    drawn = _plots(results, run_dir / "plots")
    write_text_atomic(run_dir / "report.html", htmlreport.render(results, drawn))
    return {"report.md": run_dir / "report.md", "report.html": run_dir / "report.html",
            **{f"plots/{Path(p.path).name}": Path(p.path) for p in drawn}}


def _plots(results: dict, folder: Path) -> list:
    """The figures of ``results``, each drawn again only when what it shows changed (drawing is
    most of a re-run's report time). ``index.json`` remembers what each PNG was drawn from."""
    from dataclasses import asdict

    from harness import plots

    index = folder / "index.json"
    try:
        before = [plots.Plot(**{**d, "path": folder / d["path"]}) for d in json.loads(index.read_text())["plots"]]
    except (OSError, ValueError, KeyError, TypeError):
        before = []  # no index yet, or an unreadable one: draw everything
    drawn = plots.render_all(results, folder, drawn_before=before)
    write_json_atomic(index, {"plots": [{**asdict(p), "path": Path(p.path).name} for p in drawn]})
    return drawn


def _write_trait_tables(run_dir: Path, sources: list[str], values: dict, pairs: dict) -> None:
    """traits.csv (one row per source) and, when there are pair traits, pair_traits.csv (long form)."""
    names = sorted({k for row in values.values() for k in row})
    write_text_atomic(run_dir / "traits.csv", _csv(
        ["source", *names], [[s, *(_num(values.get(s, {}).get(k)) for k in names)] for s in sources]))
    if pairs:
        rows = [[s, t, name, _num(v)] for name, by_source in sorted(pairs.items())
                for s, row in by_source.items() for t, v in row.items()]
        write_text_atomic(run_dir / "pair_traits.csv", _csv(["source", "target", "trait", "value"], rows))


def write_traits(run_dir: Path, sources: list[str], traits) -> None:
    """What `harness traits` writes: the trait tables and a small JSON of the same numbers."""
    run_dir.mkdir(parents=True, exist_ok=True)
    _write_trait_tables(run_dir, sources, traits.values, traits.pairs)
    write_json_atomic(run_dir / "traits.json", {"traits": traits.values, "pair_traits": traits.pairs,
                                                "failures": [{k: v for k, v in f.items() if k != "traceback"}
                                                             for f in traits.failures]})


def _signed(value) -> str:
    return "n/a" if value is None else f"{value:+.3f}"


def markdown(results: dict) -> str:
    targets, sources = results["targets"], results["sources"]
    out = [f"# Transfer report: {md_escape(results['experiment'])}", "",
           f"Base model: `{md_escape(results['base_model']['name'])}`. "
           f"{len(sources)} sources x {len(targets)} targets.", ""]
    out += ["## Base scores", "", "| target | metric | score |", "|---|---|---|"]
    for t in targets:
        cell = results["base"][t]
        score = "failed" if cell is None else f"{cell['value']:.3f} ± {cell['stderr'] or 0:.3f}"
        out.append(f"| {md_escape(t)} | {md_escape(results['metrics'][t])} | {score} |")
    tests = results.get("cell_tests") or {}
    out += ["", "## Transfer (adapter − base)", "",
            ("Marked `*` where the paired test of adapter against base on the same documents (McNemar, or a "
             "paired bootstrap) is significant after Benjamini-Hochberg correction over the matrix."
             if tests else "Marked `*` where |change| exceeds twice its standard error, √(adapter stderr² + base "
                           "stderr²) (no paired test was run; ignoring the pairing makes this conservative)."), "",
            "| source | " + " | ".join(md_escape(t) for t in targets) + " |",
            "|---|" + "---|" * len(targets)]
    for s in sources:
        cells = []
        for t in targets:
            delta = results["transfer"][s][t]
            test = tests.get(s, {}).get(t)
            if tests:
                mark = "*" if test and test["significant"] else ""
            else:
                se = difference_stderr(*((c or {}).get("stderr") for c in (results["scores"][s][t], results["base"][t])))
                mark = "*" if delta is not None and se and abs(delta) > 2 * se else ""
            cells.append(_signed(delta) + mark)
        out.append(f"| {md_escape(s)} | " + " | ".join(cells) + " |")
    out += _markdown_analysis(results)
    trait_names = sorted({k for row in results["traits"].values() for k in row})
    if trait_names:
        out += ["", "## Source traits", "", "| source | " + " | ".join(md_escape(k) for k in trait_names) + " |",
                "|---|" + "---|" * len(trait_names)]
        for s in sources:
            row = results["traits"].get(s, {})
            out.append(f"| {md_escape(s)} | " + " | ".join(
                "n/a" if row.get(k) is None else f"{row[k]:.3g}" for k in trait_names) + " |")
    skipped = skipped_analyses(results)
    if skipped:
        out += ["", "## Skipped analyses", "", "Not failures: the study is too small for them, lacks what they read, or the registry turned them off.", ""]
        out += [f"- {md_escape(describe(item))}" for item in skipped]
    if results["failures"]:
        out += ["", "## Failures", ""]
        out += [f"- {md_escape(f['stage'])}: " + ", ".join(f"{md_escape(k)}={md_escape(v)}" for k, v in f.items() if k != "stage")
                for f in results["failures"]]
    return "\n".join(out) + "\n"


def _markdown_analysis(results: dict) -> list[str]:
    out = []
    for name, dec in results["decompositions"].items():
        comps = list(dec["labels"])
        n = dec.get("n_components", {})
        stab = dec.get("stability") or {}
        boot, loso = stab.get("bootstrap") or {}, stab.get("leave_one_source_out") or {}
        out += ["", f"## Latent abilities ({md_escape(name)})", "",
                f"{len(comps)} component(s) of the {md_escape(dec.get('normalisation', 'raw'))} matrix; "
                f"chosen by {md_escape(n.get('method', 'the decomposer'))}"
                + (f" ({md_escape(n['note'])})" if n.get("note") else "") + ".", "",
                "| component | name | explained variance | stability | bootstrap congruence (median) | "
                "leave-one-source-out congruence (min) |", "|---|---|---|---|---|---|"]
        for c, ratio in zip(comps, dec["explained_variance_ratio"]):
            out.append(f"| {md_escape(c)} | {md_escape(dec['labels'][c])} | {ratio:.3f} | {stab.get('verdict', {}).get(c, 'untested')} | "
                       f"{_fmt(boot.get('congruence', {}).get(c, {}).get('median'))} | {_fmt(loso.get('min', {}).get(c))} |")
        loaded = list(next(iter(dec["loadings"].values()), {}))
        out += ["", "Loadings:", "", "| component | " + " | ".join(md_escape(t) for t in loaded) + " |",
                "|---|" + "---|" * len(loaded)]
        for c in comps:
            out.append(f"| {md_escape(c)} | " + " | ".join(f"{dec['loadings'][c][t]:+.2f}" for t in loaded) + " |")
    tests = results.get("correlations") or []
    if tests:
        out += ["", "## Traits and latent abilities", "",
                "Spearman correlation of each trait with each component's source scores; permutation p-values "
                "(exact when every ordering fits the budget), Benjamini-Hochberg q-values per decomposition.", ""]
        min_ps = [v["min_p"] for v in (results.get("trait_tests") or {}).values() if v.get("min_p") is not None]
        if min_ps and min(min_ps) > 0.05:
            out += [f"With {len(results['sources'])} sources the smallest attainable p-value is "
                    f"{min(min_ps):.3f}: no association can be significant; add sources.", ""]
        out += ["| trait | component | Spearman | Pearson | p | q |", "|---|---|---|---|---|---|"]
        for row in sorted(tests, key=lambda r: (r["p"] is None, r["p"] or 0))[:15]:
            out.append(f"| {md_escape(row['trait'])} | {md_escape(row['decomposer'])}:{row['component']} | "
                       f"{_fmt(row['spearman'])} | {_fmt(row['pearson'])} | {_fmt(row['p'], '.3f')} | {_fmt(row['q'], '.3f')} |")
    for name, variants in (results.get("similarity_test") or {}).items():
        out += ["", f"## Does surface similarity ({md_escape(name)}) predict transfer?", "",
                "| pairs | n | Spearman | CI | p |", "|---|---|---|---|---|"]
        for label, res in variants.items():
            ci = res.get("ci") or [None, None]
            out.append(f"| {md_escape(label.replace('_', ' '))} | {res.get('n_pairs')} | {_fmt(res.get('spearman'))} | "
                       f"[{_fmt(ci[0])}, {_fmt(ci[1])}] | {_fmt(res.get('p'), '.3f')} |")
    pred = results.get("prediction") or {}
    if "score" in pred:
        out += ["", "## Predicting transfer from traits", "",
                f"Leave-one-source-out ridge regression: mean Spearman between predicted and actual transfer rows "
                f"{_fmt(pred['score'])}, against {_fmt(pred.get('baseline_score'))} for predicting the mean row."]
    return out


def print_summary(results: dict, console: Console) -> None:
    table = Table(title=f"Transfer vs base: {results['experiment']}", title_justify="left")
    table.add_column("source")
    for t in results["targets"]:
        table.add_column(t, justify="right")
    base_row = ["[dim]base score"] + [("failed" if results["base"][t] is None else f"[dim]{results['base'][t]['value']:.2f}")
                                      for t in results["targets"]]
    table.add_row(*base_row)
    tests = results.get("cell_tests") or {}
    for s in results["sources"]:
        row = [s]
        for t in results["targets"]:
            d = results["transfer"][s][t]
            color = "green" if d is not None and d > 0 else "red" if d is not None and d < 0 else "white"
            mark = "*" if tests.get(s, {}).get(t, {}).get("significant") else " "
            row.append(f"[{color}]{_signed(d)}{mark}")
        table.add_row(*row)
    console.print(table)
    if tests:
        console.print("[dim]* adapter differs from base on the same documents (paired test, BH q < "
                      f"{results.get('analysis_settings', {}).get('fdr', 0.05)})", highlight=False)
    print_analysis(results, console)
    if results["failures"]:
        console.print(f"[red]{len(results['failures'])} failure(s); see results.json 'failures'.")


def _fmt(value, spec: str = ".2f") -> str:
    return "n/a" if value is None else format(value, spec)


def print_analysis(analysed: dict, console: Console, top: int = 5) -> None:
    """Decompositions, the strongest trait associations, the similarity test and prediction, in a
    form that fits an 80-column terminal."""
    for key, dec in analysed.get("decompositions", {}).items():
        n = dec["n_components"]
        table = Table(title=f"{key} on {dec['normalisation']} transfer: {n['k']} component(s) ({n['method']})",
                      title_justify="left")
        for col in ("", "name", "var", "stability", "boot φ", "LOSO φ", "top loadings"):
            table.add_column(col, overflow="fold")
        stab = dec.get("stability") or {}
        boot, loso = stab.get("bootstrap") or {}, stab.get("leave_one_source_out") or {}
        for c, ratio in zip(dec["labels"], dec["explained_variance_ratio"]):
            tops = ", ".join(f"{e['target']} {e['loading']:+.2f}" for e in dec["label_evidence"][c][:3])
            phi = boot.get("congruence", {}).get(c, {}).get("median")
            table.add_row(c, dec["labels"][c], f"{ratio:.0%}", stab.get("verdict", {}).get(c, "untested"),
                          _fmt(phi), _fmt(loso.get("min", {}).get(c)), tops)
        console.print(table)
        if n.get("retained_by_test") == 0:
            console.print("[yellow]Parallel analysis: no component beats chance; one is shown anyway.")
    tests = analysed.get("correlations", [])
    if tests:
        table = Table(title="Traits vs components (Spearman, permutation p, BH q)", title_justify="left")
        for col in ("trait", "component", "rho", "p", "q"):
            table.add_column(col, overflow="fold")
        for row in sorted(tests, key=lambda r: (r["p"] is None, r["p"] if r["p"] is not None else 1))[:top]:
            table.add_row(row["trait"], f"{row['decomposer']}:{row['component']}", _fmt(row["spearman"]),
                          _fmt(row["p"], ".3f"), _fmt(row["q"], ".3f"))
        console.print(table)
    for key, info in analysed.get("trait_tests", {}).items():
        if info.get("min_p") is not None and info["min_p"] > 0.05:
            console.print(f"[yellow]{key}: with this many sources the smallest attainable p-value is "
                          f"{info['min_p']:.3f}; no trait test can be significant at 0.05.", highlight=False)
            break
    for name, variants in analysed.get("similarity_test", {}).items():
        for label, res in variants.items():
            if res.get("spearman") is None:
                continue
            ci = res.get("ci") or [None, None]
            console.print(f"Does {name} predict transfer ({label.replace('_', ' ')})? Spearman "
                          f"{res['spearman']:+.2f} [{_fmt(ci[0])}, {_fmt(ci[1])}], p {_fmt(res.get('p'), '.3f')}, "
                          f"{res['n_pairs']} pairs", highlight=False)
    pred = analysed.get("prediction") or {}
    if "score" in pred:
        console.print(f"Leave-one-source-out prediction from traits: Spearman {_fmt(pred['score'])} "
                      f"(mean-row baseline {_fmt(pred.get('baseline_score'))})", highlight=False)
    for item in skipped_analyses(analysed):
        console.print(f"[dim]Skipped {escape(describe(item))}", highlight=False)


def print_plan(plan: Plan, console: Console, run_dir: Path, cache: Cache) -> None:
    from rich.markup import escape  # paths and messages come from the registry: "[/]" is not markup

    console.print(f"Plan for {escape(str(run_dir))} (cache {escape(str(cache.root))}); base model from "
                  f"{escape(plan.model.how)}")
    table = Table("job", "what", "status")
    for a in plan.adapters:
        table.add_row("train", a.source, "cached" if a.cached else "[yellow]would run")
    for c in plan.cells:
        what = f"{'base' if c.model == BASE else c.model} on {c.target}"
        table.add_row("score", what, "cached" if c.cached else "[yellow]would run")
    console.print(table)
    console.print(f"{len(plan.todo_adapters)} of {len(plan.adapters)} adapters and "
                  f"{len(plan.todo_cells)} of {len(plan.cells)} cells would run.")
    for note in plan.missing:
        console.print(f"[yellow]not available here:[/] {escape(note)}", highlight=False)
