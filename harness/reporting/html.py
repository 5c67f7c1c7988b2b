"""``report.html``: one self-contained file (inline CSS, images as data URIs, no URL anywhere) built
from ``results.json`` and the plots. Every piece of text that comes from data goes through
:func:`esc`: source, target, trait and label names are user input."""

from __future__ import annotations

import base64
import json
from pathlib import Path

from harness.analysis.applicability import describe, skipped_analyses
from harness.reporting import twins
from harness.reporting.hypotheses import html_section as hypotheses_section
from harness.reporting.markdown import brought_sources
from harness.reporting.numbers import fixed, signed
from harness.reporting.prediction import html_section as prediction_html
from harness.reporting.seeds import plus_minus, seed_line
from harness.reporting.text import esc
from harness.reporting.text import html_table as table

CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;color:#1d2430;background:#fafbfc}
main{max-width:1100px;margin:0 auto;padding:24px}
h1{font-size:24px;margin:0 0 4px} h2{font-size:19px;margin:32px 0 8px;border-bottom:1px solid #dde3ea;padding-bottom:4px}
h3{font-size:15px;margin:20px 0 6px}
table{border-collapse:collapse;margin:8px 0 12px;font-variant-numeric:tabular-nums}
th,td{border:1px solid #dde3ea;padding:3px 8px;text-align:right} th{background:#eef2f6}
td:first-child,th:first-child{text-align:left}
.pos{color:#1a7f37}.neg{color:#c62828}.muted{color:#6b7785}.sig{font-weight:600}
figure{margin:8px 0 16px} figcaption{color:#6b7785;font-size:12px}
img{max-width:100%;height:auto;border:1px solid #e3e8ee;background:#fff}
nav a{margin-right:12px} .warn{background:#fff8e1;border-left:4px solid #f0b400;padding:6px 10px}
code{background:#eef2f6;padding:1px 4px;border-radius:3px}
"""

SECTIONS = [("provenance", "Experiment and provenance"), ("transfer", "Transfer"), ("base", "Base scores"),
            ("components", "Latent abilities"), ("traits", "Traits"), ("twins", "Twin contrasts"), ("side_effects", "Side effects"),
            ("recommendations", "Recommendations")]


def signed_span(value) -> str:
    """A change, coloured by its sign."""
    if value is None:
        return '<span class="muted">n/a</span>'
    cls = "pos" if value > 0 else "neg" if value < 0 else ""
    return f'<span class="{cls}">{signed(value)}</span>'


def figure(plot) -> str:
    data = base64.b64encode(Path(plot.path).read_bytes()).decode("ascii")
    return (f'<figure><img alt="{esc(plot.title)}" width="{plot.width}" height="{plot.height}" '
            f'src="data:image/png;base64,{data}"><figcaption>{esc(plot.title)}</figcaption></figure>')


def _figures(plots, section: str, kind: str | None = None, key: str | None = None) -> str:
    return "".join(figure(p) for p in plots if p.section == section
                   and (kind is None or (p.kind == kind and p.key == key)))


def _provenance(results: dict) -> str:
    prov = results.get("provenance", {})
    model = results.get("base_model", {})
    rows = [["experiment", esc(results.get("experiment"))], ["base model", esc(model.get("name"))],
            ["resolved from", esc(model.get("resolved_from", ""))],
            ["sources × targets", f"{len(results['sources'])} × {len(results['targets'])}"],
            ["brought in, not trained here", esc(", ".join(brought_sources(results)) or "none")],
            ["adapters / cells computed", esc(prov.get("computed", ""))], ["reused from cache", esc(prov.get("reused", ""))],
            ["registry hash", f"<code>{esc(prov.get('config_hashes', {}).get('registry', ''))}</code>"],
            ["seeds", f"<code>{esc(json.dumps(prov.get('seeds', {})))}</code>"]]
    rows += [[esc(k), esc(v)] for k, v in prov.get("versions", {}).items()]
    rows += [[f"seconds: {esc(k)}", fixed(v, ".1f")] for k, v in prov.get("seconds", {}).items()]
    out = table(["", ""], rows)
    failures = results.get("failures") or []
    if failures:
        items = "".join(f"<li><b>{esc(f.get('stage'))}</b> " + esc(", ".join(f"{k}={v}" for k, v in f.items() if k != "stage"))
                        + "</li>" for f in failures)
        out += f'<div class="warn">{len(failures)} failure(s); the gaps show as n/a below.<ul>{items}</ul></div>'
    skipped = skipped_analyses(results)
    if skipped:
        items = "".join(f"<li>{esc(describe(item))}</li>" for item in skipped)
        out += (f'<h3>Skipped analyses</h3><p class="muted">Not failures: the study is too small for them, lacks what they '
                f"read, or the registry turned them off.</p><ul>{items}</ul>")
    return out


def _transfer(results: dict, plots) -> str:
    if not results["sources"]:
        from harness.analysis.applicability import NO_SOURCES

        return f'<p class="muted">No transfer to show: {esc(NO_SOURCES)}.</p>'
    tests = results.get("cell_tests") or {}
    rows = []
    for s in results["sources"]:
        row = [esc(s)]
        for t in results["targets"]:
            test = tests.get(s, {}).get(t) or {}
            cell = signed_span(results["transfer"][s][t])
            if test.get("significant"):
                cell = f'<span class="sig" title="p={fixed(test.get("p"), ".3f")}, q={fixed(test.get("q"), ".3f")}">{cell}*</span>'
            spread = plus_minus(results, s, t)
            row.append(cell + (f' <span class="muted">{esc(spread.strip())}</span>' if spread else ""))
        rows.append(row)
    note = ("<p>* the adapter differs from the base model on the same documents (paired test, "
            "Benjamini–Hochberg over the matrix).</p>" if tests else "")
    if seed_line(results):
        note += f"<p>{esc(seed_line(results))}</p>"
    return _figures(plots, "transfer") + table(["source", *results["targets"]], rows) + note


def _base(results: dict, plots) -> str:
    rows = [[esc(t), esc(results["metrics"].get(t, "")),
             "failed" if results["base"][t] is None else
             f"{results['base'][t]['value']:.3f} ± {results['base'][t]['stderr'] or 0:.3f}"] for t in results["targets"]]
    return _figures(plots, "base") + table(["target", "metric", "score ± stderr"], rows)


def _components(results: dict, plots) -> str:
    out = []
    for name, dec in results.get("decompositions", {}).items():
        stab = dec.get("stability") or {}
        boot, loso = stab.get("bootstrap") or {}, stab.get("leave_one_source_out") or {}
        n = dec.get("n_components", {})
        out.append(f"<h3>{esc(name)}: {esc(dec.get('normalisation', 'raw'))} transfer, {len(dec['labels'])} "
                   f"component(s) by {esc(n.get('method', 'the decomposer'))}</h3>")
        if n.get("note"):
            out.append(f'<p class="warn">{esc(n["note"])}</p>')
        if n.get("retained_by_test") == 0:
            out.append('<p class="warn">Parallel analysis: no component beats chance; one is shown anyway.</p>')
        rows = []
        for c, ratio in zip(dec["labels"], dec["explained_variance_ratio"]):
            evidence = ", ".join(f"{esc(e['target'])} {e['loading']:+.2f}" for e in dec.get("label_evidence", {}).get(c, []))
            rows.append([esc(c), esc(dec["labels"][c]), f"{ratio:.1%}", esc(stab.get("verdict", {}).get(c, "untested")),
                         fixed(boot.get("congruence", {}).get(c, {}).get("median"), ".2f"),
                         fixed(loso.get("min", {}).get(c), ".2f"), evidence])
        out.append(table(["component", "name", "variance", "stability", "bootstrap φ (median)",
                          "leave-one-out φ (min)", "named from"], rows))
        out.append("".join(_figures(plots, "components", kind, name) for kind in ("scree", "loadings", "biplot")))
    return "".join(out) or "<p>No decomposition (see skipped analyses and failures, under provenance).</p>"


def _traits(results: dict, plots) -> str:
    out = []
    names = sorted({k for row in results.get("traits", {}).values() for k in row})
    if names:
        scopes = results.get("trait_scopes", {})
        rows = [[esc(k), esc(scopes.get(k, "")), *(fixed(results["traits"].get(s, {}).get(k), ".3g") for s in results["sources"])]
                for k in names]
        out.append(table(["trait", "scope", *results["sources"]], rows))
    out.append(_figures(plots, "traits"))
    tests = sorted(results.get("correlations") or [], key=lambda r: (r["p"] is None, r["p"] or 0))
    if tests:
        out.append("<h3>Strongest trait–component associations</h3>")
        rows = [[esc(r["trait"]), esc(f"{r['decomposer']}:{r['component']}"), fixed(r["spearman"], "+.2f"),
                 fixed(r.get("pearson"), "+.2f"), fixed(r["p"], ".3f"), fixed(r["q"], ".3f")] for r in tests[:20]]
        out.append(table(["trait", "component", "Spearman", "Pearson", "p (permutation)", "q (BH)"], rows))
        min_ps = [v["min_p"] for v in (results.get("trait_tests") or {}).values() if v.get("min_p") is not None]
        if min_ps and min(min_ps) > 0.05:
            out.append(f'<p class="warn">With {len(results["sources"])} sources the smallest attainable p-value is '
                       f"{min(min_ps):.3f}: no association can reach significance. Add sources.</p>")
    for name, variants in (results.get("similarity_test") or {}).items():
        out.append(f"<h3>Does surface similarity ({esc(name)}) predict transfer?</h3>")
        rows = [[esc(label.replace("_", " ")), esc(res.get("n_pairs")), fixed(res.get("spearman"), "+.2f"),
                 f"[{fixed((res.get('ci') or [None])[0], '+.2f')}, {fixed((res.get('ci') or [None, None])[1], '+.2f')}]",
                 fixed(res.get("p"), ".3f")] for label, res in variants.items()]
        out.append(table(["pairs", "n", "Spearman", "CI", "p"], rows))
    return "".join(out) or "<p>No traits.</p>"


def _recommendations(results: dict) -> str:
    pred = results.get("prediction") or {}
    per_source = pred.get("per_source", {})
    tests = results.get("cell_tests") or {}
    out = []
    if "score" in pred:
        out.append(f"<p>Leave-one-source-out ridge regression from traits predicts a held-out source's transfer "
                   f"row with mean Spearman {fixed(pred['score'], '+.2f')} (predicting the mean row: "
                   f"{fixed(pred.get('baseline_score'), '+.2f')}).</p>")
    out.append(prediction_html(results))
    for item in skipped_analyses(results):
        if item["analysis"] == "prediction":
            out.append(f'<p class="muted">Prediction skipped: {esc(item["reason"])}</p>')
    rows = []
    for t in results["targets"]:
        ranked = sorted((s for s in results["sources"] if results["transfer"][s][t] is not None),
                        key=lambda s: -results["transfer"][s][t])
        if not ranked:
            rows.append([esc(t), "n/a", "", ""])
            continue
        best = ranked[0]
        sig = (tests.get(best, {}).get(t) or {}).get("significant")
        predicted = fixed(per_source.get(best, {}).get("predicted", {}).get(t), "+.3f")
        if (pred.get("informative") or {}).get(t) is False:  # its error band spans most of what the metric allows
            predicted = f'<span class="muted">not informative with {esc(pred.get("n_sources"))} sources</span>'
        rows.append([esc(t), esc(best) + ("*" if sig else ""), signed_span(results["transfer"][best][t]), predicted])
    out.append(table(["target", "best source", "measured transfer", "predicted (held out)"], rows))
    out.append("<p>Rank untried datasets with <code>harness recommend REGISTRY --target T --candidates …</code>.</p>")
    return "".join(out)


def render(results: dict, plots: list) -> str:
    """The whole report as one HTML string."""
    body = {
        "provenance": _provenance(results),
        "transfer": _transfer(results, plots) + hypotheses_section(results),
        "base": _base(results, plots),
        "components": _components(results, plots),
        "traits": _traits(results, plots),
        "twins": twins.html_section(results),
        "side_effects": _figures(plots, "side_effects") or "<p>No per-sample behaviour was recorded.</p>",
        "recommendations": _recommendations(results),
    }
    nav = "".join(f'<a href="#{key}">{esc(title)}</a>' for key, title in SECTIONS)
    sections = "".join(f'<section id="{key}"><h2>{esc(title)}</h2>{body[key]}</section>' for key, title in SECTIONS)
    title = f"Transfer report: {results.get('experiment', '')}"
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{esc(title)}</title>'
            f'<meta name="viewport" content="width=device-width, initial-scale=1"><style>{CSS}</style></head>'
            f"<body><main><h1>{esc(title)}</h1><nav>{nav}</nav>{sections}</main></body></html>\n")
