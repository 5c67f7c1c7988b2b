"""The "Prediction" table of report.md and report.html: every predictor as a source ranker
(Spearman, NDCG@k, Regret@k, means over targets, same leave-one-source-out folds), the
comparisons with their CI and p, and the predictors not compared with the reason."""

from __future__ import annotations

from harness.reporting.numbers import fixed
from harness.reporting.text import esc, html_table, md_escape

HEADERS = ["predictor", "Spearman", "NDCG@{k}", "Regret@{k}", "row Spearman", "features"]


def _rows(pred: dict) -> list[list[str]]:
    return [[name, fixed(p.get("spearman"), "+.2f"), fixed(p.get("ndcg_at_k"), ".2f"), fixed(p.get("regret_at_k"), ".3f"),
             fixed(p.get("row_spearman"), "+.2f"), str(len(p.get("features") or []))]
            for name, p in pred.get("predictors", {}).items()]


def _comparisons(pred: dict) -> list[list[str]]:
    out = []
    for c in pred.get("comparisons", []):
        ci = c.get("ci") or [None, None]
        out.append([f"{c['a']} − {c['b']}", c["metric"], fixed(c.get("difference"), "+.3f"),
                    f"[{fixed(ci[0], '+.3f')}, {fixed(ci[1], '+.3f')}]", fixed(c.get("p"), ".3f"),
                    str(c.get("n_targets"))])
    return out


def _note(pred: dict) -> str:
    return (f"Each target's sources ranked by each predictor's held-out predictions, means over targets; "
            f"k = {pred.get('k')}; Regret: lower is better. Comparisons: a − b over targets, bootstrap CI, "
            "sign-flip p.")


def markdown_section(results: dict) -> list[str]:
    """Lines of the report.md section; none without predictors."""
    pred = results.get("prediction") or {}
    if not pred.get("predictors"):
        return []
    k = pred.get("k")
    out = ["", "## Prediction", "", _note(pred), "",
           "| " + " | ".join(h.format(k=k) for h in HEADERS) + " |", "|---|---|---|---|---|---|"]
    out += ["| " + " | ".join(md_escape(v) for v in row) + " |" for row in _rows(pred)]
    rows = _comparisons(pred)
    if rows:
        out += ["", "| comparison | metric | difference | CI | p | targets |", "|---|---|---|---|---|---|"]
        out += ["| " + " | ".join(md_escape(v) for v in row) + " |" for row in rows]
    for name, why in (pred.get("not_compared") or {}).items():
        out.append(f"- not compared: {md_escape(name)}: {md_escape(why)}")
    return out


def _table(headers: list[str], rows: list[list[str]]) -> str:
    return html_table(headers, [[esc(v) for v in row] for row in rows])


def html_section(results: dict) -> str:
    """The report.html section; empty without predictors."""
    pred = results.get("prediction") or {}
    if not pred.get("predictors"):
        return ""
    k = pred.get("k")
    out = [f"<h3>Prediction</h3><p>{esc(_note(pred))}</p>",
           _table([h.format(k=k) for h in HEADERS], _rows(pred))]
    rows = _comparisons(pred)
    if rows:
        out.append(_table(["comparison", "metric", "difference", "CI", "p", "targets"], rows))
    out += [f'<p class="muted">Not compared: {esc(name)}: {esc(why)}</p>'
            for name, why in (pred.get("not_compared") or {}).items()]
    return "".join(out)
