"""``harness validate REGISTRY``: check a registry file; exit 2 listing every problem."""

from __future__ import annotations

from pathlib import Path

from harness.cli.common import load_registry_or_report, print_problem


def add_parser(sub) -> None:
    val = sub.add_parser("validate", help="Check a registry file; exit 2 listing every problem.")
    val.add_argument("registry", type=Path)
    val.set_defaults(handler=main)


def main(args, err) -> int:
    registry = load_registry_or_report(args)
    if registry is None:
        return 2
    problem = brought_problems(registry, args.registry.resolve())
    if problem is not None:
        print_problem(problem)
        return 2
    err.print(f"{args.registry}: ok ({len(registry.sources)} sources, {len(registry.targets)} targets)",
              markup=False, highlight=False)
    return 0


def brought_problems(registry, registry_path: Path):
    """What ``harness run`` would refuse in the sources that bring weights (checked against the base
    model where it is on this machine; nothing is downloaded): a RegistryError, or None."""
    if all(use.kind == "trained" for use in registry.sources):
        return None
    from harness.config.paths import resolve_dirs
    from harness.errors import ModelNotFound, RegistryError
    from harness.model.loading import ModelLocation, locate
    from harness.stages.brought import bring

    _, cache = resolve_dirs(registry, registry_path, None)
    try:
        location = locate(registry.base_model, cache, download=False)
    except ModelNotFound:
        location = ModelLocation(key="unavailable", how="unavailable here")  # the files are still checked
    try:
        bring(registry, location, dry_run=True)
    except RegistryError as exc:
        return exc
    return None
