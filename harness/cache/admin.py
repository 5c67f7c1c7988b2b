"""``harness cache ls | du | prune``: see and trim the content-addressed cache.

The cache holds ``<root>/<kind>/<key>`` entries (see :mod:`harness.cache.store`): ``models`` (GGUF models
converted to safetensors), ``adapters``, ``cells`` and ``traits`` are folders; ``data`` holds plain
files named ``<task>-<hash16>.jsonl``. Only names of that shape count as entries: anything else in
the cache (a run's temporary ``.<key>.*.tmp`` folder, a stray file) is reported, never removed.

Pruning renames an entry to ``.deleting-<key>-<pid>`` in its own kind folder before removing it,
so a concurrent run sees the entry either whole or gone, and it never touches a path outside the
cache root: a symlinked entry, or an entry under a kind folder that is a symlink, is skipped.

The cache is content-addressed, so a pruned entry is only ever recomputed, never wrong. The harness
does not touch an entry when it reuses one, so an entry's age (its newest mtime) is the time it was
written, not the last time a run read it.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import shutil
import stat
from dataclasses import dataclass, field
from pathlib import Path

from harness.errors import describe

KINDS = ("models", "adapters", "cells", "traits", "data")
KEY_RE = re.compile(r"[0-9a-f]{8,64}")  # stable_hash keys (20 hex digits today)
DATA_RE = re.compile(r"(?P<stem>.+)-(?P<hash>[0-9a-f]{16})\.jsonl")  # harness.api.tasks.write_rows
DAY = 86400.0


# --- scanning ------------------------------------------------------------------------------------

@dataclass
class Entry:
    kind: str
    key: str
    path: Path
    bytes: int = 0
    files: int = 0
    mtime: float = 0.0
    description: str = ""
    details: dict = field(default_factory=dict)
    symlink: str | None = None  # where a symlinked entry points (never followed)
    outside: str | None = None  # why the entry is not under the cache root, if it is not

    def age_days(self, now: float) -> float:
        return max(0.0, now - self.mtime) / DAY

    def short_key(self) -> str:
        match = DATA_RE.fullmatch(self.key)
        return (match["hash"] if match else self.key)[:8]

    def to_json(self, now: float) -> dict:
        return {"kind": self.kind, "key": self.key, "path": str(self.path), "bytes": self.bytes,
                "size": human_size(self.bytes), "files": self.files,
                "mtime": dt.datetime.fromtimestamp(self.mtime).astimezone().isoformat(timespec="seconds"),
                "age_days": round(self.age_days(now), 4), "description": self.description,
                "details": self.details, "symlink": self.symlink}


@dataclass
class Item:
    """Something in the cache that is not an entry: a temporary folder or a foreign file."""

    path: Path
    bytes: int
    files: int


@dataclass
class Scan:
    root: Path
    entries: list[Entry] = field(default_factory=list)
    temporary: list[Item] = field(default_factory=list)  # in-progress writes, interrupted deletes
    other: list[Item] = field(default_factory=list)  # anything else under the root
    warnings: list[str] = field(default_factory=list)


def human_size(n: float) -> str:
    """Binary units: 512 B, 1.5 KiB, 3.2 MiB, 1.0 GiB."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{int(n)} B" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


def human_age(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds < 60:
        return "now"
    if seconds < 3600:
        return f"{seconds // 60:.0f}m"
    if seconds < DAY:
        return f"{seconds // 3600:.0f}h"
    return f"{seconds // DAY:.0f}d"


def tree_size(path: Path) -> tuple[int, int, float]:
    """(bytes of regular files, their count, newest mtime of the path and all below it).

    Symlinks are never followed: a link counts for nothing, whatever it points to.
    """
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return 0, 0, 0.0
    if not stat.S_ISDIR(st.st_mode):
        return (st.st_size, 1, st.st_mtime) if stat.S_ISREG(st.st_mode) else (0, 0, st.st_mtime)
    total, files, newest = 0, 0, st.st_mtime
    for dirpath, dirnames, filenames in os.walk(path):  # followlinks=False
        for name in dirnames + filenames:
            try:
                s = os.lstat(os.path.join(dirpath, name))
            except FileNotFoundError:  # removed while we looked
                continue
            newest = max(newest, s.st_mtime)
            if stat.S_ISREG(s.st_mode):
                total += s.st_size
                files += 1
    return total, files, newest


def _is_entry_name(kind: str, name: str) -> bool:
    return bool(DATA_RE.fullmatch(name) if kind == "data" else KEY_RE.fullmatch(name))


def _is_temporary(kind: str, name: str) -> bool:
    # Cache.entry and write_json_atomic use ".<name>.*.tmp"; write_rows uses "<name>.<pid>.tmp".
    return name.startswith(".") or (kind == "data" and name.endswith(".tmp"))


def _inside(path: Path, root: Path) -> bool:
    return path == root or path.is_relative_to(root)


def scan(root: Path, kinds: tuple[str, ...] | list[str] = KINDS, describe: bool = True,
         now: float | None = None) -> Scan:
    """Every entry of ``kinds`` under ``root`` (resolved), newest first within each kind."""
    root = Path(root).expanduser().resolve()
    out = Scan(root)
    for kind in KINDS:
        kind_dir = root / kind
        if not kind_dir.exists() and not kind_dir.is_symlink():
            continue
        if not kind_dir.is_dir():  # a file, or a dangling link, where a kind folder belongs
            out.other.append(Item(kind_dir, *tree_size(kind_dir)[:2]))
            continue
        outside = None
        if kind_dir.is_symlink():
            real = kind_dir.resolve()
            outside = f"{kind_dir} is a symlink to {real}" + ("" if _inside(real, root) else ", outside the cache")
        if kind not in kinds:
            continue
        if outside:
            out.warnings.append(f"{outside}: its entries are listed but never pruned")
        try:
            children = sorted(kind_dir.iterdir())
        except OSError as exc:
            out.warnings.append(f"cannot read {kind_dir}: {exc.strerror}")
            continue
        entries = []
        for child in children:
            name = child.name
            if _is_temporary(kind, name):
                out.temporary.append(Item(child, *tree_size(child)[:2]))
                continue
            if not _is_entry_name(kind, name):
                out.other.append(Item(child, *tree_size(child)[:2]))
                continue
            entry = Entry(kind, name, child, outside=outside)
            if child.is_symlink():
                entry.symlink = os.readlink(child)
                entry.mtime = child.lstat().st_mtime
                entry.description = f"symlink to {entry.symlink} (not followed)"
            else:
                entry.bytes, entry.files, entry.mtime = tree_size(child)
                if describe:
                    entry.description, entry.details = describe_entry(kind, child)
            entries.append(entry)
        entries.sort(key=lambda e: (-e.mtime, e.key))
        out.entries += entries
    for child in sorted(root.iterdir()):
        if child.name not in KINDS:
            out.other.append(Item(child, *tree_size(child)[:2]))
    if describe:
        _name_traits([e for e in out.entries if e.kind == "traits"])
    return out


# --- what an entry is -----------------------------------------------------------------------------

MAX_READ = 16 << 20  # never read more than this to describe an entry


def _read_json(path: Path):
    if path.stat().st_size > MAX_READ:
        raise ValueError(f"{path.name} is too large to read for a description")
    return json.loads(path.read_text())


def _num(value, fmt: str = ".3f") -> str:
    return format(value, fmt) if isinstance(value, (int, float)) and not isinstance(value, bool) else "?"


def describe_entry(kind: str, path: Path) -> tuple[str, dict]:
    """A one-line description and the fields it came from; never raises."""
    try:
        if kind == "adapters":
            log = _read_json(path / "train_log.json")
            details = {"source": log.get("source"), "steps": log.get("total_steps", len(log.get("steps", []))),
                       "first_loss": log.get("first_loss"), "last_loss": log.get("last_loss"),
                       "examples": log.get("examples"), "seconds": log.get("seconds")}
            return (f"{details['source'] or '?'}: {details['steps']} steps, loss {_num(details['first_loss'], '.3g')}"
                    f"→{_num(details['last_loss'], '.3g')}"), details
        if kind == "cells":
            cell = _read_json(path / "cell.json")
            details = {k: cell.get(k) for k in ("model", "target", "value", "metric", "n", "seconds")}
            metric = str(details["metric"] or "").split(",")[0]
            value = _num(details["value"]) if details["value"] is not None else "no value"
            n = f" (n={details['n']})" if details["n"] is not None else ""
            return f"{details['model']} on {details['target']}: {value} {metric}{n}".rstrip(), details
        if kind == "models":
            config = _read_json(path / "config.json")
            name = config.get("_name_or_path") or config.get("_model_name_or_path") or ""
            archs = config.get("architectures") or []
            details = {"name": name or None, "model_type": config.get("model_type"), "architectures": archs}
            what = name or (archs[0] if archs else details["model_type"]) or "a model"
            return f"{what} ({details['model_type'] or '?'}, converted from GGUF)", details
        if kind == "traits" and (path / "pairs.json").exists():  # a pair trait's source x target tables
            tables = _read_json(path / "pairs.json")
            if not isinstance(tables, dict):
                raise ValueError("pairs.json is not a mapping")
            return "pairs: " + ", ".join(tables), {"trait": None, "pairs": sorted(tables)}
        if kind == "traits":
            values = _read_json(path / "values.json")
            if not isinstance(values, dict):
                raise ValueError("values.json is not a mapping")
            trait = values.get("trait") if isinstance(values.get("trait"), str) else None
            details = {"trait": trait, "values": values}
            return (f"{trait}: " if trait else "") + ", ".join(k for k in values if k != "trait"), details
        if kind == "data":
            match = DATA_RE.fullmatch(path.name)
            rows = None
            if path.stat().st_size <= MAX_READ:
                with open(path, "rb") as fh:
                    rows = sum(1 for line in fh if line.strip())
            details = {"task": match["stem"] if match else None, "rows": rows}
            return f"{details['task']} test rows" + (f": {rows}" if rows is not None else ""), details
    except FileNotFoundError as exc:
        return f"incomplete: no {Path(exc.filename).name}", {}
    except (OSError, ValueError) as exc:  # ValueError covers malformed JSON
        return f"unreadable: {describe(exc)}", {}
    return "", {}


def _name_traits(entries: list[Entry]) -> None:
    """values.json (pairs.json) does not record its trait; name it from the traits' declared outputs."""
    if not entries:
        return
    try:
        from harness.api.plugins import catalog

        cat = catalog()
        outputs = {name: set(cat.get("trait", name).obj.outputs) for name in cat.names("trait")}
    except Exception:  # a broken plugin must not break listing the cache
        return
    for entry in entries:
        values = entry.details.get("values", dict.fromkeys(entry.details.get("pairs", [])))
        if not isinstance(values, dict) or entry.details.get("trait"):
            continue
        keys = set(values)
        names = [n for n, outs in outputs.items() if outs == keys] or \
                [n for n, outs in outputs.items() if keys and keys <= outs]
        if len(names) == 1:
            entry.details["trait"] = names[0]
            entry.description = f"{names[0]}: {entry.description}"


# --- removing -------------------------------------------------------------------------------------

def removable(entry: Entry, root: Path) -> str | None:
    """None when ``entry`` may be removed, else why not."""
    if entry.outside:
        return entry.outside
    if entry.symlink is not None:
        return f"a symlink (to {entry.symlink}); never followed"
    if not _is_entry_name(entry.kind, entry.key) or entry.path != root / entry.kind / entry.key:
        return "not a cache entry"
    return None


def remove_entry(entry: Entry, root: Path) -> int:
    """Remove one entry; return the bytes freed (0 when it was already gone).

    The entry is first renamed, within its kind folder, to ``.deleting-<key>-<pid>``: from then on
    ``Cache.has`` is false and no reader can open a half-deleted entry.
    """
    root = Path(root).resolve()
    why = removable(entry, root)
    if why:
        raise PermissionError(why)
    kind_dir = root / entry.kind
    if kind_dir.is_symlink() or kind_dir.resolve() != kind_dir:
        raise PermissionError(f"{kind_dir} is a symlink")
    tomb = kind_dir / f".deleting-{entry.key}-{os.getpid()}"
    try:
        os.rename(kind_dir / entry.key, tomb)
    except FileNotFoundError:
        return 0  # another prune got there first
    if tomb.is_symlink():  # swapped for a link since the scan: put it back, touch nothing
        os.rename(tomb, kind_dir / entry.key)
        raise PermissionError("became a symlink; never followed")
    if tomb.is_dir():
        shutil.rmtree(tomb)
    else:
        tomb.unlink()
    return entry.bytes


def disk_usage(result: Scan) -> dict:
    kinds = {k: {"entries": 0, "bytes": 0} for k in KINDS}
    for e in result.entries:
        kinds[e.kind]["entries"] += 1
        kinds[e.kind]["bytes"] += e.bytes
    temporary = {"items": len(result.temporary), "bytes": sum(i.bytes for i in result.temporary)}
    other = {"items": len(result.other), "bytes": sum(i.bytes for i in result.other)}
    entries = sum(k["entries"] for k in kinds.values())
    total = sum(k["bytes"] for k in kinds.values()) + temporary["bytes"] + other["bytes"]
    for part in (*kinds.values(), temporary, other):
        part["size"] = human_size(part["bytes"])
    return {"cache_dir": str(result.root), "kinds": kinds, "temporary": temporary, "other": other,
            "total": {"entries": entries, "bytes": total, "size": human_size(total)}}
