"""Where a run's files go: its run folder and its cache, resolved from the registry and the command line."""

from __future__ import annotations

from pathlib import Path

from harness.cache.store import Cache, default_cache_dir
from harness.config.registry import Registry


def resolve_dirs(registry: Registry, registry_path: Path | None, out: Path | None) -> tuple[Path, Cache]:
    """Run folder and cache; relative paths in a registry are relative to the registry file."""
    here = registry_path.parent if registry_path else Path.cwd()
    output = Path(out) if out else here / registry.output_dir
    cache_root = Path(registry.cache_dir).expanduser() if registry.cache_dir else default_cache_dir()
    if registry.cache_dir and not cache_root.is_absolute():
        cache_root = here / cache_root
    return output / registry.experiment, Cache(cache_root)
