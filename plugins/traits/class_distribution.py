"""Class distribution of a source's training labels: how many classes, how even, how skewed."""

from __future__ import annotations

import math
from collections import Counter

from harness.hookspecs import hookimpl
from harness.traits import SourceData, Trait


class ClassDistribution(Trait):
    """Label entropy (bits), normalised entropy, majority share and class count of a source.

    Over the task's declared label set, so a class that never occurs still counts towards the
    maximum entropy. Generation sources have no classes: every output is ``None``.
    """

    name = "class_distribution"
    description = "Label entropy, normalised entropy, majority share and class count of the training data."
    outputs = ("class_entropy", "class_entropy_normalised", "majority_share", "class_count")

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
                "class_count": float(len(counts))}


@hookimpl
def register_traits(register):
    register(ClassDistribution)
