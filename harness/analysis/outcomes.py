"""Per-sample outcomes of every model on every target, aligned on document ids.

The statistics of the analysis (bootstrap stability, ordinal normalisation, paired cell tests) all
resample or compare the same documents across models, so they share this one aligned view of the
per-sample logs.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from harness.config.registry import BASE

# lm-eval aggregations that are the mean of the per-sample values: for these a per-sample log can
# be resampled (bootstrap) or compared document by document (paired tests) as it stands.
MEAN_AGGREGATIONS = ("mean", "nanmean")


@dataclass
class Outcomes:
    """``values[target]``: array of shape (1 + n_models, n_docs), row 0 the base model, then every
    replicate model (``models``: one per (source, training seed)) in order; the documents every model
    was scored on, in doc-id order. ``rows[source]``: the indices into ``values[target]`` of that
    source's replicates. With one seed per source ``models == sources`` and ``rows[s] == [1 + i]``.

    ``skipped`` names targets left out, with why (a missing log, no common documents).
    ``not_mean`` names targets whose metric is not the mean of its per-sample values (an F1 or MCC,
    say): paired comparisons still work on them, resampled means would not be the reported metric.
    """

    sources: list[str]
    values: dict[str, np.ndarray] = field(default_factory=dict)
    models: list[str] = field(default_factory=list)  # names of rows 1.. of values[target]
    rows: dict[str, list[int]] = field(default_factory=dict)  # source -> its replicates' rows
    skipped: dict[str, str] = field(default_factory=dict)
    not_mean: dict[str, str] = field(default_factory=dict)
    # Targets whose metric is an aggregate of per-document items (lm-eval's f1 or mcc over
    # (gold, prediction) pairs): the aggregation's name, and (when the logs hold them) the items of
    # every model on the same documents, for a paired bootstrap of the aggregate itself.
    items: dict[str, list[list]] = field(default_factory=dict)
    aggregations: dict[str, str] = field(default_factory=dict)

    def __post_init__(self):
        # One replicate per source unless told otherwise: the layout of every study before seeds.
        self.models = self.models or list(self.sources)
        self.rows = self.rows or {s: [1 + i] for i, s in enumerate(self.sources)}

    @property
    def targets(self) -> list[str]:
        return list(self.values)

    @property
    def replicated(self) -> bool:
        """Whether some source has more than one replicate (training seed)."""
        return any(len(r) > 1 for r in self.rows.values())

    def draw_seeds(self, rng: np.random.Generator) -> dict[str, list[int]]:
        """A bootstrap draw of every source's replicates (with replacement, as many as it has);
        sources of one replicate keep it without drawing, so a single-seed study draws nothing."""
        return {s: (list(rng.choice(r, len(r), replace=True)) if len(r) > 1 else r) for s, r in self.rows.items()}

    def by_source(self, target: str, sources: list[str] | None = None, docs: np.ndarray | None = None,
                  seed_rows: dict[str, list[int]] | None = None) -> np.ndarray:
        """Outcomes of the base and of each source, its replicates averaged document by document.

        Parameters
        ----------
        sources : list of str, optional
            The sources wanted, in this order (default ``self.sources``).
        docs : ndarray of shape (n,), optional
            Document indices (a resample; the same for every model: pairing kept).
        seed_rows : dict, optional
            Source -> the rows to average (a resample of its replicates, :meth:`draw_seeds`).

        Returns
        -------
        ndarray of shape (1 + n_sources, n_docs or n)
        """
        y = self.values[target]
        y = y[:, docs] if docs is not None else y
        rows = seed_rows or self.rows
        picked = [y[0]] + [y[rows[s]].mean(axis=0) for s in (sources or self.sources)]
        return np.array(picked)

    def cell_means(self, resample: dict[str, np.ndarray] | None = None,
                   seed_rows: dict[str, list[int]] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Base scores (n_targets,) and adapter scores (n_sources, n_targets, each the mean over the
        source's replicates), optionally on resampled document indices ``resample[target]`` (the
        same documents for every model: pairing kept) and resampled replicates ``seed_rows``."""
        base, adapters = [], []
        for target in self.values:
            means = self.by_source(target, docs=None if resample is None else resample[target],
                                   seed_rows=seed_rows).mean(axis=1)
            base.append(means[0])
            adapters.append(means[1:])
        return np.array(base), np.array(adapters).T


def collect(samples: dict[str, dict[str, list[dict]]], sources: list[str], targets: list[str],
            cells: dict[str, dict[str, dict | None]] | None = None,
            replicates: dict[str, list[str]] | None = None) -> Outcomes:
    """Align ``samples[model][target]`` (records with ``doc_id`` and ``correct``) across models.

    ``replicates``: source -> its replicate model names (the keys of ``samples``), default each
    source its own one model. When ``cells`` (model -> target -> {"value"}, by replicate model) is
    given, a target whose cell values are not the mean of its per-sample values is listed in ``not_mean``.
    """
    replicates = replicates or {s: [s] for s in sources}
    names = [m for s in sources for m in replicates[s]]
    rows, i = {}, 1
    for s in sources:
        rows[s] = list(range(i, i + len(replicates[s])))
        i += len(replicates[s])
    out = Outcomes(sources=list(sources), models=names, rows=rows)
    models = [BASE, *names]
    for target in targets:
        logs = [samples.get(m, {}).get(target) for m in models]
        missing = [m for m, log in zip(models, logs) if not log]
        if missing:
            out.skipped[target] = f"no per-sample log for {', '.join(missing)}"
            continue
        by_doc = [{rec["doc_id"]: rec["correct"] for rec in log} for log in logs]
        docs = sorted(set.intersection(*(set(d) for d in by_doc)))
        if not docs:
            out.skipped[target] = "the models were scored on no common documents"
            continue
        y = np.array([[d[doc] for doc in docs] for d in by_doc], dtype=float)
        aggregation = next((c.get("aggregation") for c in ((cells or {}).get(m, {}).get(target) for m in models)
                            if c and c.get("aggregation")), "mean")
        if aggregation not in MEAN_AGGREGATIONS:
            out.not_mean[target] = f"its metric is lm-eval's {aggregation} of the documents, not a mean of them"
            out.aggregations[target] = aggregation
            if all("item" in rec for log in logs for rec in log):
                items = [{rec["doc_id"]: rec["item"] for rec in log} for log in logs]
                out.items[target] = [[d[doc] for doc in docs] for d in items]
            out.values[target] = y
            continue
        for model, d in zip(models, by_doc):
            cell = (cells or {}).get(model, {}).get(target)
            mean = float(np.mean(list(d.values())))  # over the model's own log, as lm-eval averaged it
            if cell is not None and abs(mean - cell["value"]) > 1e-9:
                out.not_mean[target] = (f"its metric is not the mean of per-sample values "
                                        f"({model}: {cell['value']:.4f} vs mean {mean:.4f})")
                break
        out.values[target] = y
    return out
