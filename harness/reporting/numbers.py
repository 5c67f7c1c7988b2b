"""How numbers are written, in one place: tables for machines (CSV) and text for people.

Every report reads numbers from ``results.json``, where a missing value is ``None`` (a failed
cell, a trait that does not apply); each function here says how that gap is shown.
"""

from __future__ import annotations

import math


def csv_number(value) -> str:
    """A CSV field: the float's shortest exact form (``repr``), empty for a missing value, so a
    table read back gives the very numbers of ``results.json``."""
    return "" if value is None else repr(float(value))


def fixed(value, spec: str = ".2f", missing: str = "n/a") -> str:
    """``value`` formatted with ``spec``; ``missing`` for None."""
    return missing if value is None else format(value, spec)


def signed(value, missing: str = "n/a") -> str:
    """A change, with its sign and three decimals: ``+0.125``."""
    return missing if value is None else f"{value:+.3f}"


def three_decimals(value, sign: bool = False, missing: str = "—") -> str:
    """Three decimals, but a non-zero value that would read 0.000 gets two significant digits
    instead: a real difference must never read as none."""
    if value is None:
        return missing
    text = f"{value:+.3f}" if sign else f"{value:.3f}"
    if value != 0 and float(text) == 0:
        text = f"{value:+.2g}" if sign else f"{value:.2g}"
    return text


def annotation(value: float, sign: bool = False) -> str:
    """A short label on a figure: fewer decimals for bigger numbers (metrics need not be in [0, 1])."""
    if math.isnan(value):
        return "n/a"
    digits = 0 if abs(value) >= 100 else 1 if abs(value) >= 10 else 2
    value = round(value, digits) + 0.0  # "+0.00", never "-0.00", for a tiny negative difference
    return f"{value:{'+' if sign else ''}.{digits}f}"
