"""The trait-extractor contract.

Three scopes of trait:

* ``"source"``: numbers about one source dataset, from :meth:`Trait.compute`;
* ``"pair"``: a number per (source, target), e.g. surface similarity, from :meth:`Trait.compute_pairs`;
* ``"behaviour"``: what fine-tuning did to the model's outputs, from the per-sample evaluation
  logs, via :meth:`Trait.compute_behaviour` (structured details plus per-source summary numbers).

A trait declares what it ``requires`` (``source_data``, ``tokenizer``, ``base_model``, ``targets``,
``eval_samples``) so its result can be cached under exactly those inputs. ``None`` means "does not
apply"; it stays ``null`` in results and is never silently turned into a number. A trait that
raises, or returns something else than a finite number or ``None``, is recorded as a failure naming
the plugin and the source; the other traits go on.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, ClassVar

from harness.api.params import Parameterised
from harness.api.tasks import Example, Task


@dataclass
class SourceData:
    """What a source-scope trait may look at: the task, its training examples, the base model's
    tokenizer and (only when required) the base model itself."""

    name: str
    task: Task
    examples: list[Example]
    tokenizer: Any = None
    model: Any = None


@dataclass
class TargetData:
    """A target task and its test examples (as many as the target's evaluation limit)."""

    name: str
    task: Task
    examples: list[Example]


@dataclass
class BehaviourData:
    """Per-sample evaluation records: ``samples[model][target]``, model being "base" or a source."""

    sources: list[str]
    targets: dict[str, Task]
    samples: dict[str, dict[str, list[dict]]] = field(default_factory=dict)


class Trait(Parameterised):
    """Base class of trait extractors. Parameters go in ``__init__``, stored under their names."""

    name: ClassVar[str]
    description: ClassVar[str] = ""
    scope: ClassVar[str] = "source"  # "source" | "pair" | "behaviour"
    requires: ClassVar[frozenset[str]] = frozenset({"source_data"})
    outputs: ClassVar[tuple[str, ...]] = ()
    version: ClassVar[int] = 1

    def compute(self, source: SourceData) -> dict[str, float | None]:
        raise NotImplementedError

    def compute_pairs(self, sources: list[SourceData], targets: list[TargetData]) -> dict[str, dict[str, dict[str, float | None]]]:
        raise NotImplementedError

    def compute_behaviour(self, data: BehaviourData) -> tuple[dict, dict[str, dict[str, float | None]]]:
        raise NotImplementedError


class TraitValueError(TypeError):
    pass


def checked(value: Any, where: str) -> float | None:
    """A finite float or None; anything else (NaN, inf, strings) is an error naming ``where``."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        if hasattr(value, "item") and not isinstance(value, bool):  # numpy scalars
            return checked(value.item(), where)
        raise TraitValueError(f"{where} is {value!r}, not a finite number or None")
    return float(value)
