"""The harness's errors, under one base, and the record a failure leaves in ``results.json``.

Every error here is one the command line reports as a plain message with exit code 2 (invalid
input, or a run that cannot start); anything else that goes wrong inside a job is caught where
it happened, recorded with :func:`failure_record`, and costs only that job.
"""

from __future__ import annotations

import traceback
from dataclasses import dataclass


class HarnessError(Exception):
    """Base of the errors the harness raises on purpose: ``except HarnessError`` catches them all."""


class DataError(HarnessError, ValueError):
    """A data file that cannot be used as it is; the message names file, row and column."""


class ModelNotFound(HarnessError):
    """The base model (or a model file) is not on this machine and cannot be fetched."""


class ExecutorError(HarnessError):
    """The executor cannot run: Ray missing, cluster unreachable, or no node with the resources."""


class PluginError(HarnessError):
    """A plugin registered something invalid, or two plugins claimed one name."""


@dataclass
class Problem:
    """One problem of a registry file: the field's path, its line (when known) and what is wrong."""

    path: str
    line: int | None
    message: str

    def format(self, filename: str) -> str:
        where = f"{filename}:{self.line}" if self.line else filename
        return f"{where}: {self.path or '(top level)'}: {self.message}"


class RegistryError(HarnessError):
    """Every problem found in a registry file, each with its field path and line."""

    def __init__(self, filename: str, problems: list[Problem]):
        self.filename, self.problems = filename, problems
        super().__init__("\n".join(p.format(filename) for p in problems))


def describe(exc: BaseException) -> str:
    """How a failure reads in results and on the terminal: the exception's type, then its message."""
    return f"{type(exc).__name__}: {exc}"


def failure_record(stage: str, exc: BaseException, *, with_traceback: bool = True, **where) -> dict:
    """The entry ``results.json["failures"]`` holds for ``exc``: the stage, where it happened
    (``source``, ``target``, ``plugin``: whichever apply, in the order given), the error and, while
    the exception is being handled, the last frames of its traceback (the run's log keeps them;
    ``results.json`` leaves them out)."""
    record = {"stage": stage, **where, "error": describe(exc)}
    if with_traceback:
        record["traceback"] = traceback.format_exc(limit=5)
    return record
