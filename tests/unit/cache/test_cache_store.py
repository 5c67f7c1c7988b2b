"""The cache's own guarantees: entries carry a manifest and damage is classified; job locks exclude
other processes, are re-entrant in one, give up after a timeout, and spare held entries from cleanup."""

from __future__ import annotations

import json
import os
import time

import pytest

from harness.cache.store import MANIFEST, Cache


def test_entries_carry_a_manifest_and_damage_is_classified(tmp_path):
    cache = Cache(tmp_path, warn=lambda message: None)
    with cache.entry("cells", "k1") as tmp:
        (tmp / "cell.json").write_text('{"value": 1}')
        (tmp / "big.bin").write_bytes(b"x" * 100)
    manifest = json.loads((cache.path("cells", "k1") / MANIFEST).read_text())
    assert set(manifest["files"]) == {"cell.json", "big.bin"}
    assert cache.problem("cells", "k1") is None and cache.has("cells", "k1")
    # Same size, other bytes: only the checksum can tell; the quick check hashes small files too.
    (cache.path("cells", "k1") / "big.bin").write_bytes(b"y" * 100)
    assert "does not match its checksum" in cache.problem("cells", "k1", full=False)
    cache.QUICK_CHECK_BYTES = 10  # above it, the quick check compares sizes only
    assert cache.problem("cells", "k1", full=False) is None
    assert "checksum" in cache.problem("cells", "k1", full=True)
    (cache.path("cells", "k1") / "big.bin").write_bytes(b"x" * 100)
    (cache.path("cells", "k1") / "cell.json").write_text('{"val')
    assert "cell.json is 5 bytes, not 12" in cache.problem("cells", "k1", full=False)
    (cache.path("cells", "k1") / "cell.json").unlink()
    assert cache.problem("cells", "k1") == "cell.json is missing"
    assert not cache.verify("cells", "k1") and not cache.path("cells", "k1").exists()
    assert len(cache.repairs) == 1 and "cells/k1 is damaged: cell.json is missing" in cache.repairs[0]


def _hold_lock(root: str, kind: str, key: str, ready, release) -> None:
    cache = Cache(root)
    with cache.lock(kind, key):
        ready.set()
        release.wait(30)


def test_locks_exclude_other_processes_and_cleanup_spares_held_entries(tmp_path):
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    ready, release = ctx.Event(), ctx.Event()
    holder = ctx.Process(target=_hold_lock, args=(str(tmp_path), "cells", "busy", ready, release))
    holder.start()
    try:
        assert ready.wait(60)
        cache = Cache(tmp_path)
        with cache.lock("cells", "busy", blocking=False) as mine:
            assert not mine
        with cache.lock("cells", "free", blocking=False) as mine:
            assert mine
            with cache.lock("cells", "free", blocking=False) as again:  # re-entrant in one process
                assert again
        (tmp_path / "cells").mkdir(exist_ok=True)
        busy = tmp_path / "cells" / ".busy.abc.tmp"
        dead = tmp_path / "cells" / ".dead.abc.tmp"
        busy.mkdir()
        dead.mkdir()
        stale_file = tmp_path / "cells" / ".x.json.123.tmp"
        stale_file.write_text("{")
        os.utime(stale_file, (time.time() - 7200, time.time() - 7200))
        fresh_file = tmp_path / "cells" / ".y.json.456.tmp"
        fresh_file.write_text("{")
        removed = set(cache.clean_leftovers())
        assert removed == {dead, stale_file}
        assert busy.exists() and fresh_file.exists()
    finally:
        release.set()
        holder.join(30)
    assert set(Cache(tmp_path).clean_leftovers()) == {busy}


def _contend(root: str, attempted, results) -> None:
    cache = Cache(root)
    with cache.lock("cells", "contested", blocking=False) as got:
        results.put(got)
        attempted.wait(60)  # both have tried before either lets go


def test_two_processes_contending_for_one_job_lock_get_it_once(tmp_path):
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    attempted, results = ctx.Barrier(2), ctx.Queue()
    racers = [ctx.Process(target=_contend, args=(str(tmp_path), attempted, results)) for _ in range(2)]
    for racer in racers:
        racer.start()
    got = sorted(results.get(timeout=60) for _ in racers)
    for racer in racers:
        racer.join(30)
    assert got == [False, True] and all(racer.exitcode == 0 for racer in racers)
    lock_file = tmp_path / ".locks" / "cells-contested.lock"
    assert lock_file.is_file()  # never deleted: a waiter and a newcomer must lock the same file


def test_a_blocking_lock_gives_up_after_its_timeout(tmp_path):
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    ready, release = ctx.Event(), ctx.Event()
    holder = ctx.Process(target=_hold_lock, args=(str(tmp_path), "cells", "busy", ready, release))
    holder.start()
    try:
        assert ready.wait(60)
        cache = Cache(tmp_path)
        start = time.monotonic()
        with cache.lock("cells", "busy", timeout=0.3) as mine:
            assert not mine
        assert time.monotonic() - start >= 0.3
        with pytest.raises(ValueError, match="timeout=1 needs blocking=True"):
            with cache.lock("cells", "busy", blocking=False, timeout=1):
                pass
    finally:
        release.set()
        holder.join(30)
    with Cache(tmp_path).lock("cells", "busy", timeout=30) as mine:  # free again once its holder is done
        assert mine
