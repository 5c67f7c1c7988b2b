"""The "Twin contrasts" section of report.md and report.html, and its one console line.

One row per contrast of ``results["twin_contrasts"]`` (source minus twin, documents paired, seeds
when there are several), skipped ones with their reason, and each pair's differing options, so a
reader sees what a twin isolates (and when it isolates more than one statistic).
"""

from __future__ import annotations

import html

from harness.reporting.numbers import signed
from harness.reporting.text import md_escape

HEADER = ["source − twin", "statistic", "target", "measure", "delta", "CI", "p", "q", "docs", "seeds"]
INTRO = ("Each twin pair's adapters compared on every target, source minus twin, on the same documents "
         "(and over seeds when there are several); q is Benjamini-Hochberg over every twin contrast, "
         "`*` where q is below the FDR level.")


def _number(value, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}g}" if abs(value) < 1e-3 and value else f"{value:.{digits}f}"


def _cells(row: dict) -> list[str]:
    measure = row["measure"] + (f" ({row['label']})" if row.get("label") else "")
    if row.get("skipped"):
        values = ["skipped", row["skipped"], "", "", ""]
    else:
        ci = row.get("ci") or [None, None]
        values = [signed(row["delta"]) + ("*" if row.get("significant") else ""),
                  f"[{signed(ci[0])}, {signed(ci[1])}]", _number(row["p"]), _number(row["q"]), str(row["n_docs"])]
    return [f"{row['source']} − {row['twin_of']}", row["statistic"], row["target"], measure, *values[:5],
            "/".join(map(str, row.get("n_seeds", [])))]


def _pair_lines(results: dict) -> list[str]:
    out = []
    for pair in results.get("twins") or []:
        differs = ", ".join(f"{k}: {a!r} vs {b!r}" for k, (a, b) in pair["differs"].items())
        note = f" Note: {pair['note']}." if pair.get("note") else ""
        out.append(f"{pair['source']} is the twin of {pair['twin_of']} in {pair['statistic']} ({differs}).{note}")
    return out


def markdown_section(results: dict) -> list[str]:
    """The section's Markdown lines (none when the study declares no twins)."""
    rows = results.get("twin_contrasts") or []
    if not results.get("twins"):
        return []
    out = ["", "## Twin contrasts", "", INTRO, ""]
    out += [f"- {md_escape(line)}" for line in _pair_lines(results)]
    if not rows:
        return [*out, "", "No contrast was computed (see Skipped analyses and Failures)."]
    out += ["", "| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    out += ["| " + " | ".join(md_escape(c) for c in _cells(row)) + " |" for row in rows]
    return out


def html_section(results: dict) -> str:
    """The section's HTML body."""
    if not results.get("twins"):
        return "<p>No source declares a <code>twin_of</code>: no twin contrasts.</p>"
    rows = results.get("twin_contrasts") or []
    pairs = "".join(f"<li>{html.escape(line)}</li>" for line in _pair_lines(results))
    head = "".join(f"<th>{html.escape(h)}</th>" for h in HEADER)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in _cells(row)) + "</tr>" for row in rows)
    table = f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>" if rows else "<p>No contrast was computed.</p>"
    return f"<p>{html.escape(INTRO)}</p><ul>{pairs}</ul>{table}"


def console_line(results: dict) -> str | None:
    """One line: how many twin contrasts were computed and significant, how many skipped."""
    rows = results.get("twin_contrasts") or []
    if not results.get("twins"):
        return None
    done = [r for r in rows if not r.get("skipped")]
    sig = sum(bool(r.get("significant")) for r in done)
    return (f"twin contrasts: {len(results['twins'])} pair(s), {len(done)} contrast(s), {sig} significant "
            f"(BH q < {results.get('analysis_settings', {}).get('fdr', 0.05)}), {len(rows) - len(done)} skipped; "
            "see report.md 'Twin contrasts'")
