"""``harness recommend REGISTRY --target T``: rank sources for a target, including datasets not fine-tuned yet."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from harness.cli.common import on_registry


def add_parser(sub) -> None:
    rec = sub.add_parser("recommend", help="Rank sources for a target, including datasets not fine-tuned yet.",
                         description="Rank the run's sources for one target by measured transfer, and candidate "
                                     "datasets (the registry's `candidates`, or --candidates) by the transfer their "
                                     "traits predict, with a 90% interval. Needs a finished `harness run`.")
    rec.add_argument("registry", type=Path)
    rec.add_argument("--target", required=True, help="A target of the registry.")
    rec.add_argument("--candidates", nargs="*", default=[], help="Task names to consider besides the registry's candidates.")
    rec.add_argument("--out", type=Path, help="Output directory the run was written to (default: the registry's).")
    rec.add_argument("--json", action="store_true")
    rec.set_defaults(handler=main)


def main(args, err) -> int:
    def body(registry) -> int:
        from rich.console import Console

        from harness.execution.recommend import RecommendError, print_ranking, recommend_sources

        try:
            result = recommend_sources(registry, args.registry.resolve(), args.target, args.candidates, args.out)
        except (RecommendError, ValueError) as exc:  # ValueError: too few sources to fit a prediction
            print(f"error: {exc}", file=sys.stderr)
            return 2
        if args.json:
            print(json.dumps(result, indent=2))
        else:
            print_ranking(result, Console())
        return 0

    return on_registry(args, err, body)
