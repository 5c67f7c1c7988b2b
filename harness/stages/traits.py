"""The traits stage: every trait of a registry run on the plan's sources, targets and evaluation
logs, each source and pair value cached under exactly the inputs its trait declares it reads.

The contract a trait plugin implements is :mod:`harness.api.traits`; a trait that raises, or returns
something else than a finite number or ``None``, is recorded as a failure naming the plugin and the
source, and the other traits go on.
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path

from harness.api.lm_eval_tasks import RUN_ARGS, LmEvalTarget
from harness.api.tasks import Example, Task
from harness.api.traits import BehaviourData, SourceData, TargetData, Trait, checked
from harness.cache.entries import TRAIT_PAIRS, TRAIT_VALUES, cached_trait, read_samples
from harness.errors import failure_record
from harness.files import stable_hash


@dataclass
class TraitResults:
    """Everything the traits stage produced."""

    values: dict[str, dict[str, float | None]] = field(default_factory=dict)  # source -> name -> value
    pairs: dict[str, dict[str, dict[str, float | None]]] = field(default_factory=dict)  # name -> source -> target
    behaviour: dict[str, dict] = field(default_factory=dict)  # trait -> details
    failures: list[dict] = field(default_factory=list)
    scopes: dict[str, str] = field(default_factory=dict)  # output name in `values` -> "source" | "behaviour"
    plugins: dict[str, str] = field(default_factory=dict)  # output name (values or pairs) -> the trait plugin
    # What could not be computed, and why (results["skipped"] entries): a source that brings weights
    # without a task has no data to compute source and pair traits of.
    skipped: list[dict] = field(default_factory=list)


def with_data(adapters) -> list:
    """The plan's sources that name their data (every trained one; a brought one when it gives a
    ``task``): the only ones source and pair traits can be computed for. One job per source: its
    replicates (training seeds) share the data, so its source and pair traits are computed once."""
    first = {}
    for job in adapters:
        if job.task is not None:
            first.setdefault(job.source, job)
    return list(first.values())


def per_source(summary: dict[str, dict], adapters) -> dict[str, dict]:
    """A behaviour trait's ``summary`` (replicate model -> output -> value) as source -> output ->
    the mean over the source's replicates that have a value (None when none has). Rows of names
    that are not replicate models (a trait's extra rows) stay as they are."""
    models: dict[str, list[str]] = {}
    for job in adapters:
        models.setdefault(job.source, []).append(job.model)
    out = {name: row for name, row in summary.items() if not any(name in m for m in models.values())}
    for source, names in models.items():
        rows = [summary[m] for m in names if m in summary]
        if not rows:
            continue
        keys = list(dict.fromkeys(k for row in rows for k in row))
        values = {k: [row.get(k) for row in rows if row.get(k) is not None] for k in keys}
        out[source] = {k: (sum(v) / len(v) if v else None) for k, v in values.items()}
    return out


def not_applicable(adapters, scopes) -> list[dict]:
    """A ``skipped`` entry per source without data, when some trait of a scope that reads the data
    (source, pair) is to be computed: ``source_traits`` (or ``pair_traits`` when only those are)."""
    from harness.analysis.applicability import entry

    need = [s for s in ("source", "pair") if s in scopes]
    if not need:
        return []
    what = " and ".join(need) + " traits"
    return [entry(f"{need[0]}_traits", f"source {job.source} brings weights ({job.kind}) without a task: {what} "
                  "n/a; give the task it was trained on to compute them", job.source)
            for job in adapters if job.task is None]


def _weights(job, cache) -> Path | None:
    """Where ``job``'s adapter weights are, when they exist now (None: not trained yet, or a
    checkpoint, which is a whole model and not an adapter)."""
    from harness.stages.plan import weights_path

    if job.kind == "checkpoint" or (job.path is None and cache is None):
        return None
    path = Path(weights_path(job, cache))
    return path if path.is_dir() else None


def adapter_folders(adapters, cache) -> dict[str, list[Path]]:
    """Source -> the folders of its adapters' weights that exist now, one per training replicate:
    a brought adapter's own folder, a trained one's cache entry once trained."""
    out: dict[str, list[Path]] = {}
    for job in adapters:
        path = _weights(job, cache)
        out.setdefault(job.source, []).extend([path] if path is not None else [])
    return out


def pair_sources(trait: Trait, adapters) -> list:
    """The plan's jobs a pair trait is computed over: those with data; for a trait that reads
    only adapter weights (not ``source_data``), every source, brought ones without a task too."""
    if "adapter_weights" in trait.requires and "source_data" not in trait.requires:
        return list({job.source: job for job in adapters}.values())
    return with_data(adapters)


def source_trait_key(trait: Trait, task: Task, n_examples: int, model_key: str) -> str:
    """Cache key of a source trait's values: the trait and its parameters, the task's data, and the
    base model when the trait looks at its tokenizer or weights."""
    return stable_hash({"trait": trait.name, "version": trait.version, "params": trait.get_params(),
                        "task": task.fingerprint(), "n": n_examples,
                        "model": model_key if trait.requires & {"tokenizer", "base_model"} else None})


def pair_trait_key(trait: Trait, adapters, target_configs: dict[str, dict], tasks: dict[str, Task],
                   model_key: str | None, cache=None) -> str:
    """Cache key of a pair trait's whole table: every source and every target enter it, since a
    pair value may depend on all of them (tf-idf weights come from the whole corpus). A target is
    its task and its written test file, whose name carries the data's hash. A trait reading
    ``adapter_weights`` is keyed on every adapter's key (content-addressed: a retrained or other
    brought adapter has another) and on whether its weights exist yet, so a table computed before
    training (``harness traits``) is not reused once the adapters are there."""
    jobs = pair_sources(trait, adapters)
    adapter_keys = None
    if "adapter_weights" in trait.requires:
        adapter_keys = [[job.source, job.key, job.kind, _weights(job, cache) is not None] for job in adapters]
    return stable_hash({"trait": trait.name, "version": trait.version, "params": trait.get_params(),
                        "sources": [[job.source, job.task.fingerprint() if job.task is not None else None, job.n_train]
                                    for job in jobs],
                        "targets": [[name, tasks[name].fingerprint(), _test_file_name(config)]
                                    for name, config in target_configs.items()],
                        "model": model_key if trait.requires & {"tokenizer", "base_model"} else None,
                        **({"adapters": adapter_keys} if adapter_keys is not None else {})})


def _test_file_name(config: dict) -> str:
    """The name of a built-in target's written test file (it carries the data's hash); for an
    lm-eval target its limit (its fingerprint holds its data's hashes)."""
    if RUN_ARGS in config:
        return f"limit {config[RUN_ARGS]['limit']}"
    files = (config.get("dataset_kwargs") or {}).get("data_files")
    test = files.get("test", "") if isinstance(files, dict) else ""
    return Path(test).name if isinstance(test, str) else ""


def trait_is_cached(trait: Trait, plan, cache) -> bool:
    """Whether every value ``trait`` would compute for ``plan`` is already in ``cache``."""
    if cache is None:
        return False
    model_key = plan.model.key if plan.model else None
    if trait.scope == "source":
        return all(cache.has("traits", source_trait_key(trait, job.task, job.n_train, model_key))
                   for job in with_data(plan.adapters))
    if trait.scope == "pair":
        return cache.has("traits", pair_trait_key(trait, plan.adapters, plan.target_configs, plan.tasks, model_key,
                                                  cache))
    return False  # behaviour traits read the evaluation logs each run


def _failure(trait: Trait, source: str | None, exc: BaseException) -> dict:
    return failure_record("traits", exc, plugin=trait.name, **({"source": source} if source is not None else {}))


def compute_all(registry, plan, catalog, tokenizer, model=None, samples: BehaviourData | None = None,
                cache=None, scopes: tuple[str, ...] = ("source", "pair", "behaviour")) -> TraitResults:
    """Run every trait of ``registry`` on the plan's sources (and targets, and samples).

    ``model`` is only needed when a trait requires the base model; ``samples`` only for behaviour
    traits (skipped when None, as in ``harness traits``, which fine-tunes nothing). With a ``cache``,
    source-scope results are stored under a key of the trait, its parameters and the source's data.
    """
    out = TraitResults()
    extractors = [catalog.get("trait", use.name).obj(**use.params) for use in registry.traits]
    folders = adapter_folders(plan.adapters, cache)
    sources = [SourceData(job.source, job.task, job.task.examples("train", job.n_train), tokenizer, model,
                          adapters=folders.get(job.source, []))
               for job in with_data(plan.adapters)]
    by_name = {src.name: src for src in sources}
    for job in plan.adapters:
        out.values.setdefault(job.source, {})
    wanted = {trait.scope for trait in extractors if trait.scope in scopes}
    out.skipped = not_applicable(plan.adapters, wanted)

    for trait in extractors:
        if trait.scope not in scopes:
            continue
        if trait.scope == "source":
            for src in sources:
                key = source_trait_key(trait, src.task, len(src.examples), plan.model.key if plan.model else None)
                try:
                    row = cached_trait(cache, key, TRAIT_VALUES,
                                  lambda src=src, trait=trait: {k: checked(v, f"output {k!r}") for k, v in trait.compute(src).items()})
                    out.values[src.name].update(row)
                    out.scopes.update(dict.fromkeys(row, "source"))
                    out.plugins.update(dict.fromkeys(row, trait.name))
                except Exception as exc:
                    out.failures.append(_failure(trait, src.name, exc))
        elif trait.scope == "pair":
            key = pair_trait_key(trait, plan.adapters, plan.target_configs, plan.tasks,
                                 plan.model.key if plan.model else None, cache)

            def pairs(trait=trait):
                targets = [TargetData(name, task, target_examples(task, plan.target_configs[name]))
                           for name, task in plan.tasks.items()]
                among = [by_name.get(job.source) or SourceData(job.source, None, [], tokenizer, model,
                                                               adapters=folders.get(job.source, []))
                         for job in pair_sources(trait, plan.adapters)]
                return trait.compute_pairs(among, targets)

            try:
                result = cached_trait(cache, key, TRAIT_PAIRS, pairs)
                out.pairs.update({name: {s: {t: checked(v, f"{name}[{s}][{t}]") for t, v in row.items()}
                                         for s, row in by_source.items()} for name, by_source in result.items()})
                out.plugins.update(dict.fromkeys(result, trait.name))
            except Exception as exc:
                out.failures.append(_failure(trait, None, exc))
        elif trait.scope == "behaviour" and samples is not None:
            try:
                details, summary = trait.compute_behaviour(samples)
                out.behaviour[trait.name] = details  # keyed as the samples are: by replicate model
                for s, row in per_source(summary, plan.adapters).items():
                    out.values.setdefault(s, {}).update({k: checked(v, f"output {k!r}") for k, v in row.items()})
                    out.scopes.update(dict.fromkeys(row, "behaviour"))
                    out.plugins.update(dict.fromkeys(row, trait.name))
            except Exception as exc:
                out.failures.append(_failure(trait, None, exc))
    return out


def target_examples(task: Task, config: dict) -> list[Example]:
    """The test examples a target is scored on: as many as its written data file holds (an
    lm-eval target: its documents as lm-eval renders them)."""
    if isinstance(task, LmEvalTarget):
        return task.test_examples()
    path = config.get("dataset_kwargs", {}).get("data_files", {}).get("test")
    if not path or not Path(path).is_file():
        return []
    with open(path) as fh:
        n = sum(1 for line in fh if line.strip())
    return task.examples("test", n)


def trait_model(registry, cat, location, cache, model, tokenizer, plan=None, keep=None):
    """(model, tokenizer) for the traits stage: the tokenizer when a trait that reads it has values
    not yet cached, the base model too when such a trait requires it (from ``keep`` when given).
    A fully cached run loads neither (``None``), which keeps a warm re-run free of transformers'
    imports. Without a ``plan`` nothing is known to be cached."""
    from harness.model import loading

    needing = [trait for trait in (cat.get("trait", use.name).obj(**use.params) for use in registry.traits)
               if trait.requires & {"tokenizer", "base_model"} and not (plan and trait_is_cached(trait, plan, cache))]
    wants_model = any("base_model" in trait.requires for trait in needing)
    if not needing or (tokenizer is not None and (model is not None or not wants_model)):
        return model, tokenizer
    if wants_model and model is None:
        if keep is not None:
            return keep.get(location, registry.base_model, cache)[1:3]
        return loading.load_checked(location, registry.base_model, cache)[1:]
    return model, loading.load_tokenizer(loading.materialise(location, registry.base_model, cache))


def behaviour_data(plan, cache) -> BehaviourData:
    """Every cell's per-sample records, for behaviour traits: ``samples[model][target]``."""
    # Behaviour traits see every replicate as a model of its own; the stage averages them per source.
    data = BehaviourData(sources=[a.model for a in plan.adapters], targets=dict(plan.tasks))
    for cell in plan.cells:
        records = read_samples(cache, cell.key)
        if records:
            data.samples.setdefault(cell.model, {})[cell.target] = records
    return data


def traits_stage(registry, plan, cat, cache, location, executor, keep=None) -> tuple[TraitResults, BehaviourData]:
    """The traits stage of a run: every trait on the plan's sources, targets and evaluation logs,
    with the model the executor loaded (when it did) lent to the traits that need it, its adapters
    switched off. Returns the results and the per-sample logs it read (the analysis uses them)."""
    model, tokenizer = trait_model(registry, cat, location, cache, executor.model, executor.tokenizer, plan, keep)
    behaviour = behaviour_data(plan, cache)
    host = executor.host
    with (host.base_only() if host is not None else nullcontext()):
        results = compute_all(registry, plan, cat, tokenizer, model, samples=behaviour, cache=cache)
    return results, behaviour
