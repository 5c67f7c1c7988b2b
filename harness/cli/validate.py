"""``harness validate REGISTRY``: check a registry file; exit 2 listing every problem."""

from __future__ import annotations

from pathlib import Path

from harness.cli.common import load_registry_or_report


def add_parser(sub) -> None:
    val = sub.add_parser("validate", help="Check a registry file; exit 2 listing every problem.")
    val.add_argument("registry", type=Path)
    val.set_defaults(handler=main)


def main(args, err) -> int:
    registry = load_registry_or_report(args)
    if registry is None:
        return 2
    err.print(f"{args.registry}: ok ({len(registry.sources)} sources, {len(registry.targets)} targets)",
              markup=False, highlight=False)
    return 0
