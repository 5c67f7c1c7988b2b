"""``report.md``: the run's results as Markdown, from ``results.json`` alone."""

from __future__ import annotations

from harness.analysis.applicability import NO_SOURCES, describe, skipped_analyses
from harness.reporting import twins
from harness.reporting.check import difference_stderr
from harness.reporting.hypotheses import markdown_section as hypotheses_section
from harness.reporting.numbers import fixed, signed
from harness.reporting.prediction import markdown_section as prediction_section
from harness.reporting.seeds import plus_minus, seed_line
from harness.reporting.text import md_escape


def brought_sources(results: dict) -> list[str]:
    """``name (kind)`` of every source whose weights were brought in rather than trained here."""
    return [f"{s} ({w['kind']})" for s, w in (results.get("source_weights") or {}).items() if w["kind"] != "trained"]


def brought_line(results: dict) -> str:
    brought = brought_sources(results)
    return f" Brought in, not trained here: {md_escape(', '.join(brought))}." if brought else ""


def markdown(results: dict) -> str:
    targets, sources = results["targets"], results["sources"]
    out = [f"# Transfer report: {md_escape(results['experiment'])}", "",
           f"Base model: `{md_escape(results['base_model']['name'])}`. "
           f"{len(sources)} sources x {len(targets)} targets." + brought_line(results), ""]
    out += ["## Base scores", "", "| target | metric | score |", "|---|---|---|"]
    for t in targets:
        cell = results["base"][t]
        score = "failed" if cell is None else f"{cell['value']:.3f} ± {cell['stderr'] or 0:.3f}"
        out.append(f"| {md_escape(t)} | {md_escape(results['metrics'][t])} | {score} |")
    tests = results.get("cell_tests") or {}
    out += ["", "## Transfer (adapter − base)", ""]
    if not sources:
        out.append(f"No transfer to show: {md_escape(NO_SOURCES)}.")
    else:
        out += [("Marked `*` where the paired test of adapter against base on the same documents (McNemar, or a "
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
            cells.append(signed(delta) + mark + plus_minus(results, s, t))
        out.append(f"| {md_escape(s)} | " + " | ".join(cells) + " |")
    if sources and seed_line(results):
        out += ["", seed_line(results)]
    out += hypotheses_section(results)
    out += _markdown_analysis(results)
    out += twins.markdown_section(results)
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
                       f"{fixed(boot.get('congruence', {}).get(c, {}).get('median'))} | {fixed(loso.get('min', {}).get(c))} |")
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
                       f"{fixed(row['spearman'])} | {fixed(row['pearson'])} | {fixed(row['p'], '.3f')} | {fixed(row['q'], '.3f')} |")
    for name, variants in (results.get("similarity_test") or {}).items():
        out += ["", f"## Does surface similarity ({md_escape(name)}) predict transfer?", "",
                "| pairs | n | Spearman | CI | p |", "|---|---|---|---|---|"]
        for label, res in variants.items():
            ci = res.get("ci") or [None, None]
            out.append(f"| {md_escape(label.replace('_', ' '))} | {res.get('n_pairs')} | {fixed(res.get('spearman'))} | "
                       f"[{fixed(ci[0])}, {fixed(ci[1])}] | {fixed(res.get('p'), '.3f')} |")
    pred = results.get("prediction") or {}
    if "score" in pred:
        out += ["", "## Predicting transfer from traits", "",
                f"Leave-one-source-out ridge regression: mean Spearman between predicted and actual transfer rows "
                f"{fixed(pred['score'])}, against {fixed(pred.get('baseline_score'))} for predicting the mean row."]
    out += prediction_section(results)
    return out
