"""Export a task as an lm-eval task YAML that anyone can run with ``lm_eval --tasks FILE``.

The YAML is the task's own :meth:`~harness.api.tasks.Task.lm_eval_config` written to a file, so a
score from ``lm_eval`` on the export is the score the harness gives the same rows:

* generated tasks: the test rows are written as JSON lines next to the YAML, which names them by
  absolute path (``dataset_kwargs.data_files.test``);
* file tasks: the rows of ``--data`` (the local test file) are checked and written the same way;
  when the task reuses lm-eval's own config (``lm_eval_yaml``), the export ``include:``s that YAML
  by absolute path and overrides only what :meth:`FileTask.lm_eval_config` changes (task name and
  data source) and nulls what it drops (other splits, ``dataset_name``, ``tag``), so lm-eval's
  ``!function`` references keep resolving next to their own file.
"""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

import yaml

from harness.config.registry import did_you_mean

DEFAULT_LIMIT = 100


class ExportError(Exception):
    """Invalid input to an export (unknown task, bad option, missing data); the CLI exits 2."""


# --- task lookup and options ------------------------------------------------------------------

def task_class(name: str) -> type:
    """The registered task class called ``name``, or ExportError with a did-you-mean hint."""
    from harness.api.plugins import catalog

    cat = catalog()
    if name not in cat.names("task"):
        raise ExportError(f"unknown task {name!r}{did_you_mean(name, cat.names('task'))}")
    return cat.get("task", name).obj


def parse_options(pairs: list[str] | None) -> dict[str, Any]:
    """``KEY=VALUE`` strings to an options dict. Values are read as YAML (``3``, ``true``,
    ``[+, '*']``); a dotted key nests (``data_files.test=x.tsv``)."""
    options: dict[str, Any] = {}
    for pair in pairs or ():
        key, sep, raw = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ExportError(f"bad option {pair!r}: write KEY=VALUE, e.g. --option seed=1")
        try:
            value = yaml.safe_load(raw) if raw.strip() else raw
        except yaml.YAMLError:
            value = raw
        parts = key.split(".")
        node = options
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ExportError(f"bad option {pair!r}: {part!r} is already set to a value")
            node = child
        node[parts[-1]] = value
    return options


def make_task(cls: type, options: dict[str, Any], data: str | Path | None = None):
    """An instance of ``cls`` with ``options`` (and ``data`` as the test file of a file task)."""
    from pydantic import ValidationError

    from harness.api.filetasks import FileTask

    options = dict(options)
    if data is not None:
        if not issubclass(cls, FileTask):
            raise ExportError(f"--data is only for tasks read from local files; {cls.name!r} generates its "
                              "own data (drop --data)")
        path = Path(data).expanduser().resolve()
        if not path.is_file():
            raise ExportError(f"--data {data}: no such file")
        options["data_files"] = {**options.get("data_files", {}), "test": str(path)}
    try:
        task = cls(**options)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or '(options)'}: {e['msg']}"
                             for e in exc.errors())
        fields = ", ".join(cls.Options.model_fields) or "none"
        raise ExportError(f"bad options for task {cls.name!r}: {problems} (options: {fields})") from None
    except (TypeError, ValueError) as exc:
        raise ExportError(f"bad options for task {cls.name!r}: {exc}") from None
    if isinstance(task, FileTask) and not task.options.data_files.get("test"):
        columns = ", ".join(task.required_columns())
        raise ExportError(f"task {cls.name!r} reads its test rows from a local file: pass --data PATH (a CSV, TSV, "
                          f"JSONL or Parquet file with columns {columns})")
    return task


# --- the config ---------------------------------------------------------------------------------

def _lm_eval_yaml_path(task) -> Path | None:
    rel = getattr(task, "lm_eval_yaml", None)
    if not rel:
        return None
    import lm_eval

    return (Path(lm_eval.__file__).parent / "tasks" / rel).resolve()


def _same(a: Any, b: Any) -> bool:
    try:
        return a is b or bool(a == b)
    except Exception:  # noqa: BLE001 - exotic values that refuse comparison count as different
        return False


def _check_plain(value: Any, where: str) -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            _check_plain(v, f"{where}.{k}")
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            _check_plain(v, f"{where}[{i}]")
    elif not (value is None or isinstance(value, (str, int, float, bool))):
        raise ExportError(f"cannot write {where} ({type(value).__name__}) to YAML; the task's lm-eval config "
                          "holds a Python object that is not in the YAML it reuses")


def _plain(value: Any) -> Any:
    """Tuples as lists, mappings as dicts: what YAML reads back."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def export_config(task, data_dir: Path, limit: int) -> dict[str, Any]:
    """The YAML-ready config of ``task`` over ``limit`` test rows written under ``data_dir``.

    Equivalent to ``task.lm_eval_config(data_dir, limit)``: plain data is returned as is; a config
    built on lm-eval's own YAML becomes ``include:`` of that YAML plus the keys that differ.
    """
    config = task.lm_eval_config(Path(data_dir), limit)
    # The export holds test rows only: should someone run it with shots (`--num_fewshot 5`, or a
    # reused config's own num_fewshot), lm-eval draws them from the test split, and only a
    # fewshot_split naming that split makes it leave the scored document out.
    config.setdefault("fewshot_split", config.get("test_split", "test"))
    base_path = _lm_eval_yaml_path(task)
    base = task.base_config() if base_path is not None and hasattr(task, "base_config") else None
    if base is None:
        _check_plain(config, "config")
        return _plain(config)
    if "group" in base and "group" not in config:
        raise ExportError(f"lm-eval's {base_path} declares a `group`, which an including YAML cannot drop; "
                          "export of this task is not supported")
    out: dict[str, Any] = {"include": str(base_path)}
    for key, value in config.items():
        if key not in base or not _same(base[key], value):
            out[key] = value
    for key in base:
        if key not in config:
            out[key] = None  # dropped by lm_eval_config: null it so the included value is not used
    _check_plain(out, "config")
    return _plain(out)


def _with_header(title: str, run: str, command: str | None, config: dict[str, Any]) -> str:
    """The YAML text of an export: what it is, the command that made it, how to run it."""
    header = [title, f"# Run: {run}"]
    if command:  # one comment line, whatever the arguments hold
        header.insert(1, "# Made with: " + command.replace("\r", "\\r").replace("\n", "\\n"))
    return "\n".join(header) + "\n" + dump_yaml(config)


class _Dumper(yaml.SafeDumper):
    """Block style; strings with line breaks in double quotes (``until: ["\\n"]``, not a folded block)."""


def _str_representer(dumper, value: str):
    style = '"' if ("\n" in value or "\t" in value) else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str_representer)


def dump_yaml(config: dict[str, Any]) -> str:
    return yaml.dump(config, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=4096)


def lm_eval_command(path: Path, model: str = "HuggingFaceTB/SmolLM2-135M-Instruct") -> str:
    """The lm_eval command line that scores the export as ``harness run`` does by default (0-shot,
    whatever ``num_fewshot`` a reused lm-eval config sets)."""
    return (f"lm_eval --model hf --model_args pretrained={model} --tasks {shlex.quote(str(path))} "
            "--num_fewshot 0 --batch_size 16")


def export_task(task, output: Path, limit: int | None = None, command: str | None = None) -> Path:
    """Write ``task``'s lm-eval YAML to ``output`` and its test rows next to it; return the path.

    ``limit`` defaults to 100 rows (for a file task: at most the usable rows of its test file).
    """
    from harness.api.filetasks import FileTask
    from harness.errors import DataError

    output = Path(output).expanduser().resolve()
    if output.is_dir():
        raise ExportError(f"{output} is a directory; give a file name such as {output / (task.name + '.yaml')}")
    if limit is not None and limit < 1:
        raise ExportError(f"--limit must be at least 1 (got {limit})")
    try:
        if limit is None:
            limit = DEFAULT_LIMIT
            if isinstance(task, FileTask):
                limit = max(1, min(limit, len(task.clean_rows("test"))))
        output.parent.mkdir(parents=True, exist_ok=True)
        config = export_config(task, output.parent, limit)
    except DataError as exc:
        raise ExportError(str(exc)) from None
    text = _with_header(f"# lm-eval task {task.name!r}, exported by transfer-harness ({limit} test rows).",
                        lm_eval_command(output), command, config)
    if "include" not in config and yaml.safe_load(text) != config:  # pragma: no cover - a dumper bug
        raise ExportError("the YAML written does not read back as the task's config")
    tmp = output.with_name(output.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(output)
    return output


# --- a registry's target ---------------------------------------------------------------------------

# Keys lm-eval's task factory adds or takes off a leaf's config: not part of what is scored.
_NOT_SCORED = ("task", "metadata", "tag", "group", "task_list", "harness_run_args")


def _model_arg(registry) -> str:
    """``pretrained=`` of the lm_eval command: the registry's base model folder or hub id."""
    base = registry.base_model
    if base.path:
        return str(Path(base.path).expanduser().resolve())
    if base.hub_id:
        return base.hub_id + (f",revision={base.revision}" if base.revision else "")
    return "MODEL_DIR"  # a GGUF: the folder it was converted to (see `harness cache`)


def target_command(registry, path: Path, limit: int | None, num_fewshot: int | None) -> str:
    """The ``lm_eval`` command that scores an exported target as ``harness run`` scores it: the
    registry's base model, dtype, batch size and seeds, the target's ``--limit`` and shots
    (``--num_fewshot`` left out where the task's own ``num_fewshot`` is pinned by overrides)."""
    from harness.model.compute import resolve_dtype
    from harness.stages.evaluate import eval_batch_size

    ev = registry.evaluation
    parts = [f"lm_eval --model hf --model_args pretrained={_model_arg(registry)},"
             f"dtype={resolve_dtype(registry.base_model.dtype)} --tasks {shlex.quote(str(path))}"]
    if limit is not None:
        parts.append(f"--limit {limit}")
    if num_fewshot is not None:
        parts.append(f"--num_fewshot {num_fewshot}")
    parts.append(f"--batch_size {eval_batch_size(ev.batch_size)} --seed {ev.seed}")
    return " ".join(parts)


def _scored(config: dict) -> dict:
    from harness.api.lm_eval_tasks import content

    return content({k: v for k, v in config.items() if k not in _NOT_SCORED})


def lm_eval_target_config(name: str, task, use) -> dict[str, Any]:
    """The YAML of lm-eval target ``name``: its task's own YAML ``include:``d by absolute path
    (a library task's too: lm-eval's index records where it is), the registry's ``overrides``
    on top, ``task:`` the target's name. Checked to load, through lm-eval's own YAML loader, to
    exactly the config the harness scores."""
    from harness.api.lm_eval_tasks import RUN_ARGS

    config = task.config
    if "group" in config:
        members = ", ".join(task.resolved.leaves)
        raise ExportError(
            f"target {name!r} is lm-eval's group {task.resolved.name!r} ({members}), scored as one aggregate "
            "column; one YAML task cannot hold a group's aggregate. Set `expand: true` on the target to make each "
            "subtask a target of its own (each exports), or run the group itself: lm_eval --tasks "
            f"{use.lm_eval}" + (f" --include_path {use.include_path}" if use.include_path else "")
            + f" --limit {config[RUN_ARGS]['limit']}" + (" (overrides are not applied that way)" if use.overrides else ""))
    (leaf,) = task.resolved.leaves.values()
    source = str((leaf.get("metadata") or {}).get("config_source") or "")
    if not source or source == "inline" or not Path(source).is_file():
        raise ExportError(f"target {name!r}: lm-eval task {task.resolved.name!r} is defined inline in a group's "
                          "YAML, not in a file of its own that an export could include")
    from harness.lm_eval_compat import load_yaml

    raw = load_yaml(Path(source), resolve_func=False)
    if "group" in raw:
        raise ExportError(f"{source} declares a `group`, which an including YAML cannot drop; export of target "
                          f"{name!r} is not supported")
    out: dict[str, Any] = {"include": str(Path(source).resolve()), **_plain(use.overrides), "task": name}
    _check_plain(out, "overrides")
    return out


def _check_reproduces(name: str, written: Path, scored: dict) -> None:
    from harness.lm_eval_compat import load_yaml

    loaded = load_yaml(written, resolve_func=True)
    mine, theirs = _scored(loaded), _scored(scored)
    if mine != theirs:
        keys = sorted(k for k in set(mine) | set(theirs) if mine.get(k) != theirs.get(k))
        raise ExportError(f"target {name!r}: the exported YAML would not score what the harness scores (keys that "
                          f"differ: {', '.join(keys)}); it may come from a group that sets them for its members")


def export_target(registry, name: str, output: Path | None = None, limit: int | None = None,
                  command: str | None = None) -> tuple[Path, str]:
    """Export the registry's target ``name``; ``(the YAML written, the lm_eval command to run)``.

    A task plugin target exports as :func:`export_task` does (its options, ``limit`` rows: the
    target's unless given); an lm-eval target as :func:`lm_eval_target_config`, with the
    ``--limit`` and ``--num_fewshot`` the harness scores it with."""
    from harness.api.lm_eval_tasks import RUN_ARGS, lm_eval_targets
    from harness.config.registry import lm_eval_arguments
    from harness.errors import DataError

    names = []
    for use in registry.targets:
        if use.task is not None:
            names.append(use.key)
            if use.key != name:
                continue
            task = make_task(task_class(use.task), use.options)
            path = export_task(task, output or Path.cwd() / f"{name}.yaml", limit=limit or use.limit, command=command)
            return path, lm_eval_command(path, _model_arg(registry))
        try:
            built = lm_eval_targets(**lm_eval_arguments(use, registry.evaluation.num_fewshot), check_data=False)
        except DataError as exc:
            raise ExportError(str(exc)) from None
        for target, task, config in built:
            names.append(target)
            if target != name:
                continue
            yaml_config = lm_eval_target_config(name, task, use)
            output = Path(output or Path.cwd() / f"{name}.yaml").expanduser().resolve()
            if output.is_dir():
                raise ExportError(f"{output} is a directory; give a file name such as {output / (name + '.yaml')}")
            run = config[RUN_ARGS]
            cmd = target_command(registry, output, limit or run["limit"], run["num_fewshot"])
            output.parent.mkdir(parents=True, exist_ok=True)
            tmp = output.with_name(output.name + ".tmp.yaml")
            tmp.write_text(_with_header(f"# lm-eval target {name!r} of registry experiment {registry.experiment!r}, "
                                        "exported by transfer-harness.", cmd, command, yaml_config))
            try:
                _check_reproduces(name, tmp, config)
            except BaseException:
                tmp.unlink(missing_ok=True)
                raise
            tmp.replace(output)
            return output, cmd
    raise ExportError(f"the registry has no target {name!r}{did_you_mean(name, names)} (its targets: "
                      f"{', '.join(names) or 'none'})")
