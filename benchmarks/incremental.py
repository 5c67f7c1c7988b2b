"""Re-runs: cold, warm (nothing changed) and with one added target, in a fresh cache.

``harness run`` processes on a small registry (3 sources with small n_train and steps; 3 targets
at the default registry's 100 rows; traits, decomposers and analysis as in registry.yaml), each
timed by wall clock of the whole process:

1. cold: a fresh cache (only the converted base model is copied in beforehand, so the one-off GGUF
   conversion is not counted): trains every adapter, scores every cell, analyses, reports;
2. warm: the same registry again: everything comes from the cache;
3. added target, once per ``--added`` target (each on top of the previous registry): scores only
   that column.

Figures: warm / cold (target: at most 0.05), and each added-target run's wall time over that
column's own evaluation time, the sum of the ``seconds`` recorded in the column's cell.json files
(target: at most 1.5). Their difference is the run's fixed cost (python and library imports, the
model load, traits, analysis and report), printed too: a column much cheaper than it cannot meet
1.5x, so two columns are measured by default, the cheapest of registry.yaml's targets (topic: one
short prompt, four one-word choices) and a generation target (arithmetic). CPU seconds (user +
system of each process) are reported too: they move far less than wall time when other work
shares the machine. (The column's cell seconds are wall time, so its ratio has no CPU counterpart.)
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as c  # noqa: E402

SOURCES = ("sentiment", "nli", "arithmetic")
TARGETS = ("sentiment", "nli", "ordering")
ADDED = ("topic", "arithmetic")


def main(argv=None) -> int:
    p = c.parser(__doc__.split("\n\n")[0])
    p.add_argument("--limit", type=int, help="Test rows per target (default 100; --quick 4).")
    p.add_argument("--added", help=f"Comma-separated targets added one run at a time (default {','.join(ADDED)}; "
                                   f"--quick {ADDED[0]}).")
    p.add_argument("--n-train", type=int, help="Training examples per source (default 64; --quick 16).")
    p.add_argument("--train-steps", type=int, help="Optimiser steps per adapter (default 8; --quick 2).")
    args = p.parse_args(argv)
    quick = args.quick
    limit = args.limit or (4 if quick else 100)
    added_targets = [t.strip() for t in args.added.split(",") if t.strip()] if args.added else \
        list(ADDED[:1] if quick else ADDED)
    if set(added_targets) & set(TARGETS) or len(set(added_targets)) != len(added_targets):
        p.error(f"--added must name distinct targets other than {', '.join(TARGETS)}")
    n_train = args.n_train or (16 if quick else 64)
    steps = args.train_steps or (2 if quick else 8)
    sources = SOURCES[:1] if quick else SOURCES
    targets = TARGETS[:1] if quick else TARGETS

    default = c.default_registry()
    base_model = c.model_config(args)
    with c.workspace(args) as (setup_root, work):
        c.ensure_model(base_model, setup_root, c.log)
        cache = work / "cache"
        c.copy_model(setup_root, cache)
        registry = {
            "experiment": "incremental", "output_dir": str(work / "out"), "cache_dir": str(cache),
            "base_model": base_model,
            "sources": [{"task": s, "n_train": n_train} for s in sources],
            "targets": [{"task": t, "limit": limit} for t in targets],
            "lora": {**default.lora.model_dump(mode="json"), "steps": steps},
            "evaluation": default.evaluation.model_dump(mode="json"),
            "traits": [t.model_dump(mode="json", exclude_none=True) for t in default.traits],
            "decomposers": [d.model_dump(mode="json", exclude_none=True) for d in default.decomposers],
            "analysis": default.analysis.model_dump(mode="json"),
        }
        reg_path = c.write_registry(work / "registry.yaml", registry)
        plan = [("cold", reg_path), ("warm", reg_path)]
        grown = registry
        for target in added_targets:
            grown = {**grown, "targets": grown["targets"] + [{"task": target, "limit": limit}]}
            plan.append((f"added {target}", c.write_registry(work / f"registry-added-{target}.yaml", grown)))

        runs = {}
        for name, path in plan:
            c.log(f"harness run: {name}")
            summary, seconds, cpu = c.harness_run(path)
            runs[name] = {"seconds": seconds, "cpu_seconds": cpu, "stages": summary["seconds"], "computed": summary["computed"],
                          "reused": summary["reused"], "failures": len(summary["failures"])}
        cells = [json.loads(f.read_text()) for f in (cache / "cells").glob("*/cell.json")]

    n_models = len(sources) + 1
    expect = {"cold": {"adapters": len(sources), "cells": n_models * len(targets)},
              "warm": {"adapters": 0, "cells": 0},
              **{f"added {t}": {"adapters": 0, "cells": n_models} for t in added_targets}}
    for name, want in expect.items():
        if runs[name]["computed"] != want:
            raise SystemExit(f"{name} run computed {runs[name]['computed']}, expected {want}")
    cold, warm = runs["cold"]["seconds"], runs["warm"]["seconds"]
    warm_ratio = c.ratio(warm, cold)
    cpu_warm_ratio = c.ratio(runs["warm"]["cpu_seconds"], runs["cold"]["cpu_seconds"])
    added = {}
    for t in added_targets:
        column = [cell for cell in cells if cell["target"] == t]
        column_seconds = sum(cell["seconds"] for cell in column)
        wall = runs[f"added {t}"]["seconds"]
        added[t] = {"seconds": round(wall, 3), "cpu_seconds": round(runs[f"added {t}"]["cpu_seconds"], 3),
                    "column_eval_seconds": round(column_seconds, 3), "column_cells": len(column),
                    "fixed_seconds": round(wall - column_seconds, 3), "ratio": c.ratio(wall, column_seconds)}

    print(f"\n{len(sources)} sources x {len(targets)} targets (+ {', '.join(added_targets)}, one at a time), "
          f"n_train {n_train}, {steps} steps, limit {limit}, model {c.model_label(args)}; "
          "wall clock of each `harness run` process")
    c.table(["run", "wall s", "cpu s", "computed", "reused", "stages (s)"],
            [[name, r["seconds"], r["cpu_seconds"], f"{r['computed']['adapters']} adapters, {r['computed']['cells']} cells",
              f"{r['reused']['adapters']} adapters, {r['reused']['cells']} cells",
              " ".join(f"{k}={v:.1f}" for k, v in r["stages"].items())] for name, r in runs.items()])
    c.table(["figure", "value", "target"],
            [["warm / cold (wall)", warm_ratio, "<= 0.05"],
             ["warm / cold (cpu)", cpu_warm_ratio, ""]]
            + [[f"added {t} / its column's evaluation ({a['column_eval_seconds']:.1f}s in {a['column_cells']} cells; "
                f"fixed cost {a['fixed_seconds']:.1f}s)", a["ratio"], "<= 1.5"] for t, a in added.items()],
            title="Ratios")
    result = {
        "benchmark": "incremental", "model": c.model_label(args), "quick": quick,
        "sources": list(sources), "targets": list(targets), "added_targets": added_targets,
        "n_train": n_train, "train_steps": steps, "limit": limit,
        "timed": "wall clock of each whole `harness run` process (python start included)",
        "cold_seconds": round(cold, 3), "warm_seconds": round(warm, 3),
        "cold_cpu_seconds": round(runs["cold"]["cpu_seconds"], 3), "warm_cpu_seconds": round(runs["warm"]["cpu_seconds"], 3),
        "warm_over_cold": warm_ratio, "warm_over_cold_cpu": cpu_warm_ratio,
        "added": added,
        "targets_met": {"warm_over_cold<=0.05": warm_ratio is not None and warm_ratio <= 0.05,
                        **{f"added {t} over column eval<=1.5": a["ratio"] is not None and a["ratio"] <= 1.5
                           for t, a in added.items()}},
        "stage_seconds": {name: r["stages"] for name, r in runs.items()},
        "machine": c.machine(),
    }
    c.emit(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
