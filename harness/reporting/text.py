"""Text from data made safe for Markdown tables and for HTML, and the HTML table every report
section builds (here, not in ``harness.reporting.html``, which imports the sections)."""

from __future__ import annotations

import html
import re
from typing import Any

_MD_ESCAPES = {"&": "&amp;", "<": "&lt;", ">": "&gt;", "|": "\\|", "\\": "\\\\", "`": "\\`", "*": "\\*",
               "[": "\\[", "]": "\\]"}


def md_escape(text: Any) -> str:
    """Text from data, safe in a Markdown table cell: HTML-escaped, table/emphasis/link characters
    backslash-escaped, line breaks and other control characters flattened to spaces."""
    text = re.sub(r"[\x00-\x1f\x7f]+", " ", str(text))
    return "".join(_MD_ESCAPES.get(ch, ch) for ch in text)


def esc(value) -> str:
    """Text from data, HTML-escaped (quotes too: safe in attributes)."""
    return html.escape(str(value), quote=True)


def html_table(header: list[str], rows: list[list[str]]) -> str:
    """``header`` is escaped here; ``rows`` hold HTML already escaped by the caller."""
    head = "".join(f"<th>{esc(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
