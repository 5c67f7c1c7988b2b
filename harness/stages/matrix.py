"""The transfer matrix: every source's score on every target, the base scores, and the change.

With several training seeds per source every replicate's cell is read, and a source's score is the
mean over its replicates, with the between-seed spread beside it (:func:`seed_mean`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

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
    # source -> target -> {"value", "stderr", ...}: the mean over the source's replicates, and with more
    # than one replicate also "seeds", "seed_values", "seed_sd", "seed_se" (seed_mean)
    scores: dict[str, dict[str, dict | None]]
    transfer: dict[str, dict[str, float | None]]  # source -> target -> mean score - base
    replicates: dict[str, dict[str, dict | None]] = field(default_factory=dict)  # replicate model -> target -> cell
    # source -> its replicate model names, and replicate model -> its training seed (None: brought weights)
    models: dict[str, list[str]] = field(default_factory=dict)
    seeds: dict[str, int | None] = field(default_factory=dict)

    @property
    def replicated(self) -> bool:
        """Whether some source has more than one replicate (training seed)."""
        return any(len(m) > 1 for m in self.models.values())

    def array(self) -> np.ndarray:
        """Transfer as an array of shape (n_sources, n_targets); NaN where a cell is missing."""
        return np.array([[np.nan if self.transfer[s][t] is None else self.transfer[s][t]
                          for t in self.targets] for s in self.sources], dtype=float).reshape(len(self.sources), len(self.targets))  # (0, n) without sources


def seed_mean(cells: list[dict | None], seeds: list[int | None]) -> dict | None:
    """One source's cell from its replicates' cells (``seeds[i]`` trained ``cells[i]``).

    One replicate: its cell as it is. Several: ``value`` the mean over the replicates that were
    scored (a failed one, None, is left out and named in ``seeds_missing``); ``stderr`` their mean
    lm-eval stderr (the document part: the replicates are scored on the same documents, so their
    document errors are not independent and averaging them does not shrink it); ``seeds`` and
    ``seed_values`` the replicates it is over; ``seed_sd`` their sample SD (ddof 1) and ``seed_se``
    = seed_sd / sqrt(n_seeds), the between-seed standard error of the mean (None below 2 seeds).
    None when no replicate was scored.
    """
    if len(cells) == 1:
        return cells[0]
    scored = [(s, c) for s, c in zip(seeds, cells) if c is not None]
    if not scored:
        return None
    values = np.array([c["value"] for _, c in scored], dtype=float)
    errors = [c["stderr"] for _, c in scored if c.get("stderr") is not None]
    sd = float(np.std(values, ddof=1)) if len(values) > 1 else None
    first = scored[0][1]
    return {"value": float(values.mean()), "stderr": float(np.mean(errors)) if errors else None,
            "n": first.get("n"), "aggregation": first.get("aggregation", "mean"),
            "seeds": [s for s, _ in scored], "seed_values": [float(v) for v in values],
            "n_seeds": len(scored), "seeds_missing": [s for s, c in zip(seeds, cells) if c is None],
            "seed_sd": sd, "seed_se": sd / np.sqrt(len(values)) if sd is not None else None}


def assemble(plan: Plan, cache: Cache) -> Matrix:
    """Read every planned cell from the cache; cells that failed stay ``None``."""
    sources = plan.sources
    targets = list(plan.target_configs)
    cells: dict[tuple[str, str], dict | None] = {}
    for cell in plan.cells:
        data = read_cell(cache, cell.key)
        cells[cell.model, cell.target] = ({"value": data["value"], "stderr": data["stderr"], "n": data.get("n"),
                                           "aggregation": data.get("aggregation", "mean")} if data else None)
    base = {t: cells[BASE, t] for t in targets}
    models = {s: [a.model for a in plan.replicates(s)] for s in sources}
    seeds = {a.model: a.seed for a in plan.adapters}
    replicates = {m: {t: cells[m, t] for t in targets} for s in sources for m in models[s]}
    scores = {s: {t: seed_mean([cells[m, t] for m in models[s]], [seeds[m] for m in models[s]]) for t in targets}
              for s in sources}
    # Rounded: 0.9 - 0.5 should read 0.4 in matrix.csv, not 0.40000000000000002.
    transfer = {s: {t: (round(scores[s][t]["value"] - base[t]["value"], 12)
                        if scores[s][t] is not None and base[t] is not None else None)
                    for t in targets} for s in sources}
    metrics = {t: plan.tasks[t].metric() for t in targets}
    return Matrix(sources, targets, metrics, base, scores, transfer, replicates, models, seeds)
