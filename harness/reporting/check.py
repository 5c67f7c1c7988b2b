"""``harness check``: a regression gate comparing a run's scores with a baseline ``results.json``.

One comparison per cell (model, target), for the base model row and every source's adapter row,
over the union of the cells of both runs. A cell fails when

* ``regression``: it scored lower, by more than the tolerance AND by more than chance explains::

      delta = current - baseline
      margin = z * sqrt(stderr_current**2 + stderr_baseline**2)     # a missing (null) stderr counts as 0
      threshold = max(tolerance, margin)
      fails  <=>  -delta > threshold + EPS                            # EPS = 1e-9, float noise only

  The two allowances combine by taking the larger one: a drop must clear both to fail. The tolerance
  is an absolute score difference (0.02 = two accuracy points); ``z=1.96`` is a two-sided 95% test
  of the difference of two independent means. Treating a null stderr as 0 makes the test stricter,
  never laxer; ``z=0`` turns the significance test off (tolerance only).
* ``missing``: it has a score in the baseline but not now (absent from the run, or null = scoring
  failed): a cell that stopped scoring is a regression.
* ``metric_changed``: the target is scored with another lm-eval metric than in the baseline, so
  the numbers are not comparable; both names are in the message.

Cells that pass: ``pass``; ``improved`` (higher by more than the same threshold, reported);
``new`` (only in the current run); ``baseline_missing`` (null in the baseline, scored now);
``unscored`` (null, or absent now, in the baseline and not scored now: nothing was lost).

A value that is not a finite number (NaN from a broken scorer) counts as not scored; a non-finite
stderr counts as null (0).
"""

from __future__ import annotations

import json
import math
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.reporting.numbers import three_decimals
from harness.reporting.text import md_escape

__all__ = ["CheckError", "CheckResult", "STATUSES", "FAILING", "load_results", "check_comparable", "compare",
           "to_junit", "to_markdown", "to_json"]

STATUSES = ("regression", "missing", "metric_changed", "improved", "pass", "new", "baseline_missing", "unscored")
FAILING = frozenset({"regression", "missing", "metric_changed"})
EPS = 1e-9
REQUIRED_KEYS = ("sources", "targets", "metrics", "base", "scores")
MARKS = {"regression": "❌ regression", "missing": "⚠️ missing", "metric_changed": "❌ metric changed",
         "improved": "⬆️ improved", "pass": "✅ pass", "new": "🆕 new",
         "baseline_missing": "❔ baseline missing",
         "unscored": "➖ unscored"}


class CheckError(ValueError):
    """Invalid input to the check (the CLI exits 2): what was wrong, where, and how to fix it."""


@dataclass
class CheckResult:
    """Every cell's comparison (dicts, see ``compare``) and the settings they were made with."""

    cells: list[dict]
    tolerance: float = 0.0
    z: float = 1.96
    experiment: dict = field(default_factory=dict)  # {"baseline": name, "current": name}
    notes: list[str] = field(default_factory=list)

    @property
    def failed(self) -> list[dict]:
        return [c for c in self.cells if c["status"] in FAILING]

    @property
    def passed(self) -> bool:
        return not self.failed

    @property
    def summary(self) -> dict[str, int]:
        counts = {s: 0 for s in STATUSES}
        for c in self.cells:
            counts[c["status"]] += 1
        return counts


# --- input -------------------------------------------------------------------------------------------

def load_results(path: str | Path, role: str = "results") -> dict:
    """A run folder's ``results.json``, or a ``results.json`` file; CheckError if it is not one.

    ``role`` ("baseline", "current run") only words the error messages."""
    path = Path(path)
    if path.is_dir():
        file = path / "results.json"
        if not file.is_file():
            raise CheckError(f"{path}: the {role} folder has no results.json. Give the folder of a finished "
                             "`harness run` (results.json is written last, so an interrupted run has none) "
                             "or the path of a results.json file.")
    elif path.exists():
        file = path
    else:
        raise CheckError(f"{path}: no such file or folder (the {role}). Give a run folder or its results.json.")
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CheckError(f"{file}: cannot read the {role} ({exc}). Check the path and its permissions.") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise CheckError(f"{file}:{exc.lineno}:{exc.colno}: the {role} is not valid JSON ({exc.msg}). "
                         "Give the results.json that `harness run` wrote, unedited.") from None
    check_comparable(data, f"{file}", role)
    return data


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def check_comparable(data: Any, where: str = "results", role: str = "results") -> None:
    """CheckError unless ``data`` has the shape of a results.json as far as the check reads it."""
    hint = "Give the results.json (or run folder) that `harness run` wrote."
    if not isinstance(data, dict):
        raise CheckError(f"{where}: the {role} is not a results.json (its top level is a JSON "
                         f"{_json_type(data)}, not an object). {hint}")
    missing = [k for k in REQUIRED_KEYS if k not in data]
    if missing:
        raise CheckError(f"{where}: the {role} is not a results.json: it lacks the key(s) {', '.join(missing)} "
                         f"(a results.json has {', '.join(REQUIRED_KEYS)}). {hint}")
    for key, kind in (("sources", list), ("targets", list), ("metrics", dict), ("base", dict), ("scores", dict)):
        if not isinstance(data[key], kind):
            raise CheckError(f"{where}: '{key}' of the {role} should be a JSON "
                             f"{'array' if kind is list else 'object'}, not a {_json_type(data[key])}. {hint}")
    for key in ("sources", "targets"):
        bad = [x for x in data[key] if not isinstance(x, str)]
        if bad:
            raise CheckError(f"{where}: '{key}' of the {role} should hold names (strings); found {bad[0]!r}. {hint}")
    for target, metric in data["metrics"].items():
        if not isinstance(metric, str):
            raise CheckError(f"{where}: metrics.{target} of the {role} should be a metric name, not {metric!r}. {hint}")
    for target, cell in data["base"].items():
        _validate_cell(cell, f"{where}: base.{target}", role, hint)
    for source, row in data["scores"].items():
        if not isinstance(row, dict):
            raise CheckError(f"{where}: scores.{source} of the {role} should be an object of target -> cell, "
                             f"not a {_json_type(row)}. {hint}")
        for target, cell in row.items():
            _validate_cell(cell, f"{where}: scores.{source}.{target}", role, hint)


def _validate_cell(cell: Any, where: str, role: str, hint: str) -> None:
    if cell is None:
        return
    if not isinstance(cell, dict) or "value" not in cell:
        raise CheckError(f"{where} of the {role} should be null or {{\"value\": number, \"stderr\": number or "
                         f"null}}, not {json.dumps(cell)[:80]}. {hint}")
    if not _is_number(cell["value"]):
        raise CheckError(f"{where}.value of the {role} should be a number, "
                         f"not {json.dumps(cell['value'])[:80]}. {hint}")
    se = cell.get("stderr")
    if se is not None and not _is_number(se):
        raise CheckError(f"{where}.stderr of the {role} should be a number or null, not {json.dumps(se)[:80]}. {hint}")


def _json_type(x: Any) -> str:
    if x is None:
        return "null"
    if isinstance(x, bool):
        return "boolean"
    if isinstance(x, dict):
        return "object"
    if isinstance(x, list):
        return "array"
    if isinstance(x, str):
        return "string"
    return "number" if _is_number(x) else type(x).__name__


# --- comparison --------------------------------------------------------------------------------------

def _grid(results: dict) -> tuple[list[tuple[str, str]], list[str], dict]:
    """Rows (kind, model), targets, and (kind, model, target) -> cell or None, of one run. A cell of
    the grid (listed source x listed target, or present in base/scores) without an entry is None."""
    rows = [("base", "base")]
    for s in [*results["sources"], *results["scores"]]:
        if ("adapter", s) not in rows:
            rows.append(("adapter", s))
    targets: list[str] = []
    for t in [*results["targets"], *results["base"], *(t for row in results["scores"].values() for t in row)]:
        if t not in targets:
            targets.append(t)
    cells = {}
    for kind, model in rows:
        table = results["base"] if kind == "base" else results["scores"].get(model, {})
        for t in targets:
            cells[(kind, model, t)] = table.get(t)
    return rows, targets, cells


def difference_stderr(se_a: float | None, se_b: float | None) -> float | None:
    """Standard error of the difference of two independent estimates from theirs (a missing one
    counts as 0); None when neither has one. The gate's margin and the Markdown report's star use it."""
    parts = [se for se in (se_a, se_b) if se is not None]
    return math.hypot(*parts) if parts else None


def _value(cell: dict | None) -> tuple[float | None, float | None]:
    """(value, stderr) with non-finite values as not scored and non-finite stderrs as None."""
    if cell is None:
        return None, None
    value = float(cell["value"])
    if not math.isfinite(value):
        return None, None
    se = cell.get("stderr")
    se = float(se) if se is not None and math.isfinite(float(se)) else None
    return value, se




def compare(current: dict, baseline: dict, tolerance: float = 0.0, z: float = 1.96) -> CheckResult:
    """Compare every cell of ``current`` with ``baseline`` (both results.json dicts).

    Each comparison is a dict: model, kind ("base" | "adapter"), target, metric (the current run's,
    else the baseline's), baseline_metric, baseline, current
    (values or None), baseline_stderr, current_stderr, delta (current - baseline, or None), margin
    (z * combined stderr, or None), threshold (max(tolerance, margin): the drop allowed), status
    (see the module docstring) and message."""
    if not _is_number(tolerance) or not math.isfinite(tolerance) or tolerance < 0:
        raise CheckError(f"--tolerance {tolerance!r}: give a non-negative number, the score drop to allow "
                         "(e.g. 0.02 for two accuracy points; 0 relies on the stderrs alone).")
    if not _is_number(z) or not math.isfinite(z) or z < 0:
        raise CheckError(f"z {z!r}: give a non-negative number of standard errors (1.96 for 95%; 0 turns the "
                         "significance test off).")
    check_comparable(baseline, "baseline", "baseline")
    check_comparable(current, "current run", "current run")
    b_rows, b_targets, b_cells = _grid(baseline)
    c_rows, c_targets, c_cells = _grid(current)
    rows = b_rows + [r for r in c_rows if r not in b_rows]
    targets = b_targets + [t for t in c_targets if t not in b_targets]
    cells = []
    for kind, model in rows:
        for target in targets:
            key = (kind, model, target)
            if key not in b_cells and key not in c_cells:
                continue
            cells.append(_compare_cell(key, key in b_cells, b_cells.get(key), key in c_cells, c_cells.get(key),
                                       baseline["metrics"].get(target), current["metrics"].get(target),
                                       float(tolerance), float(z)))
    exp = {"baseline": baseline.get("experiment"), "current": current.get("experiment")}
    notes = []
    if exp["baseline"] != exp["current"]:
        notes.append(f"the baseline is experiment {exp['baseline']!r}, the current run {exp['current']!r}")
    if not cells:
        notes.append("no cells to compare: both runs are empty")
    return CheckResult(cells=cells, tolerance=float(tolerance), z=float(z), experiment=exp, notes=notes)


def _compare_cell(key, in_base: bool, b_cell, in_cur: bool, c_cell, b_metric, c_metric,
                  tolerance: float, z: float) -> dict:
    kind, model, target = key
    b, b_se = _value(b_cell)
    c, c_se = _value(c_cell)
    out = {"model": model, "kind": kind, "target": target, "metric": c_metric or b_metric,
           "baseline_metric": b_metric, "baseline": b, "current": c, "baseline_stderr": b_se, "current_stderr": c_se,
           "delta": None, "margin": None, "threshold": tolerance}
    name = f"{model} / {target}"
    if b is not None and c is not None:
        margin = z * (difference_stderr(c_se, b_se) or 0.0)
        out.update(delta=c - b, margin=margin, threshold=max(tolerance, margin))
    delta, threshold = out["delta"], out["threshold"]
    if not in_base:
        status, msg = "new", f"{name}: new cell (not in the baseline)" + (
            f", {three_decimals(c)}" if c is not None else ", not scored")
    elif not in_cur or c is None:
        if b is None:
            status, msg = "unscored", f"{name}: not scored in the baseline nor now"
        else:
            why = "absent from the current run" if not in_cur else "not scored in the current run (scoring failed)"
            status, msg = "missing", f"{name}: {why}; baseline {three_decimals(b)}"
    elif b_metric is not None and c_metric is not None and b_metric != c_metric:
        status, msg = "metric_changed", (f"{name}: metric changed from {b_metric!r} (baseline) to {c_metric!r} "
                                         f"(current); the scores are not comparable (current {three_decimals(c)}, "
                                         f"baseline {three_decimals(b)}) - update the baseline")
    elif b is None:
        status, msg = "baseline_missing", f"{name}: not scored in the baseline, {three_decimals(c)} now"
    else:
        detail = (f"current {three_decimals(c)} vs baseline {three_decimals(b)}, Δ {three_decimals(delta, True)}, allowed ±{three_decimals(threshold)} "
                  f"(tolerance {tolerance:g}, {z:g}×combined stderr {three_decimals(out['margin'])})")
        if -delta > threshold + EPS:
            status, msg = "regression", f"{name} regressed: {detail}"
        elif delta > threshold + EPS:
            status, msg = "improved", f"{name} improved: {detail}"
        else:
            status, msg = "pass", f"{name}: {detail}"
    out.update(status=status, message=msg)
    return out


# --- outputs -----------------------------------------------------------------------------------------

def verdict(result: CheckResult) -> str:
    """One line: PASS/FAIL, how many cells failed and why (plain text, no Markdown)."""
    s, n = result.summary, len(result.cells)
    if result.passed:
        extra = ", ".join(f"{s[k]} {k.replace('_', ' ')}" for k in ("improved", "new", "baseline_missing",
                                                                    "unscored") if s[k])
        return f"PASS: {n} cell(s) checked, none regressed" + (f" ({extra})" if extra else "")
    why = ", ".join(f"{s[k]} {k.replace('_', ' ')}" for k in ("regression", "missing", "metric_changed") if s[k])
    return f"FAIL: {len(result.failed)} of {n} cell(s) failed ({why})"


def to_json(result: CheckResult) -> dict:
    """The whole check as a JSON-ready dict (no NaN: None where a value is absent)."""
    return {"passed": result.passed, "verdict": verdict(result), "tolerance": result.tolerance, "z": result.z,
            "experiment": dict(result.experiment), "notes": list(result.notes), "summary": result.summary,
            "failed": [dict(c) for c in result.failed], "cells": [dict(c) for c in result.cells]}


def to_markdown(result: CheckResult, include_passing: bool = True) -> str:
    """A one-line verdict, then a diff table: failing cells first, then improved, then the rest."""
    head = verdict(result)
    word, rest = head.split(": ", 1)
    lines = [f"**{word}**: {rest}", ""]
    settings = f"tolerance {result.tolerance:g}, z {result.z:g}; allowed = max(tolerance, z·√(se_cur² + se_base²))"
    lines.append(f"_{md_escape(settings)}_")
    for note in result.notes:
        lines.append(f"\nNote: {md_escape(note)}")
    order = {"regression": 0, "missing": 0, "metric_changed": 0, "improved": 1}
    rows = sorted(result.cells, key=lambda c: order.get(c["status"], 2))  # stable: grid order within groups
    if not include_passing:
        rows = [c for c in rows if c["status"] != "pass"]
    if rows:
        lines += ["", "| model | target | metric | baseline | current | Δ | allowed | status |",
                  "|---|---|---|---:|---:|---:|---:|---|"]
        for c in rows:
            metric = md_escape(c["metric"] or "—")
            if c["status"] == "metric_changed":
                metric = f"{md_escape(c['baseline_metric'])} → {metric}"
            cells = [md_escape(c["model"]), md_escape(c["target"]), metric,
                     _fmt_cell(c["baseline"], c["baseline_stderr"]), _fmt_cell(c["current"], c["current_stderr"]),
                     three_decimals(c["delta"], True), three_decimals(c["threshold"]) if c["delta"] is not None else "—",
                     MARKS[c["status"]]]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _fmt_cell(value: float | None, se: float | None) -> str:
    if value is None:
        return "—"
    return three_decimals(value) + (f" ± {three_decimals(se)}" if se else "")


_XML_INVALID = re.compile("[^\u0009\u000a\u000d\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _xml(text: Any) -> str:
    """Characters XML 1.0 cannot hold at all (control characters, lone surrogates) replaced by U+FFFD;
    ElementTree escapes the rest (&, <, >, quotes, line breaks in attributes)."""
    return _XML_INVALID.sub("\ufffd", str(text))


def to_junit(result: CheckResult, suite_name: str = "harness check") -> str:
    """JUnit XML: <testsuites><testsuite> with one <testcase classname=MODEL name=TARGET> per cell and a
    <failure> in each failing one; every case's message in its <system-out>. Write it as UTF-8."""
    n, failures = len(result.cells), len(result.failed)
    counts = {"tests": str(n), "failures": str(failures), "errors": "0", "skipped": "0", "time": "0"}
    root = ET.Element("testsuites", {"name": _xml(suite_name), **counts})
    suite = ET.SubElement(root, "testsuite", {"name": _xml(suite_name), **counts})
    props = ET.SubElement(suite, "properties")
    for name, value in (("tolerance", f"{result.tolerance:g}"), ("z", f"{result.z:g}"),
                        ("baseline_experiment", result.experiment.get("baseline")),
                        ("current_experiment", result.experiment.get("current"))):
        ET.SubElement(props, "property", {"name": name, "value": _xml("" if value is None else value)})
    for c in result.cells:
        case = ET.SubElement(suite, "testcase", {"classname": _xml(c["model"]), "name": _xml(c["target"]),
                                                 "time": "0"})
        if c["status"] in FAILING:
            failure = ET.SubElement(case, "failure", {"message": _xml(c["message"]), "type": c["status"]})
            failure.text = _xml(json.dumps({k: c[k] for k in ("model", "target", "metric", "baseline", "current",
                                                              "delta", "threshold", "status")}, ensure_ascii=False))
        out = ET.SubElement(case, "system-out")
        out.text = _xml(f"[{c['status']}] {c['message']}")
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
