"""Re-runs: cold, warm (nothing changed) and with one added target, in a fresh cache.

Three ``harness run`` processes on a small registry (sources x targets with small n_train, steps and
limits; traits, decomposers and analysis as in registry.yaml), each timed by wall clock of the
whole process:

1. cold: a fresh cache (only the converted base model is copied in beforehand, so the one-off GGUF
   conversion is not counted): trains every adapter, scores every cell, analyses, reports;
2. warm: the same registry again: everything comes from the cache;
3. added target: the registry plus one target: scores only that column.

Figures: warm / cold (target: at most 0.05), and the added-target run's wall time over that
column's own evaluation time, the sum of the ``seconds`` recorded in the column's cell.json files
(target: at most 1.5). CPU seconds (user + system of each process) are reported too: they move
far less than wall time when other work shares the machine. (The column's cell seconds are wall
time, so the second ratio has no CPU counterpart.)
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as c  # noqa: E402

SOURCES = ("sentiment", "nli", "arithmetic")
TARGETS = ("sentiment", "nli", "ordering")
ADDED = "topic"


def main(argv=None) -> int:
    p = c.parser(__doc__.split("\n\n")[0])
    p.add_argument("--limit", type=int, help="Test rows per target (default 40; --quick 4).")
    p.add_argument("--n-train", type=int, help="Training examples per source (default 64; --quick 16).")
    p.add_argument("--train-steps", type=int, help="Optimiser steps per adapter (default 8; --quick 2).")
    args = p.parse_args(argv)
    quick = args.quick
    limit = args.limit or (4 if quick else 40)
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
        added = {**registry, "targets": registry["targets"] + [{"task": ADDED, "limit": limit}]}
        added_path = c.write_registry(work / "registry-added.yaml", added)

        runs = {}
        for name, path in (("cold", reg_path), ("warm", reg_path), ("added_target", added_path)):
            c.log(f"harness run: {name}")
            proc, seconds, cpu = c.harness_cli("run", str(path), "--quiet", "--json", check=False)
            if proc.returncode not in (0, 1):
                sys.stderr.write(proc.stderr[-5000:])
                raise SystemExit(f"harness run ({name}) failed with exit code {proc.returncode}")
            summary = json.loads(proc.stdout)
            runs[name] = {"seconds": seconds, "cpu_seconds": cpu, "stages": summary["seconds"], "computed": summary["computed"],
                          "reused": summary["reused"], "failures": len(summary["failures"])}
        cells = [json.loads(f.read_text()) for f in (cache / "cells").glob("*/cell.json")]
        column = [cell for cell in cells if cell["target"] == ADDED]

    n_models = len(sources) + 1
    expect = {"cold": {"adapters": len(sources), "cells": n_models * len(targets)},
              "warm": {"adapters": 0, "cells": 0},
              "added_target": {"adapters": 0, "cells": n_models}}
    for name, want in expect.items():
        if runs[name]["computed"] != want:
            raise SystemExit(f"{name} run computed {runs[name]['computed']}, expected {want}")
    column_seconds = sum(cell["seconds"] for cell in column)
    cold, warm, add = (runs[k]["seconds"] for k in ("cold", "warm", "added_target"))
    warm_ratio = c.ratio(warm, cold)
    added_ratio = c.ratio(add, column_seconds)
    cpu_warm_ratio = c.ratio(runs["warm"]["cpu_seconds"], runs["cold"]["cpu_seconds"])

    print(f"\n{len(sources)} sources x {len(targets)} targets (+ {ADDED}), n_train {n_train}, {steps} steps, "
          f"limit {limit}, model {c.model_label(args)}; wall clock of each `harness run` process")
    c.table(["run", "wall s", "cpu s", "computed", "reused", "stages (s)"],
            [[name, r["seconds"], r["cpu_seconds"], f"{r['computed']['adapters']} adapters, {r['computed']['cells']} cells",
              f"{r['reused']['adapters']} adapters, {r['reused']['cells']} cells",
              " ".join(f"{k}={v:.1f}" for k, v in r["stages"].items())] for name, r in runs.items()])
    c.table(["figure", "value", "target"],
            [["warm / cold (wall)", warm_ratio, "<= 0.05"],
             ["warm / cold (cpu)", cpu_warm_ratio, ""],
             [f"added-target run / {ADDED} column's evaluation ({column_seconds:.1f}s in {len(column)} cells)",
              added_ratio, "<= 1.5"]], title="Ratios")
    result = {
        "benchmark": "incremental", "model": c.model_label(args), "quick": quick,
        "sources": list(sources), "targets": list(targets), "added_target": ADDED,
        "n_train": n_train, "train_steps": steps, "limit": limit,
        "timed": "wall clock of each whole `harness run` process (python start included)",
        "cold_seconds": round(cold, 3), "warm_seconds": round(warm, 3), "added_target_seconds": round(add, 3),
        "added_column_eval_seconds": round(column_seconds, 3), "added_column_cells": len(column),
        "cold_cpu_seconds": round(runs["cold"]["cpu_seconds"], 3), "warm_cpu_seconds": round(runs["warm"]["cpu_seconds"], 3),
        "added_target_cpu_seconds": round(runs["added_target"]["cpu_seconds"], 3),
        "warm_over_cold": warm_ratio, "warm_over_cold_cpu": cpu_warm_ratio,
        "added_target_over_column_eval": added_ratio,
        "targets_met": {"warm_over_cold<=0.05": warm_ratio is not None and warm_ratio <= 0.05,
                        "added_target_over_column_eval<=1.5": added_ratio is not None and added_ratio <= 1.5},
        "stage_seconds": {name: r["stages"] for name, r in runs.items()},
        "machine": c.machine(),
    }
    c.emit(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
