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
    """``values[target]``: array of shape (1 + n_sources, n_docs), row 0 the base model, then the
    sources in order; the documents every model was scored on, in doc-id order.

    ``skipped`` names targets left out, with why (a missing log, no common documents).
    ``not_mean`` names targets whose metric is not the mean of its per-sample values (an F1 or MCC,
    say): paired comparisons still work on them, resampled means would not be the reported metric.
    """

    sources: list[str]
    values: dict[str, np.ndarray] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    not_mean: dict[str, str] = field(default_factory=dict)
    # Targets whose metric is an aggregate of per-document items (lm-eval's f1 or mcc over
    # (gold, prediction) pairs): the aggregation's name, and (when the logs hold them) the items of
    # every model on the same documents, for a paired bootstrap of the aggregate itself.
    items: dict[str, list[list]] = field(default_factory=dict)
    aggregations: dict[str, str] = field(default_factory=dict)

    @property
    def targets(self) -> list[str]:
        return list(self.values)

    def cell_means(self, resample: dict[str, np.ndarray] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Base scores (n_targets,) and adapter scores (n_sources, n_targets), optionally on resampled
        document indices ``resample[target]`` (the same documents for every model: pairing kept)."""
        base, adapters = [], []
        for target, y in self.values.items():
            y = y[:, resample[target]] if resample is not None else y
            means = y.mean(axis=1)
            base.append(means[0])
            adapters.append(means[1:])
        return np.array(base), np.array(adapters).T


def collect(samples: dict[str, dict[str, list[dict]]], sources: list[str], targets: list[str],
            cells: dict[str, dict[str, dict | None]] | None = None) -> Outcomes:
    """Align ``samples[model][target]`` (records with ``doc_id`` and ``correct``) across models.

    When ``cells`` (model -> target -> {"value"}) is given, a target whose cell values are not the
    mean of its per-sample values is listed in ``not_mean``.
    """
    out = Outcomes(sources=list(sources))
    models = [BASE, *sources]
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
