"""What a run prints on the terminal: the plan of a dry run, the summary, the analysis."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from harness.analysis.applicability import describe, skipped_analyses
from harness.config.registry import BASE
from harness.reporting import twins
from harness.reporting.hypotheses import console_lines as hypothesis_lines
from harness.reporting.numbers import fixed, signed
from harness.reporting.seeds import plus_minus, seed_line

if TYPE_CHECKING:
    from harness.cache.store import Cache
    from harness.stages.plan import Plan


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
            row.append(f"[{color}]{signed(d)}{mark}[/][dim]{plus_minus(results, s, t, '.2f')}")
        table.add_row(*row)
    console.print(table)
    if seed_line(results):
        console.print(f"[dim]{escape(seed_line(results))}", highlight=False)
    if tests:
        console.print("[dim]* adapter differs from base on the same documents (paired test, BH q < "
                      f"{results.get('analysis_settings', {}).get('fdr', 0.05)})", highlight=False)
    print_analysis(results, console)
    twin_line = twins.console_line(results)
    if twin_line:
        console.print(twin_line, highlight=False)
    if results["failures"]:
        console.print(f"[red]{len(results['failures'])} failure(s); see results.json 'failures'.")




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
                          fixed(phi), fixed(loso.get("min", {}).get(c)), tops)
        console.print(table)
        if n.get("retained_by_test") == 0:
            console.print("[yellow]Parallel analysis: no component beats chance; one is shown anyway.")
    tests = analysed.get("correlations", [])
    if tests:
        table = Table(title="Traits vs components (Spearman, permutation p, BH q)", title_justify="left")
        for col in ("trait", "component", "rho", "p", "q"):
            table.add_column(col, overflow="fold")
        for row in sorted(tests, key=lambda r: (r["p"] is None, r["p"] if r["p"] is not None else 1))[:top]:
            table.add_row(row["trait"], f"{row['decomposer']}:{row['component']}", fixed(row["spearman"]),
                          fixed(row["p"], ".3f"), fixed(row["q"], ".3f"))
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
                          f"{res['spearman']:+.2f} [{fixed(ci[0])}, {fixed(ci[1])}], p {fixed(res.get('p'), '.3f')}, "
                          f"{res['n_pairs']} pairs", highlight=False)
    pred = analysed.get("prediction") or {}
    if "score" in pred:
        console.print(f"Leave-one-source-out prediction from traits: Spearman {fixed(pred['score'])} "
                      f"(mean-row baseline {fixed(pred.get('baseline_score'))})", highlight=False)
    for line in hypothesis_lines(analysed):
        console.print(line, markup=False, highlight=False)
    for item in skipped_analyses(analysed):
        console.print(f"[dim]Skipped {escape(describe(item))}", highlight=False)


def print_plan(plan: Plan, console: Console, run_dir: Path, cache: Cache) -> None:
    from rich.markup import escape  # paths and messages come from the registry: "[/]" is not markup

    console.print(f"Plan for {escape(str(run_dir))} (cache {escape(str(cache.root))}); base model from "
                  f"{escape(plan.model.how)}")
    table = Table("job", "what", "status")
    for a in plan.adapters:
        if a.brought:
            table.add_row("bring", escape(f"{a.kind} {a.source} from {a.path}"), "ready")
        else:
            table.add_row("train", escape(a.model), "cached" if a.cached else "[yellow]would run")
    for c in plan.cells:
        what = f"{'base' if c.model == BASE else c.model} on {c.target}"
        table.add_row("score", what, "cached" if c.cached else "[yellow]would run")
    console.print(table)
    trained = [a for a in plan.adapters if not a.brought]
    console.print(f"{len(plan.todo_adapters)} of {len(trained)} adapters and "
                  f"{len(plan.todo_cells)} of {len(plan.cells)} cells would run.")
    for line in seed_notes(plan):
        console.print(line, highlight=False)
    for line in checkpoint_costs(plan):
        console.print(line, highlight=False)
    for note in plan.missing:
        console.print(f"[yellow]not available here:[/] {escape(note)}", highlight=False)


def seed_notes(plan: Plan) -> list[str]:
    """With several training seeds: how many replicates each trained source has, and (once) that
    brought weights have one, since seeds do not apply to weights trained elsewhere."""
    seeds = plan.seeds
    trained = [s for s in plan.sources if not plan.replicates(s)[0].brought]
    if not any(len(seeds[s]) > 1 for s in trained):
        return []
    first = seeds[trained[0]]
    out = [f"{len(first)} training seeds ({', '.join(map(str, first))}): one adapter per seed for each of the "
           f"{len(trained)} trained source(s), every cell scored per replicate"]
    brought = [s for s in plan.sources if s not in trained]
    if brought:
        out.append(f"seeds do not apply to weights brought in: {', '.join(map(escape, brought))} "
                   "(one replicate each)")
    return out


def checkpoint_costs(plan: Plan) -> list[str]:
    """What scoring the plan's checkpoints costs: each is a model of its own, loaded beside the base."""
    todo = {c.model for c in plan.todo_cells}
    out = []
    for a in plan.adapters:
        if a.kind == "checkpoint" and a.model in todo:
            cells = sum(c.model == a.model and not c.cached for c in plan.cells)
            out.append(f"checkpoint {escape(a.source)}: a second model load (its own weights and tokenizer, no "
                       f"adapter swap) for its {cells} cell(s); freed once they are scored")
    return out
