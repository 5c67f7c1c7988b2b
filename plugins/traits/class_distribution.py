"""Class distribution of a source's training labels: how many classes, how even, how skewed."""

from __future__ import annotations

import math
from collections import Counter

from harness.api import SourceData, SourceTrait, hookimpl


class ClassDistribution(SourceTrait):
    """Label entropy, normalised entropy, majority share, class count and imbalance ratio.

    Let ``n`` be the number of training examples that carry a label, ``c_i`` the number of them
    with label ``i`` and ``p_i = c_i / n``; let ``K`` be the size of the task's declared label set
    (``len(task.labels)``), so a class that never occurs still counts towards the maximum entropy.

    Outputs
    -------
    class_entropy
        Shannon entropy of the observed labels in bits: ``-sum_i p_i * log2(p_i)`` over classes
        with ``c_i > 0``.
    class_entropy_normalised
        ``class_entropy / log2(K)``; ``0.0`` when ``K == 1``.
    majority_share
        ``max_i c_i / n``: the share of the most frequent class.
    class_count
        The number of distinct labels that occur (``c_i > 0``), not ``K``.
    imbalance_ratio
        ``max_i c_i / min_{i: c_i > 0} c_i``: largest class count over smallest non-zero class
        count; ``1.0`` when every occurring class is equally frequent or only one occurs.

    Every output is ``None`` for a generation source (no declared labels) or when no example
    carries a label.
    """

    name = "class_distribution"
    description = ("Label entropy, normalised entropy, majority share, class count and imbalance ratio "
                   "of the training data.")
    outputs = ("class_entropy", "class_entropy_normalised", "majority_share", "class_count",
               "imbalance_ratio")
    version = 2

    def compute(self, source: SourceData) -> dict[str, float | None]:
        labels = [ex.label for ex in source.examples if ex.label is not None]
        if not labels or not source.task.labels:
            return dict.fromkeys(self.outputs)
        counts = Counter(labels)
        n = len(labels)
        shares = [c / n for c in counts.values()]
        entropy = -sum(p * math.log2(p) for p in shares if p > 0)
        k = len(source.task.labels)
        return {"class_entropy": entropy,
                "class_entropy_normalised": entropy / math.log2(k) if k > 1 else 0.0,
                "majority_share": max(shares),
                "class_count": float(len(counts)),
                "imbalance_ratio": max(counts.values()) / min(counts.values())}


@hookimpl
def register_traits(register):
    register(ClassDistribution)
