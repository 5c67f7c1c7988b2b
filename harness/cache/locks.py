"""Runs that share a cache, coordinated: one lock per job, so that no job is computed twice.

Each job (``kind/key``) has its own lock file under ``<cache>/.locks/``. filelock's native lock
is ``flock`` on Unix, whose file stays after release (deleting it would let a waiter lock an
unlinked inode while a newcomer locks a new file), ``msvcrt`` on Windows; the OS drops either when
the process dies, so a killed run never leaves a job locked.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from filelock import FileLock, Timeout

if TYPE_CHECKING:
    from harness.cache.store import Cache

LOCKS = ".locks"  # one lock file per job, under the cache root; never deleted (that would race)


@contextlib.contextmanager
def job_lock(root: Path, kind: str, key: str, blocking: bool = True, timeout: float | None = None) -> Iterator[bool]:
    """Hold the lock of job ``kind/key`` of the cache at ``root`` inside the block; yields whether
    it was acquired (blocking: after at most ``timeout`` seconds when given; not blocking: one try).
    Not re-entrant: :meth:`Cache.lock` adds that."""
    folder = Path(root) / LOCKS
    folder.mkdir(parents=True, exist_ok=True)
    lock = FileLock(folder / f"{kind}-{key}.lock")
    try:
        lock.acquire(timeout=(-1 if timeout is None else timeout) if blocking else 0)  # 0: one attempt
    except Timeout:
        yield False
        return
    try:
        yield True
    finally:
        lock.release()


def claimed(cache: Cache, kind: str, jobs: list, console, what):
    """The jobs this run should compute, each yielded while this run holds its lock.

    Runs sharing a cache: a job another run holds is put off until the rest are done, then waited
    for; a job found finished (by another run, meanwhile) is marked cached and skipped. So no job
    is computed twice, and nobody idles while there is other work.
    """
    later = []
    for job in jobs:
        with cache.lock(kind, job.key, blocking=False) as mine:
            if not mine:
                later.append(job)
                continue
            if cache.has(kind, job.key):
                job.cached = True
                continue
            yield job
    for job in later:
        console.log(f"waiting for another run sharing the cache to finish {what(job)}")
        with cache.lock(kind, job.key):
            if cache.has(kind, job.key):
                job.cached = True
                continue
            yield job


@contextlib.contextmanager
def claimed_now(cache: Cache, kind: str, jobs: list) -> Iterator[tuple[list, list]]:
    """``(mine, later)``: the jobs this run can compute now, all their locks held inside the block
    (so they can be computed together, as one call), and the ones another run holds, to go
    through :func:`claimed` afterwards. A job found finished is marked cached and in neither."""
    mine, later = [], []
    with contextlib.ExitStack() as stack:
        for job in jobs:
            if not stack.enter_context(cache.lock(kind, job.key, blocking=False)):
                later.append(job)
            elif cache.has(kind, job.key):
                job.cached = True
            else:
                mine.append(job)
        yield mine, later
