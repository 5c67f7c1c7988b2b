"""Every private or patched lm-eval name the harness relies on, in one place.

lm-eval promises nothing about these: a release may move or drop them. Each accessor checks that
its name is there and otherwise raises one RuntimeError naming the name, the installed lm-eval and
the range the harness supports, so a new lm-eval fails at the first use with the fix, not deep in
a run with an AttributeError (or silently, as a patch of a name lm-eval no longer has would).
"""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import Iterator
from importlib.metadata import PackageNotFoundError, version
from typing import Any

# pyproject.toml's range for lm-eval (tests/unit/test_lm_eval_compat.py checks that the two agree).
SUPPORTED = "lm-eval>=0.4.13,<0.5"
LORA_REQUEST = "lm_eval.models.vllm_causallms.VLLM.lora_request"


def installed_version() -> str:
    """The installed lm-eval's version, from its package metadata."""
    try:
        return version("lm-eval")
    except PackageNotFoundError:
        return "(version unknown: no package metadata)"


def missing(name: str) -> RuntimeError:
    """The error for a name the installed lm-eval does not have."""
    return RuntimeError(f"transfer-harness needs {name}, which lm-eval {installed_version()} does not have; "
                        f"install {SUPPORTED} (pyproject.toml)")


def _attribute(module_name: str, attribute: str) -> Any:
    """``module_name.attribute``, or :func:`missing` if lm-eval lacks the module or the attribute."""
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        # Only a missing lm-eval submodule is lm-eval's change; another missing package (lm-eval
        # itself, or one of its dependencies) keeps its own ImportError.
        if exc.name is None or exc.name == "lm_eval" or not (module_name + ".").startswith(exc.name + "."):
            raise
        raise missing(f"{module_name}.{attribute}") from None
    if not hasattr(module, attribute):
        raise missing(f"{module_name}.{attribute}")
    return getattr(module, attribute)


def load_yaml(path, resolve_func: bool = True) -> dict:
    """The task YAML at ``path`` read by lm-eval's private ``lm_eval.tasks._yaml_loader.load_yaml``,
    which resolves ``include`` and (with ``resolve_func``) ``!function`` as lm-eval's own task
    loading does."""
    return _attribute("lm_eval.tasks._yaml_loader", "load_yaml")(path, resolve_func=resolve_func)


@contextlib.contextmanager
def no_environment_report() -> Iterator[None]:
    """Skip what ``simple_evaluate`` adds to every result about the machine: ``pip list``, git and
    the like run as subprocesses, 0.6 s per call, and the harness records its own provenance.

    Patches ``lm_eval.evaluator.add_env_info`` and ``get_git_commit_hash`` for the block.
    """
    saved = _attribute("lm_eval.evaluator", "add_env_info"), _attribute("lm_eval.evaluator", "get_git_commit_hash")
    import lm_eval.evaluator as ev

    ev.add_env_info, ev.get_git_commit_hash = (lambda storage: None), (lambda: None)
    try:
        yield
    finally:
        ev.add_env_info, ev.get_git_commit_hash = saved


def set_lora_request(lm, request) -> None:
    """Make lm-eval's vLLM model ``lm`` score with LoRA ``request`` (None: the base model).

    ``VLLM.lora_request`` is the attribute its constructor sets and every generate and loglikelihood
    call hands to vLLM; lm-eval offers no API to change adapters.
    """
    if not hasattr(lm, "lora_request"):
        raise missing(LORA_REQUEST)
    lm.lora_request = request


class RecordedTask:
    """What lm-eval's task factory would have built a task from: its full config (``include``s
    and ``!function``s resolved, overrides applied) and its tags, with no dataset loaded."""

    def __init__(self, config: dict, tags=None):
        self.config, self.task_name = config, config["task"]
        self.tags = [tags] if isinstance(tags, str) else list(tags or ())


@contextlib.contextmanager
def recorded_tasks() -> Iterator[None]:
    """Make lm-eval's task factory record task configs instead of building tasks (which loads
    each dataset): inside the block, a task, group or tag loads as :class:`RecordedTask` leaves,
    groups staying lm-eval's ``Group`` objects. Groups, tags, includes and overrides are then
    resolved by lm-eval's own code, and nothing is downloaded.

    Patches ``lm_eval.tasks._factory.TaskFactory._build_task`` (which uses the private
    ``_load_full_config``) and ``lm_eval.tasks._factory.ConfigurableTask`` (inline group members).
    """
    factory = _attribute("lm_eval.tasks._factory", "TaskFactory")
    _attribute("lm_eval.tasks._factory", "ConfigurableTask")
    for name in ("_build_task", "_load_full_config"):
        if not hasattr(factory, name):
            raise missing(f"lm_eval.tasks._factory.TaskFactory.{name}")
    import lm_eval.tasks._factory as module

    def build_task(self, entry, overrides):
        config = self._load_full_config(entry, overrides)
        tags = config.get("tag")
        for key in ("tag", "group", "task_list"):  # what _build_task drops before building
            config.pop(key, None)
        return RecordedTask(config, tags)

    saved = factory._build_task, module.ConfigurableTask
    factory._build_task = build_task
    module.ConfigurableTask = lambda config: RecordedTask(config)
    try:
        yield
    finally:
        factory._build_task, module.ConfigurableTask = saved


def load_spec(task_manager, spec: str):
    """``TaskManager._load_spec``: one name (task, group or tag) or YAML path, built as a Task,
    a Group or a list of tasks (a tag). Raises KeyError for a name lm-eval does not know."""
    if not hasattr(task_manager, "_load_spec"):
        raise missing("lm_eval.tasks.TaskManager._load_spec")
    return task_manager._load_spec(spec)


def task_file_function(file: str, name: str):
    """Function ``name`` of the Python file ``file`` of a task folder, loaded as lm-eval loads a
    ``!function`` entry's module (under a name that is its path, reused while the file is
    unchanged): ``lm_eval.tasks._yaml_loader._load_module_with_cache``."""
    from pathlib import Path

    module = _attribute("lm_eval.tasks._yaml_loader", "_load_module_with_cache")(Path(file))
    if not hasattr(module, name):
        raise AttributeError(f"{file} has no function {name!r}")
    return getattr(module, name)
