"""A content-addressed cache shared by runs: converted models, adapters and evaluation cells.

Every entry lives at ``<root>/<kind>/<key>`` where ``key`` hashes everything that determines its
content, so a changed input simply misses and an unchanged one is reused.

* Entries appear atomically: they are built in a temporary sibling and renamed into place, so a
  killed run never leaves a half-written entry that a later run would trust; the temporary
  folders a killed run leaves behind are removed by the next run (:meth:`Cache.clean_leftovers`).
* Every entry carries ``MANIFEST.json``: the size and SHA-256 of each of its files. An entry that
  no longer matches it (truncated, damaged, edited) is reported and set aside, and is then
  recomputed like any missing entry.
* Runs sharing a cache coordinate through one lock file per job (:meth:`Cache.lock`, ``filelock``):
  the run holding it computes the job; another run does other work meanwhile, then waits, then
  finds the entry finished, so no job is done twice at the same time.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from harness.cache.locks import LOCKS, job_lock
from harness.errors import describe
from harness.files import file_sha256, write_json_atomic

log = logging.getLogger(__name__)
MANIFEST = "MANIFEST.json"


def default_cache_dir() -> Path:
    if os.environ.get("HARNESS_CACHE_DIR"):
        return Path(os.environ["HARNESS_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "transfer-harness"


def _manifest(folder: Path) -> dict:
    """Size and SHA-256 of every file under ``folder`` (the manifest itself excluded)."""
    files = {}
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and p.name != MANIFEST):
        files[path.relative_to(folder).as_posix()] = {"size": path.stat().st_size, "sha256": file_sha256(path)}
    return {"files": files}


class Cache:
    """Entries are directories under ``root/kind/key``; an entry exists once it is complete.

    ``warn`` receives a message for every damaged entry found (default: the module's logger);
    ``repairs`` keeps them, for the run's provenance.
    """

    # Files above this size are checked by size only when an entry is looked up, and in full by
    # :meth:`verify` where it is about to be used (a converted base model is hundreds of MB).
    QUICK_CHECK_BYTES = 64 << 20

    def __init__(self, root: str | Path, warn: Callable[[str], None] | None = None):
        self.root = Path(root).expanduser().resolve()
        self.warn = warn or log.warning
        self.repairs: list[str] = []
        self._held: set[tuple[str, str]] = set()  # job locks this process holds (re-entrant)

    def path(self, kind: str, key: str) -> Path:
        return self.root / kind / key

    def has(self, kind: str, key: str) -> bool:
        """Whether a sound entry exists. A damaged one is reported, set aside and counts as missing."""
        if not self.path(kind, key).is_dir():
            return False
        return self.verify(kind, key, full=False)

    def problem(self, kind: str, key: str, full: bool = True) -> str | None:
        """What is wrong with an existing entry, or None. ``full=False`` hashes only files up to
        ``QUICK_CHECK_BYTES`` (larger ones are checked by size)."""
        folder = self.path(kind, key)
        try:
            manifest = json.loads((folder / MANIFEST).read_text())
            files = manifest["files"]
            if not isinstance(files, dict):
                raise TypeError("files is not a mapping")
        except FileNotFoundError:
            return f"it has no {MANIFEST} (written by an older version, or not by the harness)"
        except (OSError, ValueError, KeyError, TypeError) as exc:
            return f"its {MANIFEST} is unreadable ({describe(exc)})"
        for name, want in files.items():
            path = folder / name
            try:
                size = path.stat().st_size
            except OSError:
                return f"{name} is missing"
            if size != want.get("size"):
                return f"{name} is {size} bytes, not {want.get('size')} (truncated or changed)"
            if (full or size <= self.QUICK_CHECK_BYTES) and file_sha256(path) != want.get("sha256"):
                return f"{name} does not match its checksum (damaged or changed)"
        return None

    def verify(self, kind: str, key: str, full: bool = True) -> bool:
        """True when the entry is sound; otherwise report it, set it aside and return False."""
        problem = self.problem(kind, key, full)
        if problem is None:
            return True
        self.set_aside(kind, key, problem)
        return False

    def set_aside(self, kind: str, key: str, problem: str) -> None:
        """Report a damaged entry and remove it, so that it is recomputed."""
        message = f"cache entry {kind}/{key} is damaged: {problem}; it is set aside and will be recomputed"
        self.repairs.append(message)
        self.warn(message)
        self.discard(kind, key)

    def discard(self, kind: str, key: str) -> None:
        """Remove an entry: renamed out of the way first (atomic), so no reader sees half of it."""
        final = self.path(kind, key)
        if final.is_symlink():  # an entry linked in from elsewhere: drop the link, never its target
            final.unlink()
            return
        aside = final.with_name(f".{key}.{os.getpid()}.{time.monotonic_ns()}.discarded.tmp")
        try:
            os.replace(final, aside)
        except FileNotFoundError:
            return
        shutil.rmtree(aside, ignore_errors=True)

    @contextlib.contextmanager
    def entry(self, kind: str, key: str) -> Iterator[Path]:
        """Yield a temporary directory to fill; it becomes ``path(kind, key)``, with its manifest,
        on success only."""
        final = self.path(kind, key)
        final.parent.mkdir(parents=True, exist_ok=True)
        with self.lock(kind, key):  # so no cleanup removes the folder while it is being filled
            tmp = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".{key}.", suffix=".tmp"))
            try:
                yield tmp
                write_json_atomic(tmp / MANIFEST, _manifest(tmp))
                if final.exists() and self.problem(kind, key, full=False) is None:
                    shutil.rmtree(tmp)  # another run finished the same entry first: keep theirs
                else:
                    if final.exists():
                        self.discard(kind, key)
                    os.replace(tmp, final)
            except BaseException:
                shutil.rmtree(tmp, ignore_errors=True)
                raise

    @contextlib.contextmanager
    def lock(self, kind: str, key: str, blocking: bool = True, timeout: float | None = None) -> Iterator[bool]:
        """Hold the job lock of ``kind/key`` inside the block; yields whether it was acquired.

        Blocking, it waits for the lock (at most ``timeout`` seconds if given, then yields False);
        not blocking, it tries once and yields False if another run holds it. Re-entrant within
        this cache object. Released when the block ends or the process dies.
        """
        if not blocking and timeout is not None:
            raise ValueError(f"Cache.lock({kind!r}, {key!r}): timeout={timeout!r} needs blocking=True "
                             "(a non-blocking attempt never waits); pass one or the other")
        if (kind, key) in self._held:
            yield True
            return
        with job_lock(self.root, kind, key, blocking, timeout) as acquired:
            if not acquired:
                yield False
                return
            self._held.add((kind, key))
            try:
                yield True
            finally:
                self._held.discard((kind, key))

    def clean_leftovers(self, file_age: float = 3600.0) -> list[Path]:
        """Remove what killed runs left in the cache: temporary entry folders whose job lock is
        free (a live run filling one holds it), and temporary files (from atomic writes, which
        take no lock) older than ``file_age`` seconds. Returns what was removed."""
        removed = []
        if not self.root.is_dir():
            return removed
        now = time.time()
        for kind_dir in (p for p in self.root.iterdir() if p.is_dir() and p.name != LOCKS):
            for tmp in kind_dir.glob(".*.tmp"):
                if tmp.is_dir():
                    with self.lock(kind_dir.name, tmp.name[1:].split(".", 1)[0], blocking=False) as free:
                        if free:
                            shutil.rmtree(tmp, ignore_errors=True)
                            removed.append(tmp)
                else:
                    with contextlib.suppress(OSError):
                        if now - tmp.stat().st_mtime > file_age:
                            tmp.unlink()
                            removed.append(tmp)
        return removed
