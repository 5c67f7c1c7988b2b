"""``harness traits REGISTRY``: source and pair traits without fine-tuning (triage of candidate sources)."""

from __future__ import annotations

from pathlib import Path

from harness.cli.common import on_registry


def add_parser(sub) -> None:
    traits = sub.add_parser("traits", help="Compute source and pair traits of a registry without fine-tuning.")
    traits.add_argument("registry", type=Path)
    traits.add_argument("--out", type=Path, help="Output directory (default: the registry's output_dir).")
    traits.add_argument("--quiet", action="store_true")
    traits.add_argument("--json", action="store_true", help="Print the traits as JSON on stdout.")
    traits.set_defaults(handler=main)


def main(args, err) -> int:
    def body(registry) -> int:
        from harness.execution.pipeline import run_traits

        outcome = run_traits(registry, args.registry.resolve(), out=args.out, quiet=args.quiet)
        if args.json:
            print((outcome.run_dir / "traits.json").read_text())
        return outcome.exit_code

    return on_registry(args, err, body)
