"""Runs that share a cache, coordinated: one lock per job, so that no job is computed twice."""

from __future__ import annotations

from harness.cache.store import Cache


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
