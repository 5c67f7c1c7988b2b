"""``harness cache ls | du | prune | verify``: the command over :mod:`harness.cache.admin`.

``prune --keep REGISTRY`` keeps what a registry's plan uses: its keys are computed as
``harness run --dry-run`` computes them (:func:`needed_keys`).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from harness.api.lm_eval_tasks import RUN_ARGS
from harness.cache.admin import KINDS, Entry, Scan, disk_usage, human_age, human_size, removable, remove_entry, scan
from harness.cli.common import print_problem
from harness.errors import describe


class UsageError(Exception):
    """Bad arguments or an unusable cache folder: exit 2 with this message."""


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
    from harness.api.plugins import catalog
    from harness.cache.store import Cache
    from harness.config.paths import resolve_dirs
    from harness.config.registry import load_registry
    from harness.model import loading as models
    from harness.stages.plan import make_plan
    from harness.stages.traits import pair_trait_key, source_trait_key

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
    out.keys["adapters"] = {a.key for a in plan.adapters if not a.brought}  # brought ones live in their folders
    for target, config in plan.target_configs.items():
        if "unavailable" in config:
            # Its data is not readable here (a hub dataset in a dry run): its cell keys cannot be
            # computed, so every cell scored on a target of that name is kept instead.
            out.targets_by_name.add(target)
            out.notes.append(f"{registry_path}: target {target}: {config['unavailable']}; "
                             f"keeping every cell scored on {target!r}")
            continue
        out.keys["cells"] |= {c.key for c in plan.cells if c.target == target}
        if RUN_ARGS not in config:  # an lm-eval target reads its own data, never files in the cache
            out.keys["data"] |= {Path(p).name for p in config["dataset_kwargs"]["data_files"].values()}
    # Source traits, keyed as in harness.stages.traits.compute_all, for the sources and the candidates
    # (`harness recommend` caches theirs the same way). ``n`` is n_train: a task gives exactly that
    # many training examples or fails, and a failed trait caches nothing.
    extractors = [cat.get("trait", use.name).obj(**use.params) for use in registry.traits]
    for use in [*registry.sources, *registry.candidates]:
        if use.task is None:  # brought weights without their data: no source traits
            continue
        task = cat.get("task", use.task).obj(**use.options)
        for trait in extractors:
            if trait.scope != "source":
                continue
            out.keys["traits"].add(source_trait_key(trait, task, use.n_train, location.key))
    for trait in extractors:
        if trait.scope == "pair":
            out.keys["traits"].add(pair_trait_key(trait, plan.adapters, plan.target_configs, plan.tasks, location.key))
    return out


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
    cache.set_defaults(handler=main)
    return cache


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


def main(args, err=None) -> int:
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
        print_problem(exc)
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
    from harness.errors import DataError, PluginError
    from harness.model import loading as models

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
                errors.append((entry, f"{describe(exc)}"))
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
    """``python -m harness.cli.cache ls|du|prune ...``, the same as ``harness cache ...``."""
    parser = argparse.ArgumentParser(prog="harness")
    sub = parser.add_subparsers(dest="command", required=True)
    add_parser(sub)
    return main(parser.parse_args(["cache", *(sys.argv[1:] if argv is None else argv)]))


if __name__ == "__main__":
    sys.exit(cli())
