"""The plan: every adapter to train and every (model, target) cell to score, each with its cache
key and whether the cache already holds it. Computing it loads no model, so ``--dry-run`` is
instant and a re-run knows up front that it has nothing to do.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from harness import __version__
from harness.api.lm_eval_tasks import RUN_ARGS
from harness.api.plugins import Catalog
from harness.api.tasks import Task
from harness.cache.store import Cache
from harness.config.registry import BASE, Registry
from harness.errors import DataError, ModelNotFound
from harness.files import stable_hash
from harness.model import loading
from harness.model.compute import compute_setup
from harness.model.loading import ModelLocation
from harness.stages.brought import bring

# Part of every adapter's key: bump it when a change in harness/stages/finetune.py changes what training
# produces (2: length-grouped batches; 3: BOS as the scorer adds it, EOS after generation
# completions, prompt-only truncation), so no adapter trained the old way is reused.
TRAINING_VERSION = 3
# Part of every cell's key, likewise for the scoring code (harness/stages/evaluate.py, the configs tasks
# write): 2: one record per document (the metric's own filter only), few-shot examples never from
# the scored rows, any lm-eval aggregation; so no cell scored the old way is reused.
EVALUATION_VERSION = 2


def library_versions() -> dict[str, str]:
    import importlib.metadata as md

    out = {"harness": __version__}
    for dist in ("lm_eval", "transformers", "peft", "torch"):
        try:
            out[dist] = md.version(dist)
        except md.PackageNotFoundError:
            out[dist] = "missing"
    return out


@dataclass
class AdapterJob:
    """A source of the plan: an adapter to train here (kind "trained"), or weights brought in
    (kind "adapter" or "checkpoint", never trained: ``cached`` is always true)."""

    source: str  # the source's name in results (alias or task)
    task: Task | None  # None: weights brought without the data they were trained on
    n_train: int
    key: str  # trained: the training key; brought: the content key of its files
    cached: bool
    done_here: bool = False  # trained by this run (not found in the cache, nor by another run)
    kind: str = "trained"  # "trained", "adapter" or "checkpoint"
    path: Path | None = None  # a brought adapter's or checkpoint's folder
    seed: int | None = None  # its training seed; None for brought weights
    # The name its cells and per-sample logs are filed under: the source's name when the study has one
    # replicate per source, else f"{source}@seed{seed}" (several jobs then share one source).
    model: str = ""

    def __post_init__(self):
        self.model = self.model or self.source

    @property
    def brought(self) -> bool:
        return self.kind != "trained"


def weights_path(job: AdapterJob, cache: Cache) -> Path:
    """Where an adapter's weights are: its own folder when brought, else the cache entry it was trained into."""
    return job.path if job.path is not None else cache.path("adapters", job.key)


def cell_model(job: AdapterJob, base_key: str) -> tuple[str, str]:
    """(model, adapter) parts of the cell keys of ``job``'s cells: a checkpoint is a model of its
    own (the base model does not enter its cells' keys); an adapter, trained or brought, is the
    base model with that adapter on it."""
    return (job.key, "none") if job.kind == "checkpoint" else (base_key, job.key)


def replica_settings(lora, job: AdapterJob):
    """The LoraSettings ``job`` trains with: its own seed (adapter initialisation and batch order)."""
    return lora.for_seed(job.seed) if job.seed is not None else lora


def adapter_name(job) -> str:
    # peft keeps adapters in ModuleDicts, whose keys may not contain dots: use the cache key.
    return f"adapter_{job.key[:12]}"


@dataclass
class CellJob:
    model: str  # BASE or a replicate model name (AdapterJob.model: the source name with one seed per source)
    target: str
    key: str
    cached: bool
    done_here: bool = False  # scored by this run


@dataclass
class Plan:
    model: ModelLocation
    tasks: dict[str, Task]  # target name -> task
    target_configs: dict[str, dict]  # target name -> inline lm-eval config
    adapters: list[AdapterJob] = field(default_factory=list)
    cells: list[CellJob] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)  # what a dry run found unavailable

    def replicates(self, source: str) -> list[AdapterJob]:
        """The adapter jobs of source ``source``, one per training seed (one for brought weights)."""
        return [a for a in self.adapters if a.source == source]

    @property
    def sources(self) -> list[str]:
        """Source names, in registry order, each once."""
        return list(dict.fromkeys(a.source for a in self.adapters))

    @property
    def seeds(self) -> dict[str, list[int | None]]:
        """Source -> the seeds of its replicates (``[None]`` for brought weights)."""
        return {s: [a.seed for a in self.replicates(s)] for s in self.sources}

    @property
    def todo_adapters(self) -> list[AdapterJob]:
        return [a for a in self.adapters if not a.cached and not a.brought]

    @property
    def todo_cells(self) -> list[CellJob]:
        return [c for c in self.cells if not c.cached]

    def metric(self, target: str) -> str:
        """The lm-eval metric key target ``target`` is scored by (what scoring reads of its task)."""
        return self.tasks[target].metric()

    @property
    def needs_base(self) -> bool:
        """Whether the base model must be loaded: an adapter to train, or a cell of the base model
        or of an adapter to score (a checkpoint's cells are scored on the checkpoint alone)."""
        checkpoints = {a.model for a in self.adapters if a.kind == "checkpoint"}
        return bool(self.todo_adapters) or any(c.model not in checkpoints for c in self.todo_cells)


def _config_for_key(config: dict) -> dict:
    """The target config with its data path reduced to the file name, which carries the data's
    hash: the key then follows the data, not where the cache happens to be."""
    files = config["dataset_kwargs"]["data_files"]
    return {**config, "dataset_kwargs": {"data_files": {k: Path(v).name for k, v in files.items()}}}


def make_plan(registry: Registry, catalog: Catalog, cache: Cache, model: ModelLocation,
              dry_run: bool = False, compute: dict[str, str] | None = None) -> Plan:
    """Every job with its key. A dry run notes data it cannot read in ``missing`` instead of failing.

    ``compute``: the device and dtype the jobs will run with, when that is not this machine's
    (Ray workers); default :func:`compute_setup` here.
    """
    from harness.api.filetasks import FileTask

    versions = library_versions()
    seeds = registry.lora.seed_list
    # Numbers differ between float32 on CPU and bfloat16 on a GPU: results are keyed by both.
    compute = compute or compute_setup(registry.base_model.dtype)
    data_dir = cache.root / "data"
    plan = Plan(model=model, tasks={}, target_configs={})

    brought = bring(registry, model, dry_run=dry_run, notes=plan.missing)  # refuses what cannot be scored
    for use in registry.sources:
        task = catalog.get("task", use.task).obj(**use.options) if use.task else None
        if use.key in brought:
            weights = brought[use.key]
            plan.adapters.append(AdapterJob(use.key, task, use.n_train, weights.key, True, kind=weights.kind,
                                            path=weights.path))
            continue
        for seed in seeds:  # one adapter per training seed, each its own cache entry
            key = stable_hash({"model": model.key, "task": task.fingerprint(), "n_train": use.n_train,
                               "lora": registry.lora.key_dump(seed), "trainer": TRAINING_VERSION, "compute": compute,
                               "versions": {k: versions[k] for k in ("transformers", "peft", "torch")}})
            name = use.key if len(seeds) == 1 else replicate_name(use.key, seed)
            plan.adapters.append(AdapterJob(use.key, task, use.n_train, key, cache.has("adapters", key),
                                            seed=seed, model=name))

    evaluation = registry.evaluation.model_dump(mode="json")
    target_keys: dict[str, dict] = {}  # lm-eval targets: what their cells' keys hold instead of the config
    for use in registry.targets:
        if use.lm_eval is not None:
            for name, task, config in lm_eval_plan_targets(use, registry, dry_run, plan.missing):
                plan.tasks[name], plan.target_configs[name] = task, config
                target_keys[name] = {"lm_eval": task.fingerprint(), "limit": use.limit,
                                     "run_args": config.get(RUN_ARGS)}
            continue
        task = catalog.get("task", use.task).obj(**use.options)
        if use.abilities is not None:
            task.abilities = tuple(use.abilities)
        plan.tasks[use.key] = task
        try:
            if dry_run and isinstance(task, FileTask) and task.data_file("test") is None:
                # A dry run never waits on the network: say what a real run would fetch.
                raise DataError(f"would read the hub dataset {task.hub_dataset} "
                                f"({task.hub_splits.get('test', 'test')} split); no local data_files.test")
            plan.target_configs[use.key] = task.lm_eval_config(data_dir, use.limit, alias=use.key,
                                                             num_fewshot=registry.evaluation.num_fewshot)
        except DataError as exc:
            if not dry_run:
                raise
            plan.missing.append(f"target {use.key}: {exc}")
            plan.target_configs[use.key] = {"task": use.key, "unavailable": str(exc),
                                            "dataset_kwargs": {"data_files": {}}}

    models = [(BASE, model.key, "none")] + [(a.model, *cell_model(a, model.key)) for a in plan.adapters]
    for model_name, model_key, adapter_key in models:
        for target, config in plan.target_configs.items():
            described = target_keys.get(target) or _config_for_key(config)
            key = stable_hash({"model": model_key, "adapter": adapter_key, "target": described,
                               "metric": plan.tasks[target].metric(), "evaluation": evaluation,
                               "compute": compute, "lm_eval": versions["lm_eval"],
                               "scorer": EVALUATION_VERSION})
            plan.cells.append(CellJob(model_name, target, key, cache.has("cells", key)))
    return plan


def replicate_name(source: str, seed: int) -> str:
    """The model name of ``source``'s replicate trained with ``seed`` (studies of several seeds)."""
    return f"{source}@seed{seed}"


def lm_eval_plan_targets(use, registry: Registry, dry_run: bool, missing: list[str]):
    """An lm_eval target's ``(name, task, config)`` entries. Data not on this machine stops the
    plan (a DataError naming the dataset and both ways out); a dry run notes it in ``missing``
    and still plans the target, whose cells' keys do not depend on the data being here."""
    from harness.api.lm_eval_tasks import lm_eval_targets
    from harness.config.registry import lm_eval_arguments

    arguments = lm_eval_arguments(use, registry.evaluation.num_fewshot)
    try:
        return lm_eval_targets(**arguments)
    except DataError as exc:
        if not dry_run:
            raise
        missing.append(f"target {use.key}: {exc}")
        return lm_eval_targets(**arguments, check_data=False)


def plan_run(registry: Registry, catalog: Catalog, cache: Cache, executor, dry_run: bool = False):
    """The plan stage of a run: the base model located, then every job keyed. ``(location, plan)``.

    A dry run still shows the plan when the model is not on this machine: nothing can be cached
    for a model never seen here. Keys are for the device and dtype the jobs will compute in, which
    the ``executor`` knows (a Ray worker's, not this machine's)."""
    try:
        location = loading.locate(registry.base_model, cache, download=not dry_run)
    except ModelNotFound as exc:
        if not dry_run:
            raise
        location = ModelLocation(key="unavailable", how=f"unavailable here ({exc})")
    compute = executor.compute(registry.base_model.dtype, dry_run=dry_run)
    return location, make_plan(registry, catalog, cache, location, dry_run=dry_run, compute=compute)
