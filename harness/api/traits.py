"""The trait-extractor contract.

Three scopes of trait, each a base class with the one method its scope calls:

* :class:`SourceTrait` (``"source"``): numbers about one source dataset, from ``compute``;
* :class:`PairTrait` (``"pair"``): a number per (source, target), e.g. surface similarity, from
  ``compute_pairs``;
* :class:`BehaviourTrait` (``"behaviour"``): what fine-tuning did to the model's outputs, from the
  per-sample evaluation logs, via ``compute_behaviour`` (structured details plus per-source
  summary numbers).

The method is abstract, so a subclass that lacks it cannot be instantiated. The plain
:class:`Trait`, which sets ``scope`` by hand, still works for plugins written before these classes.

A trait declares what it ``requires`` (``source_data``, ``tokenizer``, ``base_model``, ``targets``,
``eval_samples``, ``adapter_weights``) so its result can be cached under exactly those inputs. ``None`` means "does not
apply"; it stays ``null`` in results and is never silently turned into a number. A trait that
raises, or returns something else than a finite number or ``None``, is recorded as a failure naming
the plugin and the source; the other traits go on.
"""

from __future__ import annotations

import abc
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from harness.api.params import Parameterised
from harness.api.tasks import Example, Task


@dataclass
class SourceData:
    """What a source-scope trait may look at: the task, its training examples, the base model's
    tokenizer and (only when required) the base model itself.

    ``adapters`` (given to traits that require ``adapter_weights``): the folders of the source's
    LoRA adapters, one per training seed, each holding ``adapter_config.json`` and
    ``adapter_model.safetensors`` (peft's layout); a folder that does not exist yet (not trained)
    is left out. A source brought as weights without its task has ``task`` None and no examples.
    """

    name: str
    task: Task | None
    examples: list[Example]
    tokenizer: Any = None
    model: Any = None
    adapters: list[Path] = field(default_factory=list)


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


SCOPES = ("source", "pair", "behaviour")
#: The inputs the harness provides, which a trait's ``requires`` names from.
REQUIREMENTS = frozenset({"source_data", "tokenizer", "base_model", "targets", "eval_samples", "adapter_weights"})


class Trait(Parameterised):
    """Base class of trait extractors. Parameters go in ``__init__``, stored under their names.

    Derive from :class:`SourceTrait`, :class:`PairTrait` or :class:`BehaviourTrait`, which set
    ``scope`` and refuse to build without the scope's method; a direct subclass (plugins older
    than those classes) sets ``scope`` itself and still works.
    """

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


class SourceTrait(Trait, abc.ABC):
    """A trait of one source dataset: ``compute(source)`` gives one value per name in ``outputs``."""

    scope: ClassVar[str] = "source"

    @abc.abstractmethod
    def compute(self, source: SourceData) -> dict[str, float | None]:
        """``{output: value}`` for each name in ``outputs``, a finite number or ``None``."""


class PairTrait(Trait, abc.ABC):
    """A trait of each (source, target) cell, computed over all sources and targets at once (a
    value may depend on all of them, as tf-idf weights do)."""

    scope: ClassVar[str] = "pair"
    requires: ClassVar[frozenset[str]] = frozenset({"source_data", "targets"})

    @abc.abstractmethod
    def compute_pairs(self, sources: list[SourceData],
                      targets: list[TargetData]) -> dict[str, dict[str, dict[str, float | None]]]:
        """``{output: {source name: {target name: value}}}``, each value a finite number or ``None``."""


class BehaviourTrait(Trait, abc.ABC):
    """A trait of what fine-tuning did to the model's outputs, read from the per-sample logs."""

    scope: ClassVar[str] = "behaviour"
    requires: ClassVar[frozenset[str]] = frozenset({"eval_samples"})

    @abc.abstractmethod
    def compute_behaviour(self, data: BehaviourData) -> tuple[dict, dict[str, dict[str, float | None]]]:
        """``(details, summary)``: JSON-serialisable details, and ``{source: {output: value}}``
        for every source of ``data``, each value a finite number or ``None``."""


#: The scope each contract class stands for, in the order a trait's bases are searched.
SCOPE_CLASSES: dict[str, type[Trait]] = {"source": SourceTrait, "pair": PairTrait, "behaviour": BehaviourTrait}


def scope_class(cls: type) -> type[Trait] | None:
    """The scope class (:class:`SourceTrait`, ...) ``cls`` derives from; ``None`` for a plain
    :class:`Trait`. A class deriving from two of them is an error, since it has two scopes."""
    found = [base for base in SCOPE_CLASSES.values() if issubclass(cls, base)]
    if len(found) > 1:
        raise TypeError(f"{cls.__qualname__} derives from {' and '.join(b.__name__ for b in found)}; "
                        "a trait has one scope, so derive from one of them")
    return found[0] if found else None


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
