"""The transfer matrix: every source's score on every target, the base scores, and the change."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from harness.cache.entries import read_cell
from harness.cache.store import Cache
from harness.config.registry import BASE
from harness.stages.plan import Plan


@dataclass
class Matrix:
    sources: list[str]
    targets: list[str]
    metrics: dict[str, str]  # target -> lm-eval metric key
    base: dict[str, dict | None]  # target -> {"value", "stderr", "n", "aggregation"}; None where scoring failed
    scores: dict[str, dict[str, dict | None]]  # source -> target -> {"value", "stderr"}
    transfer: dict[str, dict[str, float | None]]  # source -> target -> adapter - base

    def array(self) -> np.ndarray:
        """Transfer as an array of shape (n_sources, n_targets); NaN where a cell is missing."""
        return np.array([[np.nan if self.transfer[s][t] is None else self.transfer[s][t]
                          for t in self.targets] for s in self.sources], dtype=float).reshape(len(self.sources), len(self.targets))  # (0, n) without sources


def assemble(plan: Plan, cache: Cache) -> Matrix:
    """Read every planned cell from the cache; cells that failed stay ``None``."""
    sources = [a.source for a in plan.adapters]
    targets = list(plan.target_configs)
    cells: dict[tuple[str, str], dict | None] = {}
    for cell in plan.cells:
        data = read_cell(cache, cell.key)
        cells[cell.model, cell.target] = ({"value": data["value"], "stderr": data["stderr"], "n": data.get("n"),
                                           "aggregation": data.get("aggregation", "mean")} if data else None)
    base = {t: cells[BASE, t] for t in targets}
    scores = {s: {t: cells[s, t] for t in targets} for s in sources}
    # Rounded: 0.9 - 0.5 should read 0.4 in matrix.csv, not 0.40000000000000002.
    transfer = {s: {t: (round(scores[s][t]["value"] - base[t]["value"], 12)
                        if scores[s][t] is not None and base[t] is not None else None)
                    for t in targets} for s in sources}
    metrics = {t: plan.tasks[t].metric() for t in targets}
    return Matrix(sources, targets, metrics, base, scores, transfer)
