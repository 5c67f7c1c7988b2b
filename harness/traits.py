"""The trait-extractor contract: numbers that describe a source dataset.

A trait plugin declares what it ``requires`` (so the cache can key results by exactly those
inputs) and returns a mapping of output name to number from :meth:`Trait.compute`. ``None`` means
"does not apply to this source" (for example class entropy of a generation task); it is kept as
``null`` in results and never silently turned into a number.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from harness.tasks import Example, Task


@dataclass
class SourceData:
    """What a trait may look at for one source: the task, its training examples, a tokenizer."""

    name: str
    task: Task
    examples: list[Example]
    tokenizer: Any = None  # a transformers tokenizer of the base model, when required


class Trait:
    """Base class of trait extractors. Subclasses set ``name``, ``outputs`` and ``compute``."""

    name: ClassVar[str]
    description: ClassVar[str] = ""
    requires: ClassVar[frozenset[str]] = frozenset({"source_data"})  # also: "tokenizer"
    outputs: ClassVar[tuple[str, ...]] = ()
    version: ClassVar[int] = 1

    def compute(self, source: SourceData) -> dict[str, float | None]:
        raise NotImplementedError


def compute_all(registry, plan, catalog, tokenizer) -> tuple[dict[str, dict[str, float | None]], list[dict]]:
    """Every registered trait of the registry on every source: (source -> name -> value, failures).

    A trait that raises, or returns something that is not a finite number or ``None``, is recorded
    as a failure naming the plugin and the source; the other traits go on.
    """
    import math
    import traceback

    values: dict[str, dict[str, float | None]] = {}
    failures: list[dict] = []
    extractors = [catalog.get("trait", use.name).obj(**use.params) for use in registry.traits]
    for job in plan.adapters:
        source = SourceData(job.source, job.task, job.task.examples("train", job.n_train), tokenizer)
        row: dict[str, float | None] = {}
        for trait in extractors:
            try:
                out = trait.compute(source)
                for key, value in out.items():
                    if value is not None and not (isinstance(value, (int, float)) and math.isfinite(value)):
                        raise TypeError(f"output {key!r} is {value!r}, not a finite number or None")
                    row[key] = None if value is None else float(value)
            except Exception as exc:
                failures.append({"stage": "traits", "plugin": trait.name, "source": job.source,
                                 "error": f"{type(exc).__name__}: {exc}",
                                 "traceback": traceback.format_exc(limit=5)})
        values[job.source] = row
    return values, failures
