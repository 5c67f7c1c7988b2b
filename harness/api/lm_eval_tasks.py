"""Targets from lm-eval: any task, group or tag of its library, or a task YAML file.

A target ``lm_eval: NAME`` is resolved once, when the plan is made, by lm-eval's own task factory
with dataset loading switched off (:func:`harness.lm_eval_compat.recorded_tasks`): the result is
every leaf task's full config (``include``s and ``!function``s resolved, ``overrides`` applied as
lm-eval applies its own, ``{**config, **overrides}``) and the group structure. Scoring then hands
lm-eval those configs inline, so evaluation never needs lm-eval's index of its thousands of task
files; the index is built here only when a target names a library task.

:class:`LmEvalTarget` is what the rest of the harness uses like a :class:`~harness.api.tasks.Task`
(``kind``, ``labels``, ``abilities``, ``metric()``, ``fingerprint()``, test examples for pair
traits); its fingerprint follows the content (resolved config, function source and module files,
data files' hashes, lm-eval's version), never where things are on disk.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.api.tasks import Example, Task, TaskOptions
from harness.errors import DataError

# datasets' packaged builders: a dataset_path naming one reads local files (data_files), not the hub.
PACKAGED_BUILDERS = frozenset({"json", "csv", "parquet", "text", "arrow", "pandas", "imagefolder", "audiofolder",
                               "webdataset", "xml", "sql"})
# The key of a target config that holds how lm-eval is called for it, taken off before lm-eval sees it.
RUN_ARGS = "harness_run_args"


class LmEvalTaskError(DataError):
    """An lm-eval target that cannot be used: unknown name, bad file, metric, or data not here.
    ``field`` is the target's registry field at fault."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field


def offline() -> bool:
    """Whether datasets may not download: the harness scores offline unless HF_DATASETS_OFFLINE=0
    (the evaluator sets it to 1 when unset)."""
    return os.environ.get("HF_DATASETS_OFFLINE", "1").strip().lower() not in ("0", "false", "no", "off")


@functools.lru_cache(maxsize=8)
def task_manager(include_defaults: bool, include_path: tuple[str, ...] = ()):
    """lm-eval's TaskManager, once per process for each set of folders: indexing its library
    reads every one of its task files (seconds), so only targets that name a library task pay."""
    from lm_eval.tasks import TaskManager

    return TaskManager(include_defaults=include_defaults, include_path=list(include_path) or None)


@dataclass
class Resolved:
    """An lm-eval target resolved to plain configs."""

    name: str  # lm-eval's name of the task, group or tag
    leaves: dict[str, dict]  # leaf task name -> config, overrides applied
    tree: dict | None  # a group or tag: {"group", "aggregate_metric_list", "task": [names or subtrees]}
    tags: tuple[str, ...] = ()
    files: list[str] = field(default_factory=list)  # YAML files read (for messages)


def resolve(spec: str, include_path: str | None = None, overrides: dict | None = None,
            is_path: bool = False) -> Resolved:
    """The configs of lm-eval task, group or tag ``spec`` (or of the YAML file at ``spec``)."""
    from harness.lm_eval_compat import RecordedTask, load_spec, load_yaml, recorded_tasks

    folders: tuple[str, ...] = ()
    if include_path:
        if not Path(include_path).is_dir():
            raise LmEvalTaskError("include_path", f"{include_path}: no such folder; give a folder of lm-eval task YAML files")
        folders = (str(include_path),)
    defaults, raw = not is_path, {}
    if is_path:
        path = Path(spec)
        if not path.is_file():
            raise LmEvalTaskError("lm_eval", f"{spec}: no such file; give the path of an lm-eval task YAML (relative "
                                             "to the registry's folder) or the name of an lm-eval task")
        try:
            raw = load_yaml(path, resolve_func=False)
        except Exception as exc:  # a YAML error, a missing include: the file's problem
            raise LmEvalTaskError("lm_eval", f"{spec}: not a readable lm-eval task YAML ({type(exc).__name__}: {exc})") from None
        if not isinstance(raw, dict) or not (raw.get("task") or raw.get("group")):
            raise LmEvalTaskError("lm_eval", f"{spec}: an lm-eval task YAML needs a `task:` (or a group's `group:`)")
        defaults = "group" in raw  # a group file may list library tasks
    manager = task_manager(defaults, folders)
    try:
        with recorded_tasks():
            built = load_spec(manager, str(spec))
    except KeyError:
        import difflib

        close = difflib.get_close_matches(str(spec), manager.all_tasks, n=3)
        hint = f"; did you mean {', '.join(map(repr, close))}?" if close else ""
        where = "lm-eval's library" + (f" or {include_path}" if include_path else "")
        raise LmEvalTaskError("lm_eval", f"{where} has no task, group or tag {spec!r}{hint} "
                                         "(`lm_eval ls tasks` lists them)") from None
    except LmEvalTaskError:
        raise
    except Exception as exc:  # an lm-eval config that cannot be built is the config's problem
        raise LmEvalTaskError("lm_eval", f"lm-eval cannot load {spec!r}: {type(exc).__name__}: {exc}") from None

    leaves: dict[str, dict] = {}
    tags: list[str] = []

    def walk(item) -> Any:
        if isinstance(item, RecordedTask):
            leaves[item.task_name] = {**item.config, **(overrides or {})}
            tags.extend(t for t in item.tags if t not in tags)
            return item.task_name
        if isinstance(item, list):  # a tag: its tasks, no aggregate of its own
            return {"group": str(spec), "aggregate_metric_list": None, "task": [walk(t) for t in item]}
        from dataclasses import asdict

        aggregates = [asdict(a) for a in item.aggregate_metric_list] if item.aggregate_metric_list else None
        return {"group": item.name, "aggregate_metric_list": aggregates, "task": [walk(child) for child in item]}

    tree = walk(built)
    if isinstance(tree, dict) and not isinstance(tree["group"], str):
        # lm-eval names a group read from a file by its `task:` list when that comes first.
        tree["group"] = str(raw.get("group")) if is_path else str(spec)
    name = tree if isinstance(tree, str) else tree["group"]
    if isinstance(tree, dict):
        tags = [name, *[t for t in tags if t != name]]
    if not leaves:
        raise LmEvalTaskError("lm_eval", f"{spec!r} holds no tasks")
    return Resolved(name, leaves, tree if isinstance(tree, dict) else None, tuple(tags))


# --- content keys ---------------------------------------------------------------------------

def file_hash(path: Path) -> str:
    from harness.files import file_sha256

    return file_sha256(path)


def _local(value: str) -> Path | None:
    path = Path(os.path.expanduser(value))
    return path if path.is_absolute() and path.exists() else None


def folder_hash(path: Path) -> str:
    """A hash of a local dataset folder's files (names relative to it, and contents)."""
    digest = hashlib.sha256()
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        digest.update(f"{file.relative_to(path).as_posix()}\0{file_hash(file)}\n".encode())
    return digest.hexdigest()


def callable_identity(fn) -> dict:
    """What a function from an ``!function`` entry (or a task class) is, by content: its module,
    qualified name, source text and the hash of the file that defines it; never its id."""
    module = str(getattr(fn, "__module__", None) or "?")
    if "/" in module or os.sep in module:  # lm-eval names a task folder's module by its path: keep the name
        module = Path(module).name
    out = {"callable": f"{module}.{getattr(fn, '__qualname__', type(fn).__name__)}"}
    try:
        out["source"] = inspect.getsource(fn)
    except (OSError, TypeError):
        out["source"] = None
    try:
        out["file"] = file_hash(Path(inspect.getfile(fn)))
    except (OSError, TypeError):
        out["file"] = None
    return out


def content(value: Any, where: str = "") -> Any:
    """``value`` made hashable by content: callables by :func:`callable_identity`, local data
    files and folders by their hashes, lm-eval's record of where the YAML was (``config_source``)
    left out."""
    if isinstance(value, dict):
        return {str(k): content(v, f"{where}.{k}") for k, v in value.items()
                if not (k == "config_source" and where.endswith("metadata"))}
    if isinstance(value, (list, tuple)):
        return [content(v, where) for v in value]
    if isinstance(value, str):
        if ".data_files" in where or where.endswith("dataset_path") or ".data_dir" in where:
            local = _local(value)
            if local is not None:
                return {"file": local.name, "sha256": folder_hash(local) if local.is_dir() else file_hash(local)}
        return value
    if value is None or isinstance(value, (bool, int, float)):
        return value
    if callable(value):
        return callable_identity(value)
    return repr(value)


# --- the dataset must be here --------------------------------------------------------------------

def _data_files(kwargs: dict) -> list[str]:
    files = kwargs.get("data_files")
    if isinstance(files, str):
        return [files]
    if isinstance(files, dict):
        values = files.values()
    elif isinstance(files, (list, tuple)):
        values = files
    else:
        return []
    return [f for v in values for f in ([v] if isinstance(v, str) else list(v or ()))]


def _hub_cached(path: str, name: str | None) -> bool:
    """Whether datasets could load hub dataset ``path`` offline: its folder in the datasets cache
    (for ``name``, that config's), or a snapshot of it in the hub cache. A lookup, nothing read."""
    import datasets.config as dc

    roots = [Path(dc.HF_DATASETS_CACHE) / path.replace("/", "___")]
    if any(root.is_dir() and (name is None or (root / name).is_dir() or any(
            p.name.startswith(name) for p in root.iterdir())) for root in roots):
        return True
    try:
        from huggingface_hub.constants import HF_HUB_CACHE
    except ImportError:  # pragma: no cover - datasets depends on huggingface_hub
        return False
    return (Path(HF_HUB_CACHE) / f"datasets--{path.replace('/', '--')}" / "snapshots").is_dir()


def dataset_problem(target: str, leaf: str, config: dict) -> str | None:
    """Why the dataset of lm-eval task ``leaf`` (of target ``target``) cannot be read here, or None.

    Cheap: local files are checked to exist, a hub dataset is looked up in the caches only when
    downloads are off; nothing is loaded and nothing waits on the network."""
    if config.get("custom_dataset"):
        return None
    path = config.get("dataset_path")
    kwargs = config.get("dataset_kwargs") or {}
    files = _data_files(kwargs)
    missing = [f for f in files if not any(c in f for c in "*?[") and not Path(os.path.expanduser(f)).exists()]
    if missing:
        return (f"target {target}: lm-eval task {leaf!r} reads {missing[0]}, which does not exist; fix "
                "overrides.dataset_kwargs.data_files (relative paths are read from the registry's folder)")
    if not path or path in PACKAGED_BUILDERS or Path(os.path.expanduser(str(path))).exists():
        return None
    if files or not offline() or _hub_cached(str(path), config.get("dataset_name")):
        return None
    name = config.get("dataset_name")
    return (f"target {target}: lm-eval task {leaf!r} reads the hub dataset {path}"
            + (f" ({name})" if name else "") + ", which is not in this machine's datasets cache, and downloads "
            "are off (HF_DATASETS_OFFLINE). Either allow the download with HF_DATASETS_OFFLINE=0 (the hub must be "
            "reachable), or score local files: overrides: {dataset_path: json, dataset_kwargs: {data_files: "
            "{test: path/to/test.jsonl}}} (and doc_to_text / doc_to_target / doc_to_choice where the columns differ)")


def split_problem(target: str, leaf: str, config: dict) -> str | None:
    """A split the task reads that its local data files do not have (lm-eval would fail on it)."""
    files = (config.get("dataset_kwargs") or {}).get("data_files")
    if config.get("dataset_path") not in PACKAGED_BUILDERS or not isinstance(files, dict):
        return None
    fewshot = (config.get("fewshot_config") or {}).get("split") if isinstance(config.get("fewshot_config"), dict) else None
    wanted = [(k, config.get(k)) for k in ("training_split", "test_split", "fewshot_split")] + [("fewshot_config.split", fewshot)]
    if not config.get("test_split"):
        wanted.append(("validation_split", config.get("validation_split")))
    for key, split in wanted:
        if split and split not in files:
            return (f"target {target}: lm-eval task {leaf!r} reads split {split!r} ({key}), but "
                    f"overrides.dataset_kwargs.data_files has only {', '.join(map(str, files))}; add "
                    f"data_files.{split}, or set overrides.{key.split('.')[0]}: null")
    return None


# --- the target ----------------------------------------------------------------------------------

def first_metric(config: dict) -> str:
    """A leaf's first metric and first filter (``none`` without filters), lm-eval's key for it."""
    names = [m["metric"] for m in config.get("metric_list") or () if isinstance(m.get("metric"), str)]
    if not names:
        from lm_eval.api.registry import DEFAULT_METRIC_REGISTRY

        names = list(DEFAULT_METRIC_REGISTRY.get(config.get("output_type") or "generate_until", ["acc"]))
    return f"{names[0]},{filter_names(config)[0]}"


def filter_names(config: dict) -> list[str]:
    return [f["name"] for f in config.get("filter_list") or () if isinstance(f, dict) and f.get("name")] or ["none"]


def metrics_of(config: dict) -> list[str]:
    names = [m["metric"] for m in config.get("metric_list") or () if isinstance(m.get("metric"), str)]
    if not names:
        from lm_eval.api.registry import DEFAULT_METRIC_REGISTRY

        names = list(DEFAULT_METRIC_REGISTRY.get(config.get("output_type") or "generate_until", []))
    return [f"{m},{f}" for m in names for f in filter_names(config)]


def choose_metric(resolved: Resolved, metric: str | None) -> str:
    """The metric key scored: ``metric`` (its filter completed with the first one) checked
    against every leaf, or the first leaf's first metric."""
    first = next(iter(resolved.leaves.values()))
    given = metric is not None
    if metric is None:
        metric = first_metric(first)
    elif "," not in metric:
        metric = f"{metric},{filter_names(first)[0]}"
    for leaf, config in resolved.leaves.items():
        known = metrics_of(config)
        if metric not in known:
            fix = ("" if given else f"{resolved.name!r} is a group whose subtasks report different metrics: set "
                   "expand: true to score each subtask as a column of its own, or metric: to one they all report; ")
            raise LmEvalTaskError("metric", f"{fix}lm-eval task {leaf!r} reports no {metric!r}; it reports "
                                            f"{', '.join(known) or 'no metric'}")
    return metric


class LmEvalTarget(Task):
    """An lm-eval task (or group) as a target, used downstream like a task plugin.

    ``kind`` is ``generation`` for ``generate_until`` tasks, else ``multiple_choice``; ``labels``
    are the choices when every document has the same fixed list of them, else empty (choices per
    document: label shares do not apply)."""

    name = "lm_eval"
    version = 1

    def __init__(self, target: str, resolved: Resolved, config: dict, metric: str,
                 abilities: tuple[str, ...] | None, limit: int):
        self.options = TaskOptions()
        self.target, self.resolved, self.config, self._metric, self.limit = target, resolved, config, metric, limit
        self.name = resolved.name
        kinds = {c.get("output_type") for c in resolved.leaves.values()}
        self.kind = "generation" if kinds == {"generate_until"} else "multiple_choice"
        choices = [c.get("doc_to_choice") for c in resolved.leaves.values()]
        fixed = all(isinstance(c, list) and c == choices[0] for c in choices)
        self.labels = tuple(str(c) for c in choices[0]) if fixed and choices[0] else ()
        self.abilities = tuple(abilities) if abilities is not None else resolved.tags
        self._examples: list[Example] | None = None

    def metric(self) -> str:
        return self._metric

    def fingerprint(self) -> str:
        from importlib.metadata import version

        from harness.files import stable_hash

        blob = {"leaves": content(self.resolved.leaves), "tree": content(self.resolved.tree),
                "lm_eval": version("lm-eval"), "version": self.version}
        return stable_hash(blob, 16)

    def examples(self, split, n):
        if split != "test":
            raise DataError(f"target {self.target}: an lm-eval target is scored, never trained on")
        return self.test_examples()[:n]

    def test_examples(self) -> list[Example]:
        """The documents scored (the first ``limit`` of each task) as lm-eval renders them: prompt
        (``doc_to_text``), completion (the gold choice or answer after the target delimiter) and
        for fixed choices the gold label. Loads the dataset, once."""
        if self._examples is None:
            self._examples = render_examples(self.config, self.limit, self.labels)
        return self._examples


def scoring_configs(config: dict) -> list[dict]:
    """The leaf task configs (lm-eval's form) of a target config: itself, or a group's members."""
    if "group" not in config:
        return [{k: v for k, v in config.items() if k != RUN_ARGS}]
    out = []
    for member in config["task"]:
        out += scoring_configs(member) if "group" in member else [member]
    return out


def render_examples(config: dict, limit: int, labels: tuple[str, ...]) -> list[Example]:
    from lm_eval.tasks import TaskManager

    manager = TaskManager(include_defaults=False)
    out = []
    for leaf in scoring_configs(config):
        try:
            task = next(iter(manager.load(leaf)["tasks"].values()))
        except Exception as exc:  # the data cannot be read: the message says which
            raise DataError(f"lm-eval task {leaf.get('task')!r}: cannot load its documents: {type(exc).__name__}: {exc}") from None
        delimiter = task.config.target_delimiter or " "
        for i, doc in enumerate(task.eval_docs):
            if i >= limit:
                break
            prompt, target = task.doc_to_text(doc), task.doc_to_target(doc)
            choices = task.doc_to_choice(doc) if task.config.doc_to_choice is not None else None
            if isinstance(target, list):
                target = target[0]
            if choices is not None and isinstance(target, int) and 0 <= target < len(choices):
                gold = choices[target]
                label = target if labels else None
            else:
                gold, label = str(target), None
            if not isinstance(prompt, str):
                continue  # multiple inputs (doc_to_text gives an index): no single prompt to show
            out.append(Example(prompt, delimiter + str(gold), label=label,
                               answer=None if choices is not None else str(gold)))
    return out


def target_config(key: str, resolved: Resolved, limit: int, num_fewshot: int | None) -> dict:
    """The config lm-eval scores target ``key`` with: the leaf renamed to the target's name (two
    targets of one task, other overrides, never collide), or for a group ``{"group": key,
    "aggregate_metric_list", "task": [members]}`` whose leaves are named ``key::task``: the
    evaluator hands lm-eval the leaves and aggregates them as lm-eval aggregates a group (its
    inline groups merge the group's own keys into every member). ``RUN_ARGS`` holds lm-eval's
    ``limit`` and ``num_fewshot`` for the call (the evaluator takes it off)."""
    run_args = {RUN_ARGS: {"limit": limit, "num_fewshot": num_fewshot}}
    if resolved.tree is None:
        (leaf,) = resolved.leaves.values()
        return {**leaf, "task": key, **run_args}

    def inline(tree: dict) -> dict:
        members = [inline(t) if isinstance(t, dict) else {**resolved.leaves[t], "task": f"{key}::{t}"}
                   for t in tree["task"]]
        return {"group": tree["group"], "aggregate_metric_list": tree.get("aggregate_metric_list"), "task": members}

    return {**inline(resolved.tree), "group": key, **run_args}


def expanded(resolved: Resolved, leaf: str) -> Resolved:
    """One leaf of a group as a target of its own (``expand: true``)."""
    return Resolved(leaf, {leaf: resolved.leaves[leaf]}, None, resolved.tags)


def short_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def column_name(alias: str | None, leaf: str) -> str:
    """A subtask's target name under ``expand: true``: its lm-eval name (after the alias, if any),
    made a plain name (lm-eval's ``group::task`` names hold colons)."""
    import re

    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", leaf.replace("::", "."))
    return f"{alias}.{name}" if alias else name


def lm_eval_targets(spec: str, *, alias: str | None = None, include_path: str | None = None,
                    overrides: dict | None = None, metric: str | None = None, expand: bool = False,
                    abilities: list[str] | None = None, limit: int = 100, is_path: bool = False,
                    num_fewshot: int = 0, check_data: bool = True) -> list[tuple[str, LmEvalTarget, dict]]:
    """``(target name, task, lm-eval config)`` for one registry target: one, or with ``expand`` one
    per subtask of a group. Raises :class:`LmEvalTaskError` for an unknown task, a metric it does
    not report, or (``check_data``) data that is not on this machine."""
    resolved = resolve(spec, include_path, overrides, is_path=is_path)
    # evaluation.num_fewshot is lm_eval's --num_fewshot; overrides.num_fewshot pins the task's own.
    shots = None if "num_fewshot" in (overrides or {}) else num_fewshot
    parts = ([(column_name(alias, leaf), expanded(resolved, leaf)) for leaf in resolved.leaves]
             if expand and resolved.tree is not None else [(alias or resolved.name, resolved)])
    out = []
    for name, part in parts:
        if check_data:
            for leaf, config in part.leaves.items():
                problem = dataset_problem(name, leaf, config) or split_problem(name, leaf, config)
                if problem:
                    raise LmEvalTaskError("overrides" if overrides else "lm_eval", problem)
        config = target_config(name, part, limit, shots)
        out.append((name, LmEvalTarget(name, part, config, choose_metric(part, metric), abilities, limit), config))
    return out


# --- configs sent to another process (Ray workers) ----------------------------------------------------

@dataclass(frozen=True)
class FunctionRef:
    """A function of a task folder's Python file (an ``!function`` entry) by where it is. lm-eval
    loads such a module under a name that is its file's path, which no other process can import,
    so a pickled reference to the function would not load in a Ray worker; this one is loaded
    again from the file there (:func:`restored`)."""

    file: str
    name: str


class NotPortable(ValueError):
    """A target config holding a function that cannot be sent to another process."""


def _from_task_file(fn) -> bool:
    module = str(getattr(fn, "__module__", "") or "")
    return "/" in module or os.sep in module  # lm-eval's name for a module loaded from a task folder's file


def portable(value: Any, where: str = "config") -> Any:
    """``value`` with every function from a task folder's file made a :class:`FunctionRef`, so
    that it pickles for another process; :class:`NotPortable` for a function no other process
    can load (a lambda, a nested function, a method of such a module's class)."""
    if isinstance(value, dict):
        return {k: portable(v, f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, list):
        return [portable(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, tuple):
        return tuple(portable(v, f"{where}[{i}]") for i, v in enumerate(value))
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if not (inspect.isfunction(value) or inspect.isclass(value)):
        raise NotPortable(f"{where} is a {type(value).__name__} object, which is not sent to another process")
    qualname, module = value.__qualname__, str(getattr(value, "__module__", "") or "")
    if "<" in qualname or module == "__main__":
        raise NotPortable(f"{where} is {qualname}, a function defined inside another one (or a lambda, or in a "
                          "script), which only the process that made it can call")
    if _from_task_file(value):
        if "." in qualname:
            raise NotPortable(f"{where} is {qualname} of {inspect.getfile(value)}: only a module-level function "
                              "of a task folder's file can be loaded again in another process")
        return FunctionRef(inspect.getfile(value), qualname)
    return value  # a function of an importable module (lm-eval's own): sent by name


def restored(value: Any) -> Any:
    """:func:`portable`'s inverse, in the process that scores: each :class:`FunctionRef` loaded
    from its file as lm-eval loads ``!function`` entries."""
    if isinstance(value, dict):
        return {k: restored(v) for k, v in value.items()}
    if isinstance(value, list):
        return [restored(v) for v in value]
    if isinstance(value, tuple):
        return tuple(restored(v) for v in value)
    if isinstance(value, FunctionRef):
        from harness.lm_eval_compat import task_file_function

        return task_file_function(value.file, value.name)
    return value
