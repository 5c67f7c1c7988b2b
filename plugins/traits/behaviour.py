"""What fine-tuning did to the model's outputs, read from the per-sample evaluation logs.

Accuracy says *whether* an adapter helped or hurt a target; this says *how* its answers moved:
towards one label, away from the gold label distribution, longer or shorter, more or less often
in the answer format. Base model and adapters are described alike, so every adapter number sits
next to the base model's.
"""

from __future__ import annotations

import math
import statistics

from harness.api import BehaviourData, BehaviourTrait, answered, hookimpl, label_index, output_length, predicted_index

BASE = "base"


def tv_distance(p: list[float], q: list[float]) -> float:
    """Total-variation distance of two distributions over the same labels: half the L1 distance."""
    return 0.5 * sum(abs(a - b) for a, b in zip(p, q, strict=True))


def classification_stats(records: list[dict], labels: tuple[str, ...] | list[str]) -> dict:
    """Confusion matrix and label distributions of one model on one classification target.

    ``confusion[g][p]`` counts samples of gold label ``g`` predicted as ``p``, both in the order of
    ``labels``. Records whose gold or prediction is not a valid label index are counted in
    ``invalid`` and left out of everything else.
    """
    k = len(labels)
    confusion = [[0] * k for _ in range(k)]
    invalid = 0
    for record in records:
        gold, pred = label_index(record.get("target"), k), predicted_index(record, k)
        if gold is None or pred is None:
            invalid += 1
            continue
        confusion[gold][pred] += 1
    n = sum(map(sum, confusion))
    out: dict = {"n": n, "invalid": invalid, "confusion": confusion}
    if n == 0:
        out.update(dict.fromkeys(("accuracy", "gold_distribution", "predicted_distribution",
                                  "tv_from_gold", "majority_label", "majority_label_name",
                                  "majority_bias")))
        return out
    gold_dist = [sum(row) / n for row in confusion]
    pred_dist = [sum(confusion[g][p] for g in range(k)) / n for p in range(k)]
    majority = max(range(k), key=lambda p: (pred_dist[p], -p))  # ties: the first label
    out.update({"accuracy": sum(confusion[i][i] for i in range(k)) / n,
                "gold_distribution": gold_dist,
                "predicted_distribution": pred_dist,
                "tv_from_gold": tv_distance(pred_dist, gold_dist),
                "majority_label": majority,
                "majority_label_name": labels[majority],
                "majority_bias": pred_dist[majority] - gold_dist[majority]})
    return out


def length_bin_edges(lengths: list[int], bins: int) -> list[int]:
    """Integer bin edges ``0, w, 2w, ...`` of equal width ``w``, the fewest (at most ``bins``) that
    cover ``0 .. max(lengths)``; bins are half-open ``[edge_i, edge_i+1)``."""
    top = max(lengths, default=0) + 1
    width = max(1, math.ceil(top / bins))
    return [i * width for i in range(math.ceil(top / width) + 1)]


def histogram(values: list[int], edges: list[int]) -> list[int]:
    """Counts of ``values`` in the half-open bins ``[edges[i], edges[i+1])``."""
    counts = [0] * (len(edges) - 1)
    for v in values:
        for i in range(len(counts)):
            if edges[i] <= v < edges[i + 1]:
                counts[i] += 1
                break
    return counts


def generation_stats(records: list[dict], edges: list[int]) -> dict:
    """Output length distribution and answer-format adherence of one model on one generation target."""
    lengths = [output_length(r) for r in records]
    n = len(records)
    return {"n": n,
            "output_length_mean": statistics.fmean(lengths) if lengths else None,
            "output_length_median": float(statistics.median(lengths)) if lengths else None,
            "output_length_max": max(lengths, default=None),
            "output_length_histogram": histogram(lengths, edges),
            "format_adherence": sum(answered(r.get("prediction")) for r in records) / n if n else None}


def _mean(values: list[float]) -> float | None:
    return statistics.fmean(values) if values else None


class Behaviour(BehaviourTrait):
    """How each adapter's predictions differ from the base model's, per target and on the whole.

    Read from the per-sample evaluation records of the base model (``"base"``) and of every
    adapter (named by its source) on every target. A (model, target) cell without records (its
    evaluation failed) is skipped and listed under ``missing``.

    Details (``results.json["behaviour"]["behaviour"]``)
    ---------------------------------------------------
    ``models``: ``["base", *sources]``. ``missing``: ``[{"model", "target"}]``. ``targets``: per
    target name, ``kind``, ``missing`` (model names) and ``models`` (model name -> statistics):

    * classification (``kind`` ``"multiple_choice"``), also ``labels``; per model ``n``,
      ``invalid``, ``confusion`` (gold × predicted counts, label order = ``labels``),
      ``accuracy``, ``gold_distribution``, ``predicted_distribution``, ``tv_from_gold``,
      ``tv_from_base`` (``None`` when the base cell is missing; 0 for the base model),
      ``majority_label`` (index of the most-predicted label, ties to the first),
      ``majority_label_name`` and ``majority_bias``: the predicted share of that label minus its
      gold share. Total-variation distance is ``0.5 * sum_i |p_i - q_i|``.
    * generation, also ``length_bin_edges`` (integer edges shared by every model of the target,
      half-open bins, at most ``length_bins`` of them); per model ``n``, ``output_length_mean``,
      ``output_length_median``, ``output_length_max`` (lengths are whitespace tokens of the raw
      output), ``output_length_histogram`` (counts per bin) and ``format_adherence``: the share
      of samples whose extracted answer is non-empty (not ``None``, ``""`` or lm-eval's
      ``"[invalid]"`` fallback).

    Outputs (per source, means over the targets where both the adapter and base cells exist;
    ``None`` when there is no such target)
    -------
    behaviour_tv_from_base
        Classification: TV distance of the adapter's predicted label distribution from the base
        model's.
    behaviour_majority_bias_shift
        Classification: adapter ``majority_bias`` minus base ``majority_bias``.
    behaviour_output_length_shift
        Generation: adapter mean output length minus base mean output length (whitespace tokens).
    behaviour_format_adherence_shift
        Generation: adapter format adherence minus base format adherence.
    """

    name = "behaviour"
    description = ("Prediction shifts of each adapter against the base model: label distribution (TV distance), "
                   "majority-label bias, output length and answer-format adherence.")
    requires = frozenset({"eval_samples"})
    outputs = ("behaviour_tv_from_base", "behaviour_majority_bias_shift",
               "behaviour_output_length_shift", "behaviour_format_adherence_shift")

    def __init__(self, length_bins: int = 10):
        self.length_bins = length_bins

    def compute_behaviour(self, data: BehaviourData) -> tuple[dict, dict[str, dict[str, float | None]]]:
        models = [BASE] + [s for s in data.sources if s != BASE]
        details: dict = {"models": models, "targets": {}, "missing": []}
        for target, task in data.targets.items():
            cells = {m: data.samples.get(m, {}).get(target) for m in models}
            missing = [m for m, recs in cells.items() if not recs]
            details["missing"].extend({"model": m, "target": target} for m in missing)
            present = {m: recs for m, recs in cells.items() if recs}
            entry: dict = {"kind": task.kind, "missing": missing, "models": {}}
            if task.kind == "multiple_choice" and task.labels:
                entry["labels"] = list(task.labels)
                stats = {m: classification_stats(recs, task.labels) for m, recs in present.items()}
                base_dist = stats.get(BASE, {}).get("predicted_distribution")
                for st in stats.values():
                    dist = st["predicted_distribution"]
                    st["tv_from_base"] = (tv_distance(dist, base_dist)
                                          if dist is not None and base_dist is not None else None)
            elif task.kind == "generation":
                edges = length_bin_edges([output_length(r) for recs in present.values() for r in recs],
                                         self.length_bins)
                entry["length_bin_edges"] = edges
                stats = {m: generation_stats(recs, edges) for m, recs in present.items()}
            else:
                entry["skipped"] = ("n/a: the choices differ per document (no fixed label set), so label shares "
                                    "do not apply" if task.kind == "multiple_choice"
                                    else f"no behaviour statistics for kind {task.kind!r} without labels")
                stats = {}
            entry["models"] = stats
            details["targets"][target] = entry
        return details, {s: self.summarise(details, s) for s in models[1:]}

    def summarise(self, details: dict, source: str) -> dict[str, float | None]:
        """The per-source outputs: means over targets of the adapter's shifts from the base model."""
        tv, bias, length, adherence = [], [], [], []
        for entry in details["targets"].values():
            base, own = entry["models"].get(BASE), entry["models"].get(source)
            if base is None or own is None:
                continue
            if entry["kind"] == "multiple_choice":
                if own.get("tv_from_base") is not None:
                    tv.append(own["tv_from_base"])
                if own.get("majority_bias") is not None and base.get("majority_bias") is not None:
                    bias.append(own["majority_bias"] - base["majority_bias"])
            elif entry["kind"] == "generation":
                if own["output_length_mean"] is not None and base["output_length_mean"] is not None:
                    length.append(own["output_length_mean"] - base["output_length_mean"])
                if own["format_adherence"] is not None and base["format_adherence"] is not None:
                    adherence.append(own["format_adherence"] - base["format_adherence"])
        return {"behaviour_tv_from_base": _mean(tv),
                "behaviour_majority_bias_shift": _mean(bias),
                "behaviour_output_length_shift": _mean(length),
                "behaviour_format_adherence_shift": _mean(adherence)}


@hookimpl
def register_traits(register):
    register(Behaviour)
