"""Text from data made safe for Markdown tables (and the HTML they render to)."""

from __future__ import annotations

import re
from typing import Any

_MD_ESCAPES = {"&": "&amp;", "<": "&lt;", ">": "&gt;", "|": "\\|", "\\": "\\\\", "`": "\\`", "*": "\\*",
               "[": "\\[", "]": "\\]"}


def md_escape(text: Any) -> str:
    """Text from data, safe in a Markdown table cell: HTML-escaped, table/emphasis/link characters
    backslash-escaped, line breaks and other control characters flattened to spaces."""
    text = re.sub(r"[\x00-\x1f\x7f]+", " ", str(text))
    return "".join(_MD_ESCAPES.get(ch, ch) for ch in text)
