"""The trait-extractor contract, and running every trait of a registry.

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
import traceback
from dataclasses import dataclass, field
from typing import Any, ClassVar

from harness.params import Parameterised
from harness.tasks import Example, Task


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


@dataclass
class TraitResults:
    """Everything the traits stage produced."""

    values: dict[str, dict[str, float | None]] = field(default_factory=dict)  # source -> name -> value
    pairs: dict[str, dict[str, dict[str, float | None]]] = field(default_factory=dict)  # name -> source -> target
    behaviour: dict[str, dict] = field(default_factory=dict)  # trait -> details
    failures: list[dict] = field(default_factory=list)
    scopes: dict[str, str] = field(default_factory=dict)  # output name in `values` -> "source" | "behaviour"


def source_trait_key(trait: Trait, task: Task, n_examples: int, model_key: str) -> str:
    """Cache key of a source trait's values: the trait and its parameters, the task's data, and the
    base model when the trait looks at its tokenizer or weights."""
    from harness.cache import stable_hash

    return stable_hash({"trait": trait.name, "version": trait.version, "params": trait.get_params(),
                        "task": task.fingerprint(), "n": n_examples,
                        "model": model_key if trait.requires & {"tokenizer", "base_model"} else None})


def pair_trait_key(trait: Trait, adapters, target_configs: dict[str, dict], tasks: dict[str, Task],
                   model_key: str | None) -> str:
    """Cache key of a pair trait's whole table: every source and every target enter it, since a
    pair value may depend on all of them (tf-idf weights come from the whole corpus). A target is
    its task and its written test file, whose name carries the data's hash."""
    from pathlib import Path

    from harness.cache import stable_hash

    return stable_hash({"trait": trait.name, "version": trait.version, "params": trait.get_params(),
                        "sources": [[job.source, job.task.fingerprint(), job.n_train] for job in adapters],
                        "targets": [[name, tasks[name].fingerprint(),
                                     Path(config.get("dataset_kwargs", {}).get("data_files", {}).get("test", "")).name]
                                    for name, config in target_configs.items()],
                        "model": model_key if trait.requires & {"tokenizer", "base_model"} else None})


def trait_is_cached(trait: Trait, plan, cache) -> bool:
    """Whether every value ``trait`` would compute for ``plan`` is already in ``cache``."""
    if cache is None:
        return False
    model_key = plan.model.key if plan.model else None
    if trait.scope == "source":
        return all(cache.has("traits", source_trait_key(trait, job.task, job.n_train, model_key))
                   for job in plan.adapters)
    if trait.scope == "pair":
        return cache.has("traits", pair_trait_key(trait, plan.adapters, plan.target_configs, plan.tasks, model_key))
    return False  # behaviour traits read the evaluation logs each run


def _failure(trait: Trait, source: str | None, exc: BaseException) -> dict:
    out = {"stage": "traits", "plugin": trait.name, "error": f"{type(exc).__name__}: {exc}",
           "traceback": traceback.format_exc(limit=5)}
    if source is not None:
        out["source"] = source
    return out


def compute_all(registry, plan, catalog, tokenizer, model=None, samples: BehaviourData | None = None,
                cache=None, scopes: tuple[str, ...] = ("source", "pair", "behaviour")) -> TraitResults:
    """Run every trait of ``registry`` on the plan's sources (and targets, and samples).

    ``model`` is only needed when a trait requires the base model; ``samples`` only for behaviour
    traits (skipped when None, as in ``harness traits``, which fine-tunes nothing). With a ``cache``,
    source-scope results are stored under a key of the trait, its parameters and the source's data.
    """
    out = TraitResults()
    extractors = [catalog.get("trait", use.name).obj(**use.params) for use in registry.traits]
    sources = [SourceData(job.source, job.task, job.task.examples("train", job.n_train), tokenizer, model)
               for job in plan.adapters]
    for src in sources:
        out.values[src.name] = {}

    for trait in extractors:
        if trait.scope not in scopes:
            continue
        if trait.scope == "source":
            for src in sources:
                key = source_trait_key(trait, src.task, len(src.examples), plan.model.key if plan.model else None)
                try:
                    row = _cached(cache, key, "values.json",
                                  lambda src=src: {k: checked(v, f"output {k!r}") for k, v in trait.compute(src).items()})
                    out.values[src.name].update(row)
                    out.scopes.update(dict.fromkeys(row, "source"))
                except Exception as exc:
                    out.failures.append(_failure(trait, src.name, exc))
        elif trait.scope == "pair":
            key = pair_trait_key(trait, plan.adapters, plan.target_configs, plan.tasks,
                                 plan.model.key if plan.model else None)

            def pairs():
                targets = [TargetData(name, task, _target_examples(task, plan.target_configs[name]))
                           for name, task in plan.tasks.items()]
                return trait.compute_pairs(sources, targets)

            try:
                result = _cached(cache, key, "pairs.json", pairs)
                out.pairs.update({name: {s: {t: checked(v, f"{name}[{s}][{t}]") for t, v in row.items()}
                                         for s, row in by_source.items()} for name, by_source in result.items()})
            except Exception as exc:
                out.failures.append(_failure(trait, None, exc))
        elif trait.scope == "behaviour" and samples is not None:
            try:
                details, summary = trait.compute_behaviour(samples)
                out.behaviour[trait.name] = details
                for s, row in summary.items():
                    out.values.setdefault(s, {}).update({k: checked(v, f"output {k!r}") for k, v in row.items()})
                    out.scopes.update(dict.fromkeys(row, "behaviour"))
            except Exception as exc:
                out.failures.append(_failure(trait, None, exc))
    return out


def _cached(cache, key: str, filename: str, compute):
    """The JSON in the cache's ``traits/key/filename``, or ``compute()``'s result, filed there."""
    import json

    from harness.cache import write_json_atomic

    if cache is None:
        return compute()
    if cache.has("traits", key):
        return json.loads((cache.path("traits", key) / filename).read_text())
    value = compute()
    with cache.entry("traits", key) as tmp:
        write_json_atomic(tmp / filename, value)
    return value


def _target_examples(task: Task, config: dict) -> list[Example]:
    """The test examples a target is scored on: as many as its written data file holds."""
    from pathlib import Path

    path = config.get("dataset_kwargs", {}).get("data_files", {}).get("test")
    if not path or not Path(path).is_file():
        return []
    with open(path) as fh:
        n = sum(1 for line in fh if line.strip())
    return task.examples("test", n)
