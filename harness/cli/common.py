"""What the commands share: reporting a problem, the resume hint, SIGTERM, and running a command
on a registry file with the errors every such command turns into exit codes."""

from __future__ import annotations

import sys
from collections.abc import Callable
from contextlib import contextmanager

from harness.errors import HarnessError, RegistryError


def print_problem(exc: Exception) -> None:
    """An invalid registry (every problem, one per line), or why a run cannot start."""
    if isinstance(exc, RegistryError):
        # Plain lines, never wrapped: editors and CI annotators parse "file:line: message".
        print(f"{len(exc.problems)} problem(s) in {exc.filename}:", file=sys.stderr)
        for problem in exc.problems:
            print("  " + problem.format(exc.filename), file=sys.stderr)
    else:
        print(f"error: {exc}", file=sys.stderr)


def print_interrupted(err, argv: list[str]) -> None:
    import shlex

    from rich.markup import escape

    command = "harness " + " ".join(shlex.quote(a) for a in argv)
    err.print("[yellow]Interrupted.[/] Every adapter and cell finished so far is in the cache; nothing "
              f"else was kept. To resume, run the same command again:\n  {escape(command)}", markup=True,
              highlight=False, soft_wrap=True)


@contextmanager
def stop_on_sigterm():
    """SIGTERM (a batch scheduler's stop, `kill`) ends a run the way Ctrl-C does: cleanly, keeping
    every finished job, with the command that resumes it. The previous handler comes back when
    the command ends, so a process that calls ``main()`` (a test, a notebook) keeps its own."""
    import signal

    def stop(signum, frame):
        raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGTERM, stop)
    except ValueError:  # not the main thread (an embedding application): leave its handlers alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def load_registry_or_report(args):
    """The registry of ``args.registry``, or None after printing every problem it has."""
    from harness.config.registry import load_registry

    try:  # sources given on the command line (harness run --adapter/--checkpoint) join the file's
        return load_registry(args.registry, getattr(args, "extra_sources", ()))
    except RegistryError as exc:
        print_problem(exc)
        return None


def on_registry(args, err, body: Callable, prepare: Callable | None = None) -> int:
    """Run ``body(registry)`` on the command's registry: exit 2 for an invalid registry or for a
    run that cannot start (model not found, bad data, executor), 130 on Ctrl-C or SIGTERM, after
    which the same command resumes. ``prepare(registry)`` may refuse the command line first (a
    message: exit 2)."""
    registry = load_registry_or_report(args)
    if registry is None:
        return 2
    problem = prepare(registry) if prepare else None
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    try:
        with stop_on_sigterm():
            return body(registry)
    except HarnessError as exc:
        print_problem(exc)
        return 2
    except KeyboardInterrupt:
        print_interrupted(err, args.argv)
        return 130
