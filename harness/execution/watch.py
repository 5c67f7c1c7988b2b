"""``harness run --watch``: run, then run again each time the registry (or a data file it names)
changes, until Ctrl-C.

A study grows one dataset at a time. Run by run, a new process pays python's imports and the base
model's load (about 8 s for SmolLM2 on 2 cores) before it can score the one column that is new;
here the process and the loaded base model (``executors.KeptModel``) carry over, and the cache
has everything else, so an edit costs just the work it adds.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from harness.config.registry import Registry
from harness.errors import RegistryError, describe

POLL_SECONDS = 0.25
# An editor's save can be several writes (truncate, write, rename): act once the files stop moving.
SETTLE_SECONDS = 0.2


def watched_files(registry_path: Path, registry: Registry | None) -> list[Path]:
    """The registry file, and the local data files its tasks read (already absolute)."""
    files = [registry_path]
    for use in [*registry.sources, *registry.targets, *registry.candidates] if registry else []:
        data = use.options.get("data_files")
        if isinstance(data, dict):
            files += [Path(p) for p in data.values() if isinstance(p, str) and "\0" not in p]
    return list(dict.fromkeys(files))


def fingerprint(files: list[Path]) -> tuple:
    """What changes when any of ``files`` is saved, replaced, created or deleted."""
    stamps = []
    for f in files:
        try:
            st = f.stat()
            stamps.append((st.st_ino, st.st_mtime_ns, st.st_size))
        except OSError:
            stamps.append(None)
    return tuple(stamps)


def wait_for_change(files: list[Path], seen: tuple, poll: float = POLL_SECONDS) -> None:
    """Return once ``files`` differ from ``seen`` and have been still for ``SETTLE_SECONDS``."""
    while fingerprint(files) == seen:
        time.sleep(poll)
    now = fingerprint(files)
    while True:
        time.sleep(SETTLE_SECONDS)
        later = fingerprint(files)
        if later == now:
            return
        now = later


def preload(registry: Registry, registry_path: Path, keep, status) -> None:
    """Load the base model into ``keep`` while the user edits, when the run did not need it (all
    cached), so that the first edit's run does not wait for it (nor for lm-eval's imports) either."""
    if registry.executor.kind != "local" or registry.evaluation.backend != "hf":
        return  # Ray workers load their own; vLLM loads its own copy
    from harness.config.paths import resolve_dirs
    from harness.model import loading as models

    _, cache = resolve_dirs(registry, registry_path, None)
    try:
        location = models.locate(registry.base_model, cache, download=False)
    except models.ModelNotFound:
        return  # the next run says what is missing
    if keep.holds(location, registry.base_model, cache):
        return
    status.print(f"Loading base model {registry.base_model.display_name} for the next run",
                 markup=False, highlight=False)
    try:
        keep.get(location, registry.base_model, cache)
        # And what scoring imports (lm-eval, datasets: about 1 s), so the next run starts at once.
        from harness.stages.evaluate import quiet_lm_eval

        quiet_lm_eval()
        import lm_eval.evaluator  # noqa: F401
        import lm_eval.models.huggingface  # noqa: F401
    except Exception as exc:  # the run that needs it will load it again, and report what fails
        status.print(f"warning: could not load the base model now ({describe(exc)}); "
                     "the next run will try again", markup=False, highlight=False)


def watch(registry_path: Path, registry: Registry, err, run_once: Callable, load: Callable[[], Registry],
          report_problem: Callable[[Exception], None], load_model: bool = True) -> int:
    """Run ``registry``, then again after each change, keeping the base model loaded in between.

    ``run_once(registry, keep)`` does one run and returns its exit code; ``load()`` reads the
    registry again (raising ``RegistryError``, or ``ExecutorError`` when it conflicts with the
    command line); ``report_problem(exc)`` prints an invalid registry
    or a run that could not start (missing model or data, Ray unreachable) and the watch goes on.
    ``load_model``: load the base model after a run that did not (not for dry runs).
    Ctrl-C while waiting ends it with the last run's exit code; Ctrl-C during a run propagates.
    """
    from harness.errors import DataError, ExecutorError, ModelNotFound
    from harness.model.kept import KeptModel

    keep = KeptModel()
    code = 0
    try:
        while True:
            files = watched_files(registry_path, registry)
            seen = fingerprint(files)  # before the run: an edit made during it triggers the next
            if registry is not None:
                try:
                    code = run_once(registry, keep)
                except (ModelNotFound, DataError, ExecutorError) as exc:
                    report_problem(exc)
                    code = 2
            extra = len(files) - 1
            try:
                if load_model and registry is not None:
                    preload(registry, registry_path, keep, err)
                err.print(f"Watching {registry_path.name}" + (f" and {extra} data file{'s' * (extra > 1)}" if extra else "")
                          + " for changes (Ctrl-C to stop)", markup=False, highlight=False)
                wait_for_change(files, seen)
            except KeyboardInterrupt:
                return code
            err.print(f"{registry_path.name} changed: running again", markup=False, highlight=False)
            try:
                registry = load()
            except (RegistryError, ExecutorError) as exc:  # invalid, or at odds with --executor/--address
                report_problem(exc)
                code, registry = 2, None  # nothing to run until the next change
    finally:
        keep.release()
