"""The "Hypotheses" section of report.md and report.html, and its lines on the terminal, from
``results["hypotheses"]`` alone (H1-H5 with effect, CI, p, q, verdict and the reason)."""

from __future__ import annotations

from harness.reporting.numbers import fixed
from harness.reporting.text import esc, md_escape

INTRO = ("The paper's claims, each with the test this study allows; verdicts are computed from the numbers "
         "(harness/analysis/hypotheses.py), q is Benjamini-Hochberg over the hypotheses that have a p.")


def effect_text(item: dict) -> str:
    """``+0.120 [+0.050, +0.190] (name)``, or ``n/a``."""
    effect = item.get("effect") or {}
    if effect.get("value") is None:
        return "n/a"
    ci = effect.get("ci")
    interval = f" [{fixed(ci[0], '+.3f')}, {fixed(ci[1], '+.3f')}]" if ci else ""
    value = effect["value"]
    shown = str(int(value)) if float(value).is_integer() and not ci else f"{value:+.3f}"  # a count (H5's k)
    return f"{shown}{interval}" + (f" ({effect['name']})" if effect.get("name") else "")


def sentence(text: str) -> str:
    """``text`` ending in one full stop."""
    return text.rstrip().rstrip(".") + "."


def markdown_section(results: dict) -> list[str]:
    """Lines of the Markdown section; none for a results.json from before hypotheses."""
    items = results.get("hypotheses")
    if not items:
        return []
    out = ["", "## Hypotheses", "", INTRO, "", "| id | claim | effect (CI) | p | q | verdict |", "|---|---|---|---|---|---|"]
    for h in items:
        out.append(f"| {md_escape(h['id'])} | {md_escape(h['claim'])} | {md_escape(effect_text(h))} | "
                   f"{fixed(h.get('p'), '.3g')} | {fixed(h.get('q'), '.3g')} | **{md_escape(h['verdict'])}** |")
    out.append("")
    out += [f"- **{md_escape(h['id'])}** ({md_escape(h['verdict'])}): {md_escape(sentence(h['reason']))} "
            f"*Test:* {md_escape(sentence(h['test']))}" for h in items]
    return out


def html_section(results: dict) -> str:
    """The HTML section (a heading, the table, the reasons); empty for a results.json without hypotheses."""
    items = results.get("hypotheses")
    if not items:
        return ""
    rows = "".join(
        f"<tr><td>{esc(h['id'])}</td><td>{esc(h['claim'])}</td><td>{esc(effect_text(h))}</td>"
        f"<td>{fixed(h.get('p'), '.3g')}</td><td>{fixed(h.get('q'), '.3g')}</td>"
        f'<td class="verdict">{esc(h["verdict"])}</td></tr>' for h in items)
    head = "".join(f"<th>{c}</th>" for c in ("id", "claim", "effect (CI)", "p", "q", "verdict"))
    reasons = "".join(f"<li><b>{esc(h['id'])}</b> ({esc(h['verdict'])}): {esc(sentence(h['reason']))} "
                      f'<span class="muted">Test: {esc(sentence(h["test"]))}</span></li>' for h in items)
    return (f'<h3 id="hypotheses">Hypotheses</h3><p class="muted">{esc(INTRO)}</p>'
            f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table><ul>{reasons}</ul>")


def console_lines(results: dict) -> list[str]:
    """One plain line per hypothesis (no markup: the caller prints with ``markup=False``)."""
    return [f"{h['id']} {h['verdict']}: effect {effect_text(h)}, p {fixed(h.get('p'), '.3g')}, "
            f"q {fixed(h.get('q'), '.3g')}. {h['reason']}" for h in results.get("hypotheses") or []]
