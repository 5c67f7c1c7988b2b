"""Reading the CSV tables a run writes (or anyone else makes) back in, for ``harness analyze``.

``matrix.csv``: a header ``source,<target>,...`` and one row per source of numbers (empty = missing).
``traits.csv``: ``source,<trait>,...`` the same way. ``pair_traits.csv``: long form
``source,target,trait,value``. Errors name the file, row and column.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path


class TableError(ValueError):
    pass


def _rows(path: Path) -> list[list[str]]:
    try:
        with open(path, newline="") as fh:
            rows = [row for row in csv.reader(fh) if any(cell.strip() for cell in row)]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise TableError(f"{path}: cannot read it as CSV ({exc})") from None
    if not rows:
        raise TableError(f"{path}: empty; expected a header row and one row per source")
    return rows


def _number(text: str, where: str) -> float | None:
    if text.strip() == "":
        return None
    try:
        value = float(text)
    except ValueError:
        raise TableError(f"{where}: {text!r} is not a number (leave the cell empty for a missing value)") from None
    if not math.isfinite(value):
        raise TableError(f"{where}: {text!r} is not finite (leave the cell empty for a missing value)")
    return value


def read_wide(path: str | Path, what: str = "column") -> tuple[list[str], list[str], dict[str, dict[str, float | None]]]:
    """A wide table keyed by its first column: (row names, column names, row -> column -> value)."""
    path = Path(path)
    rows = _rows(path)
    header = [h.strip() for h in rows[0]]
    if len(header) < 2 or header[0] != "source":
        raise TableError(f"{path}:1: the header must be 'source,<{what}>,...'; found {','.join(header)!r}")
    columns = header[1:]
    dupes = sorted({c for c in columns if columns.count(c) > 1 or not c})
    if dupes:
        raise TableError(f"{path}:1: {what} names must be unique and non-empty; check {dupes}")
    names, table = [], {}
    for line, row in enumerate(rows[1:], start=2):
        if len(row) != len(header):
            raise TableError(f"{path}:{line}: {len(row)} fields, the header has {len(header)}")
        name = row[0].strip()
        if not name or name in table:
            raise TableError(f"{path}:{line}: source name {name!r} is empty or repeated")
        names.append(name)
        table[name] = {c: _number(v, f"{path}:{line}: column {c!r}") for c, v in zip(columns, row[1:])}
    if not names:
        raise TableError(f"{path}: a header but no rows")
    return names, columns, table


def read_pair_traits(path: str | Path) -> dict[str, dict[str, dict[str, float | None]]]:
    """``pair_traits.csv`` (long form) as trait -> source -> target -> value."""
    path = Path(path)
    rows = _rows(path)
    if [h.strip() for h in rows[0]] != ["source", "target", "trait", "value"]:
        raise TableError(f"{path}:1: the header must be 'source,target,trait,value'")
    out: dict = {}
    for line, row in enumerate(rows[1:], start=2):
        if len(row) != 4:
            raise TableError(f"{path}:{line}: {len(row)} fields, expected 4")
        source, target, trait, value = (cell.strip() for cell in row)
        out.setdefault(trait, {}).setdefault(source, {})[target] = _number(value, f"{path}:{line}: value")
    return out
