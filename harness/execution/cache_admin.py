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

import argparse
import datetime as dt
import json
import os
import re
import shutil
import stat
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

KINDS = ("models", "adapters", "cells", "traits", "data")
KEY_RE = re.compile(r"[0-9a-f]{8,64}")  # stable_hash keys (20 hex digits today)
DATA_RE = re.compile(r"(?P<stem>.+)-(?P<hash>[0-9a-f]{16})\.jsonl")  # harness.api.tasks.write_rows
DAY = 86400.0


class UsageError(Exception):
    """Bad arguments or an unusable cache folder: exit 2 with this message."""


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
        return f"unreadable: {type(exc).__name__}: {exc}", {}
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


# --- what a registry needs ------------------------------------------------------------------------

@dataclass
class Needed:
    """The cache keys a registry's plan references, by kind."""

    registry: Path
    cache_root: Path
    keys: dict[str, set[str]] = field(default_factory=lambda: {k: set() for k in KINDS})
    targets_by_name: set[str] = field(default_factory=set)  # targets whose cell keys are unknown here
    notes: list[str] = field(default_factory=list)

    def protects(self, entry: Entry) -> bool:
        if entry.key in self.keys.get(entry.kind, ()):
            return True
        return entry.kind == "cells" and entry.details.get("target") in self.targets_by_name


def needed_keys(registry_path: Path) -> Needed:
    """Every key ``registry_path``'s plan references, computed as ``harness run --dry-run`` does:
    no model is loaded, nothing is downloaded, and nothing is written to the cache (generated test
    data goes to a scratch folder; its file names, which enter the cell keys, follow its content).

    Raises RegistryError, ModelNotFound (the base model is nowhere here: no key can be computed) and
    the plugins' own errors.
    """
    from harness.model import loading as models
    from harness.cache.store import Cache
    from harness.config.paths import resolve_dirs
    from harness.stages.plan import make_plan
    from harness.stages.traits import pair_trait_key, source_trait_key
    from harness.api.plugins import catalog
    from harness.config.registry import load_registry

    registry_path = Path(registry_path)
    registry = load_registry(registry_path)
    _, cache = resolve_dirs(registry, registry_path.resolve(), None)
    out = Needed(registry_path, cache.root)
    cat = catalog()
    with tempfile.TemporaryDirectory(prefix="harness-cache-keep-") as scratch:
        scratch_cache = Cache(scratch)
        location = models.locate(registry.base_model, scratch_cache, download=False)
        plan = make_plan(registry, cat, scratch_cache, location, dry_run=True)
    if location.how == "gguf":
        out.keys["models"].add(location.key)
    out.keys["adapters"] = {a.key for a in plan.adapters}
    for target, config in plan.target_configs.items():
        if "unavailable" in config:
            # Its data is not readable here (a hub dataset in a dry run): its cell keys cannot be
            # computed, so every cell scored on a target of that name is kept instead.
            out.targets_by_name.add(target)
            out.notes.append(f"{registry_path}: target {target}: {config['unavailable']}; "
                             f"keeping every cell scored on {target!r}")
            continue
        out.keys["cells"] |= {c.key for c in plan.cells if c.target == target}
        out.keys["data"] |= {Path(p).name for p in config["dataset_kwargs"]["data_files"].values()}
    # Source traits, keyed as in harness.stages.traits.compute_all, for the sources and the candidates
    # (`harness recommend` caches theirs the same way). ``n`` is n_train: a task gives exactly that
    # many training examples or fails, and a failed trait caches nothing.
    extractors = [cat.get("trait", use.name).obj(**use.params) for use in registry.traits]
    for use in [*registry.sources, *registry.candidates]:
        task = cat.get("task", use.task).obj(**use.options)
        for trait in extractors:
            if trait.scope != "source":
                continue
            out.keys["traits"].add(source_trait_key(trait, task, use.n_train, location.key))
    for trait in extractors:
        if trait.scope == "pair":
            out.keys["traits"].add(pair_trait_key(trait, plan.adapters, plan.target_configs, plan.tasks, location.key))
    return out


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


# --- the command ----------------------------------------------------------------------------------

def _common(parser: argparse.ArgumentParser) -> None:
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--cache-dir", type=Path, metavar="DIR",
                       help="The cache folder (default: $HARNESS_CACHE_DIR or ~/.cache/transfer-harness).")
    where.add_argument("--registry", type=Path, metavar="REGISTRY", help="Use this registry's cache_dir.")


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Add ``cache`` with its subcommands ``ls``, ``du`` and ``prune`` to ``subparsers``."""
    cache = subparsers.add_parser("cache", help="List, size and prune the cache of models, adapters and cells.",
                                  description="See what the content-addressed cache holds and remove what is no "
                                              "longer needed. Exit 0 ok, 1 some entries could not be removed, "
                                              "2 usage error.")
    sub = cache.add_subparsers(dest="cache_command", required=True, metavar="{ls,du,prune,verify}")
    ls = sub.add_parser("ls", help="One row per entry: kind, key, size, age and what it is.")
    _common(ls)
    ls.add_argument("--kind", action="append", metavar="KIND", help=f"Only this kind (repeatable): {', '.join(KINDS)}.")
    ls.add_argument("--json", action="store_true", help="A JSON list of entries (full keys, bytes, mtime).")
    du = sub.add_parser("du", help="Entries and bytes per kind, and in all.")
    _common(du)
    du.add_argument("--json", action="store_true")
    prune = sub.add_parser(
        "prune", help="Remove entries chosen by kind, age, or not needed by registries.",
        description="Remove the entries that pass every filter given. At least one filter, or --all, is "
                    "required, and --yes to actually remove (or --dry-run to only list). Example: "
                    "`harness cache prune --keep registry.yaml --yes` removes everything the registry's "
                    "experiment does not use. With --keep and neither --cache-dir nor --registry, the cache "
                    "is the kept registries' own.")
    _common(prune)
    prune.add_argument("--kind", action="append", metavar="KIND",
                       help=f"Only this kind (repeatable): {', '.join(KINDS)}.")
    prune.add_argument("--older-than", type=float, metavar="DAYS", help="Only entries last written more than DAYS ago.")
    prune.add_argument("--keep", action="extend", nargs="+", type=Path, metavar="REGISTRY", default=[],
                       help="Never remove what these registries' plans use (adapters, cells, traits, data, model).")
    prune.add_argument("--all", action="store_true", help="Select every entry (the other filters still apply).")
    prune.add_argument("--dry-run", action="store_true", help="List what would be removed; remove nothing.")
    prune.add_argument("--yes", action="store_true", help="Really remove (without it, prune lists and exits 2).")
    prune.add_argument("--json", action="store_true", help="Print what was (or would be) removed as JSON.")
    verify = sub.add_parser(
        "verify", help="Check every entry against its checksums; --fix removes the damaged ones.",
        description="Hash every file of every entry (models, adapters, cells, traits) and compare with the "
                    "entry's MANIFEST.json. Exit 0 all sound, 1 damaged entries found (removed with --fix: the "
                    "next run recomputes them), 2 usage error. A run checks what it uses by itself; this checks "
                    "everything, e.g. after copying a cache to another machine.")
    _common(verify)
    verify.add_argument("--kind", action="append", metavar="KIND", help="Only this kind (repeatable).")
    verify.add_argument("--fix", action="store_true", help="Remove damaged entries (they are recomputed when needed).")
    verify.add_argument("--json", action="store_true", help="A JSON list of {kind, key, problem}.")
    return cache


def _registry_error(exc) -> None:
    # Plain lines, never wrapped, as `harness validate` prints them.
    print(f"{len(exc.problems)} problem(s) in {exc.filename}:", file=sys.stderr)
    for problem in exc.problems:
        print("  " + problem.format(exc.filename), file=sys.stderr)


def _kinds(args) -> tuple[str, ...]:
    from harness.config.registry import did_you_mean

    kinds = getattr(args, "kind", None) or []
    for kind in kinds:
        if kind not in KINDS:
            raise UsageError(f"unknown kind {kind!r}{did_you_mean(kind, list(KINDS))}")
    return tuple(k for k in KINDS if k in kinds) or KINDS


def cache_root(args, keep_roots: list[Path] = ()) -> Path:
    """The cache the command works on: --cache-dir, --registry's, the kept registries' (when they
    agree), or the default. Raises UsageError when it does not exist."""
    if args.cache_dir is not None:
        root, where = args.cache_dir.expanduser(), "--cache-dir"
    elif args.registry is not None:
        from harness.config.paths import resolve_dirs
        from harness.config.registry import load_registry

        root = resolve_dirs(load_registry(args.registry), args.registry.resolve(), None)[1].root
        where = f"the cache_dir of {args.registry}"
    elif keep_roots:
        if len(set(keep_roots)) > 1:
            raise UsageError("the --keep registries use different caches ("
                             + ", ".join(sorted(map(str, set(keep_roots))))
                             + "); say which to prune with --cache-dir or --registry")
        root, where = keep_roots[0], "the cache of the --keep registries"
    else:
        from harness.cache.store import default_cache_dir

        root = default_cache_dir()
        where = "$HARNESS_CACHE_DIR" if os.environ.get("HARNESS_CACHE_DIR") else "the default"
    if not root.exists():
        raise UsageError(f"no cache at {root} ({where}); nothing has been cached there. "
                         "Pass --cache-dir DIR or --registry REGISTRY, or set HARNESS_CACHE_DIR.")
    if not root.is_dir():
        raise UsageError(f"{root} ({where}) is not a folder")
    return root.resolve()


def main(args) -> int:
    """Run ``harness cache <ls|du|prune>``; return the exit code."""
    from harness.errors import RegistryError

    try:
        kinds = _kinds(args)
        if args.cache_command == "prune":
            return _prune(args, kinds)
        if args.cache_command == "verify":
            return _verify(cache_root(args), kinds, args)
        root = cache_root(args)
        result = scan(root, kinds, describe=args.cache_command == "ls")
        _warn(result)
        return _ls(result, args) if args.cache_command == "ls" else _du(result, args)
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except RegistryError as exc:
        _registry_error(exc)
        return 2


def _verify(root: Path, kinds: tuple[str, ...], args) -> int:
    """Full checksum check of every folder entry; the damaged ones listed (and removed with --fix)."""
    from harness.cache.store import Cache

    cache = Cache(root, warn=lambda message: None)
    damaged, checked = [], 0
    for kind in (k for k in kinds if k != "data"):  # data files are named by their content's hash
        folder = root / kind
        if not folder.is_dir():
            continue
        for entry in sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")):
            checked += 1
            problem = cache.problem(kind, entry.name, full=True)
            if problem is not None:
                damaged.append({"kind": kind, "key": entry.name, "problem": problem})
                if args.fix:
                    cache.discard(kind, entry.name)
    if args.json:
        print(json.dumps({"checked": checked, "damaged": damaged, "removed": bool(args.fix)}, indent=2))
    else:
        for d in damaged:
            print(f"{d['kind']}/{d['key']}: {d['problem']}" + (" (removed)" if args.fix else ""))
        print(f"{checked} entries checked, {len(damaged)} damaged"
              + ("" if not damaged or args.fix else "; `harness cache verify --fix` removes them"))
    return 1 if damaged else 0


def _warn(result: Scan) -> None:
    for warning in result.warnings:
        print(f"warning: {warning}", file=sys.stderr)


FIXED = {"kind": 8, "key": 8, "size": 9, "age": 5}  # column widths; "what" takes what is left
OVERHEAD = 14  # SIMPLE_HEAD without edge padding: two edges, four separators, eight padding spaces


def _table(entries: list[Entry], now: float, width: int, title: str | None = None):
    from rich import box
    from rich.table import Table

    longest = max((len(e.description) for e in entries), default=4)
    what = max(12, min(longest, width - sum(FIXED.values()) - OVERHEAD))
    table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
    for name, w in FIXED.items():
        table.add_column(name, width=w, no_wrap=True, justify="right" if name in ("size", "age") else "left")
    table.add_column("what", width=what, no_wrap=True, overflow="ellipsis")
    for e in entries:
        table.add_row(e.kind, e.short_key(), human_size(e.bytes), human_age(now - e.mtime), e.description)
    return table


def _console():
    from rich.console import Console

    return Console(highlight=False)


def _ls(result: Scan, args) -> int:
    now = time.time()
    if args.json:
        print(json.dumps([e.to_json(now) for e in result.entries], indent=2))
        return 0
    console = _console()
    if not result.entries:
        console.print(f"No entries in {result.root}.", markup=False)
        return 0
    console.print(_table(result.entries, now, console.width))
    total = sum(e.bytes for e in result.entries)
    console.print(f"{len(result.entries)} entries, {human_size(total)}, in {result.root}", markup=False,
                  soft_wrap=True)
    return 0


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


def _du(result: Scan, args) -> int:
    usage = disk_usage(result)
    if args.json:
        print(json.dumps(usage, indent=2))
        return 0
    from rich import box
    from rich.table import Table

    table = Table(title=f"Cache {result.root}", title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
    table.add_column("kind")
    table.add_column("entries", justify="right")
    table.add_column("size", justify="right")
    table.add_column("bytes", justify="right")
    for kind, part in usage["kinds"].items():
        table.add_row(kind, str(part["entries"]), part["size"], f"{part['bytes']:,}")
    notes = []
    for name, why in (("temporary", "writes in progress or interrupted removals"),
                      ("other", "files that are no cache entries, never pruned")):
        part = usage[name]
        if part["items"]:
            items = f"{part['items']} item" + ("s" if part["items"] != 1 else "")
            table.add_row(name, items, part["size"], f"{part['bytes']:,}", style="dim")
            notes.append(f"{name}: {why}")
    total = usage["total"]
    table.add_section()
    table.add_row("total", str(total["entries"]), total["size"], f"{total['bytes']:,}", style="bold")
    console = _console()
    console.print(table)
    for note in notes:
        console.print(note, style="dim", markup=False)
    return 0


def _prune(args, kinds: tuple[str, ...]) -> int:
    from harness.model import loading as models
    from harness.errors import DataError
    from harness.errors import PluginError

    if args.older_than is not None and args.older_than < 0:
        raise UsageError("--older-than takes a number of days, 0 or more")
    if not (args.all or args.kind or args.older_than is not None or args.keep):
        raise UsageError("say what to prune: --kind KIND, --older-than DAYS, --keep REGISTRY, or --all "
                         "(add --dry-run to only list)")
    needed: list[Needed] = []
    for path in args.keep:
        try:
            needed.append(needed_keys(path))
        except (models.ModelNotFound, DataError, PluginError, KeyError, ValueError, OSError) as exc:
            # pydantic's ValidationError is a ValueError: a plugin's options it did not accept.
            raise UsageError(f"--keep {path}: cannot tell which entries it uses: {exc}") from None
    explicit = args.cache_dir is not None or args.registry is not None
    root = cache_root(args, [n.cache_root for n in needed] if not explicit else [])
    for n in needed:
        for note in n.notes:
            print(f"note: {note}", file=sys.stderr)
    now = time.time()
    result = scan(root, kinds, now=now)
    _warn(result)
    selected, protected = [], 0
    for entry in result.entries:
        if args.older_than is not None and entry.age_days(now) < args.older_than:
            continue
        if any(n.protects(entry) for n in needed):
            protected += 1
            continue
        selected.append(entry)
    skipped = [(e, why) for e in selected if (why := removable(e, root))]
    selected = [e for e in selected if not removable(e, root)]
    total = sum(e.bytes for e in selected)
    acting = args.yes and not args.dry_run
    removed, freed, errors = [], 0, []
    if acting:
        for entry in selected:
            try:
                freed += remove_entry(entry, root)
                removed.append(entry)
            except OSError as exc:
                errors.append((entry, f"{type(exc).__name__}: {exc}"))
    if args.json:
        print(json.dumps({"cache_dir": str(root), "dry_run": not acting,
                          "selected": [e.to_json(now) for e in selected], "selected_bytes": total,
                          "removed": len(removed), "bytes_freed": freed, "protected": protected,
                          "skipped": [{"kind": e.kind, "key": e.key, "reason": why} for e, why in skipped],
                          "errors": [{"kind": e.kind, "key": e.key, "error": msg} for e, msg in errors]}, indent=2))
    else:
        console = _console()
        kept = f"; {protected} kept for {', '.join(map(str, args.keep))}" if args.keep else ""
        if not selected:
            console.print(f"Nothing to remove in {root}{kept}.", markup=False, soft_wrap=True)
        else:
            title = f"{'Removed' if acting else 'Would remove'} from {root}"
            console.print(_table(removed if acting else selected, now, console.width, title=title))
            if acting:
                console.print(f"Removed {len(removed)} entries, freed {human_size(freed)}{kept}.", markup=False,
                              soft_wrap=True)
            else:
                console.print(f"Would remove {len(selected)} entries, freeing {human_size(total)}{kept}.",
                              markup=False, soft_wrap=True)
    for entry, why in skipped:
        print(f"warning: skipped {entry.kind}/{entry.key}: {why}", file=sys.stderr)
    for entry, msg in errors:
        print(f"error: could not remove {entry.kind}/{entry.key}: {msg}", file=sys.stderr)
    if selected and not args.yes and not args.dry_run:
        print(f"error: not removing {len(selected)} entries ({human_size(total)}) without --yes; "
              "add --yes to remove them, or --dry-run to only list them", file=sys.stderr)
        return 2
    return 1 if errors else 0


def cli(argv: list[str] | None = None) -> int:
    """``python -m harness.execution.cache_admin ls|du|prune ...``, the same as ``harness cache ...``."""
    parser = argparse.ArgumentParser(prog="harness")
    sub = parser.add_subparsers(dest="command", required=True)
    add_parser(sub)
    return main(parser.parse_args(["cache", *(sys.argv[1:] if argv is None else argv)]))


if __name__ == "__main__":
    sys.exit(cli())
