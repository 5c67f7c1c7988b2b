"""Scoring K adapters (+ the base model) on N targets: the harness versus one `lm_eval` command per model.

Both sides score the same converted model directory, the same adapter directories and the same
test rows:

* harness: ``harness run`` (a subprocess; wall clock of the whole process) on a registry whose
  adapters are already trained and cached but whose cells are not, so it loads the model once and
  scores every (model, target) cell (traits are off: plain lm_eval has no counterpart; matrix,
  analysis and report still run and are counted). It runs twice, before and after the lm_eval
  commands, each time into a fresh cache, and its figure is the mean: drift in the machine's load
  then hits both sides;
* lm_eval: what people run today, once per model, on the targets exported by
  ``harness export-task`` (the YAML and its rows):
  ``python -m lm_eval run --model hf --model_args pretrained=DIR[,peft=ADAPTER] --tasks Y1 .. YN
  --limit L [--batch_size B]`` -- with lm_eval's default batch size (what you get without
  ``--batch_size``: 1) and with the harness's batch size, the two settings alternating model by model.

Full runs also time a one-row lm_eval command (before and after the others): the fixed cost every
command pays. Per model, the harness's evaluate-stage seconds are compared with lm_eval's in-command
scoring (a command's wall time less that fixed cost): ``per_model_ratio`` (target <= 1.15), beside
the whole-run speedup at the same batch size (target >= 3).

Wall and CPU seconds (user + system of the processes, all threads) are both reported: CPU time moves
far less than wall time when other work shares the machine. Every (model, target) score must be
identical on both sides (|difference| <= 1e-9); any difference is printed and the script exits 1.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as c  # noqa: E402

TARGETS = ("arithmetic", "sentiment", "nli", "ordering")
TOLERANCE = 1e-9


def benchmark_registry(out_dir: Path, run_cache: Path, base_model: dict, sources: list[dict], targets, limit: int,
                       lora: dict, evaluation: dict, default, adapter_dirs: dict[str, Path],
                       yamls: dict[str, str]) -> dict:
    """The registry each timed `harness run` scores: the one place that says what the harness side is.

    The form the issue's Done-when names: K brought adapters (``adapter:``, the very folders the
    lm_eval commands get with ``peft=``) on N lm-eval YAML targets (``lm_eval:``, the very files the
    lm_eval commands get with ``--tasks``; their rows are the exported ``limit``). Aliases equal the
    source names and the targets are named by the exported tasks' names, which the score
    comparison looks cells up by. (``sources``, ``limit`` and ``lora`` stay in the signature for
    the trained-source form, kept below in a comment.)
    """
    del sources, lora  # the trained form: "sources": sources, "targets": [{"task": t, "limit": limit}], "lora": lora
    return {"experiment": "eval_vs_lm_eval", "output_dir": str(out_dir), "cache_dir": str(run_cache),
            "base_model": base_model,
            "sources": [{"alias": name, "adapter": str(path)} for name, path in adapter_dirs.items()],
            "targets": [{"lm_eval": yamls[t], "limit": limit} for t in targets],
            "evaluation": evaluation, "traits": [],
            "decomposers": [d.model_dump(mode="json", exclude_none=True) for d in default.decomposers],
            "analysis": default.analysis.model_dump(mode="json")}


def main(argv=None) -> int:
    p = c.parser(__doc__.split("\n\n")[0])
    p.add_argument("--adapters", type=int, help="K: adapters to score, the first K sources of registry.yaml "
                                                "(default 4; --quick 1).")
    p.add_argument("--targets", type=int, help=f"N: targets, the first N of {', '.join(TARGETS)} "
                                               "(default 4; --quick 1: sentiment).")
    p.add_argument("--limit", type=int, help="Test rows per target (default 20; --quick 8).")
    p.add_argument("--train-steps", type=int, help="Optimiser steps of each adapter built for the benchmark "
                                                   "(default 4; --quick 2). Weights do not change scoring cost.")
    p.add_argument("--lm-eval-batch-sizes",
                   help="Comma-separated lm_eval settings to time: 'default' (no --batch_size: lm_eval's 1), "
                        "'harness' (the harness's batch size) or an integer (default: default,harness; "
                        "--quick: default).")
    p.add_argument("--lm-eval-models", default="all",
                   help="Models to run through lm_eval: 'all' (default) or a comma-separated subset of 'base' and "
                        "source names (a smoke test; the speedups are then not computed).")
    p.add_argument("--harness-runs", type=int, help="harness runs bracketing the lm_eval commands (default 2; "
                                                    "--quick 1: before them only).")
    args = p.parse_args(argv)
    quick = args.quick
    k = args.adapters if args.adapters is not None else (1 if quick else 4)
    n = args.targets if args.targets is not None else (1 if quick else 4)
    limit = args.limit or (8 if quick else 20)
    steps = args.train_steps or (2 if quick else 4)
    harness_runs = args.harness_runs or (1 if quick else 2)
    targets = (("sentiment",) + tuple(t for t in TARGETS if t != "sentiment"))[:n] if quick else TARGETS[:n]
    if not (1 <= k <= 4 and 1 <= n <= len(TARGETS)):
        p.error(f"--adapters must be 1..4 and --targets 1..{len(TARGETS)}")

    default = c.default_registry()
    eval_bs = c.eval_batch_size(default.evaluation)
    bs_runs = []
    for item in (s.strip() for s in (args.lm_eval_batch_sizes or ("default" if quick else "default,harness")).split(",")):
        if item == "default":
            bs_runs.append(("default", None))
        elif item == "harness":
            bs_runs.append(("harness", eval_bs))
        elif item:
            bs_runs.append((item, int(item)))

    sources = [{"task": s.task, "n_train": 16 if quick else s.n_train, **({"options": s.options} if s.options else {})}
               for s in default.sources[:k]]
    base_model = c.model_config(args)
    lora = {**default.lora.model_dump(mode="json"), "steps": steps}
    evaluation = default.evaluation.model_dump(mode="json")

    with c.workspace(args) as (setup_root, work):
        setup = {"experiment": "bench_setup", "base_model": base_model, "sources": sources,
                 "targets": [{"task": "sentiment", "limit": 1}], "lora": lora, "evaluation": evaluation, "traits": []}
        _, model_dir = c.ensure_model(base_model, setup_root, c.log)
        adapter_dirs = c.ensure_adapters(c.registry_from(setup), setup_root, c.log)
        adapter_dirs = {s["task"]: adapter_dirs[s["task"]] for s in sources}

        # The targets as lm-eval YAML (and their rows), written by `harness export-task`: what the
        # lm_eval commands score (and, in the brought-adapter form below, the harness too).
        from harness.api.plugins import catalog

        cat = catalog()
        yamls = {}
        for t in targets:
            out = work / "export" / f"{t}.yaml"
            c.harness_cli("export-task", t, "-o", str(out), "--limit", str(limit))
            yamls[t] = str(out)
        metrics = {t: cat.get("task", t).obj().metric() for t in targets}

        def harness_side(i: int) -> dict:
            """One `harness run` into a fresh cache that links the trained adapters."""
            run_cache = work / f"run-cache-{i}"
            c.link_setup(setup_root, run_cache)
            registry = benchmark_registry(work / f"out-{i}", run_cache, base_model, sources, targets, limit, lora,
                                          evaluation, default, adapter_dirs, yamls)
            reg_path = c.write_registry(work / f"registry-{i}.yaml", registry)
            c.log(f"harness run {i}: {k + 1} models x {len(targets)} targets (limit {limit}, batch size {eval_bs})")
            summary, wall, cpu = c.harness_run(reg_path)
            bad = [f for f in summary["failures"] if f.get("stage") in ("finetune", "evaluate")]
            if bad or summary["computed"]["adapters"] or summary["computed"]["cells"] != (k + 1) * len(targets):
                raise SystemExit(f"harness run did not (only) evaluate: computed {summary['computed']}, failures {bad}")
            results = json.loads((Path(summary["run_dir"]) / "results.json").read_text())
            scores = {("base", t): results["base"][t]["value"] for t in targets}
            for s in adapter_dirs:
                scores.update({(s, t): results["scores"][s][t]["value"] for t in targets})
            # Each cell's seconds as filed in the cache (a joint lm-eval call's time split over its
            # cells by request count): summed per model, they are that model's scoring time.
            cell_seconds: dict[str, float] = {}
            for cell, key in results["provenance"]["config_hashes"]["cells"].items():
                model = cell.split("/")[0]  # "base" (the base model) or a source
                record = json.loads((run_cache / "cells" / key / "cell.json").read_text())
                cell_seconds[model] = cell_seconds.get(model, 0.0) + record["seconds"]
            return {"seconds": wall, "cpu_seconds": cpu, "stages": summary["seconds"], "scores": scores,
                    "cell_seconds": cell_seconds}

        runs = [harness_side(1)]
        ours = runs[0]["scores"]

        # --- lm_eval: one command per model, on the exported targets ---------------------------
        models = [("base", None)] + list(adapter_dirs.items())
        if args.lm_eval_models != "all":
            wanted = {m.strip() for m in args.lm_eval_models.split(",")}
            models = [m for m in models if m[0] in wanted]
            if not models:
                p.error(f"--lm-eval-models names none of base, {', '.join(adapter_dirs)}")
        complete = len(models) == k + 1

        def lm_eval(name: str, adapter, bs, out_dir: Path, tasks: list[str], rows: int):
            margs = f"pretrained={model_dir}" + (f",peft={adapter}" if adapter else "")
            cmd = [sys.executable, "-m", "lm_eval", "run", "--model", "hf", "--model_args", margs,
                   "--tasks", *tasks, "--limit", str(rows), "--output_path", str(out_dir)]
            if bs is not None:
                cmd += ["--batch_size", str(bs)]
            done, wall, cpu = c.run_timed(cmd, cwd=work)
            if done.returncode != 0:
                sys.stderr.write(done.stderr[-5000:])
                raise SystemExit(f"lm_eval failed for {name}: exit code {done.returncode}")
            (result_file,) = out_dir.rglob("results_*.json")
            return json.loads(result_file.read_text())["results"], wall, cpu

        floors = []

        def measure_floor() -> None:
            # What every lm_eval command costs before it scores much: imports, lm_eval's index of its
            # bundled tasks, the model, the dataset. One row of the first target, base model.
            c.log("lm_eval: one row, to measure a command's fixed cost")
            _, wall, cpu = lm_eval("base", None, eval_bs, work / "lm_eval" / f"floor-{len(floors)}",
                                   [yamls[targets[0]]], 1)
            floors.append({"seconds": wall, "cpu_seconds": cpu})

        if not quick:  # measured before and after the commands, like the harness runs
            measure_floor()

        lm_runs = {label: {"batch_size": bs if bs is not None else 1, "passed_batch_size": bs is not None,
                           "per_model_seconds": {}, "per_model_cpu_seconds": {}, "scores": {}}
                   for label, bs in bs_runs}
        for i, (name, adapter) in enumerate(models):
            order = bs_runs if i % 2 == 0 else bs_runs[::-1]  # alternate which setting goes first
            for label, bs in order:
                c.log(f"lm_eval ({'default batch size' if bs is None else f'--batch_size {bs}'}): {name}")
                row, wall, cpu = lm_eval(name, adapter, bs, work / "lm_eval" / f"bs-{label}" / name,
                                        list(yamls.values()), limit)
                r = lm_runs[label]
                r["per_model_seconds"][name], r["per_model_cpu_seconds"][name] = wall, cpu
                r["scores"].update({(name, t): row[t][metrics[t]] for t in targets})
        if not quick:
            measure_floor()
        floor = ({key: sum(f[key] for f in floors) / len(floors) for key in ("seconds", "cpu_seconds")}
                 if floors else None)
        for r in lm_runs.values():
            r["seconds"] = sum(r["per_model_seconds"].values())
            r["cpu_seconds"] = sum(r["per_model_cpu_seconds"].values())
            r["differences"] = {f"{m}/{t}": v - ours[(m, t)] for (m, t), v in r["scores"].items()
                                if abs(v - ours[(m, t)]) > TOLERANCE}

        for i in range(2, harness_runs + 1):
            runs.append(harness_side(i))
            changed = {f"{m}/{t}": v - ours[(m, t)] for (m, t), v in runs[-1]["scores"].items()
                       if abs(v - ours[(m, t)]) > TOLERANCE}
            if changed:
                print(f"DIFFERENCE harness run {i} against run 1: {changed}")

    # --- figures ---------------------------------------------------------------------------------
    h_wall = sum(r["seconds"] for r in runs) / len(runs)
    h_cpu = sum(r["cpu_seconds"] for r in runs) / len(runs)
    stages = runs[0]["stages"]
    eval_part = stages.get("load_model", 0.0) + stages.get("evaluate", 0.0)
    print(f"\nScoring {k + 1} models (base + {k} adapters) on {len(targets)} targets "
          f"({', '.join(targets)}), {limit} rows each, model {c.model_label(args)}")
    if not complete:
        print(f"lm_eval ran only {', '.join(m for m, _ in models)}: scores are compared, speedups are not computed")
    rows = [[f"harness run (1 process; mean of {len(runs)})", eval_bs, h_wall, h_cpu, 1.0, 1.0]]
    for label, r in lm_runs.items():
        bs_text = f"{r['batch_size']}" + ("" if r["passed_batch_size"] else " (lm_eval default)")
        rows.append([f"lm_eval x {len(models)} commands", bs_text, r["seconds"], r["cpu_seconds"],
                     c.ratio(r["seconds"], h_wall) if complete else None,
                     c.ratio(r["cpu_seconds"], h_cpu) if complete else None])
    c.table(["side", "batch size", "wall s", "cpu s", "speedup (wall)", "speedup (cpu)"], rows)
    print("harness runs (wall s): " + ", ".join(f"{r['seconds']:.1f}" for r in runs)
          + f"; stages of run 1 (s): {json.dumps(stages)}; load_model + evaluate = {eval_part:.1f}s "
          "(the rest: python start, plan, matrix, analysis, report)")
    if floor is not None:
        print(f"an lm_eval command scoring 1 row takes {floor['seconds']:.1f}s wall, {floor['cpu_seconds']:.1f}s cpu "
              f"(imports, task index, model load): {len(models)} commands pay it {len(models)} times")
    for label, r in lm_runs.items():
        print(f"lm_eval [{label}] wall seconds per command: "
              + ", ".join(f"{m} {s:.1f}" for m, s in r["per_model_seconds"].items()))
    per_model = per_model_comparison(runs, lm_runs.get("harness"), floor, [m for m, _ in models], k + 1)
    score_rows = [[f"{m}/{t}", v] + [lm_runs[label]["scores"].get((m, t)) for label in lm_runs]
                  for (m, t), v in ours.items()]
    c.table(["model/target", "harness"] + [f"lm_eval [{label}]" for label in lm_runs], score_rows,
            title="Scores (must be identical)")
    identical = all(not r["differences"] for r in lm_runs.values())
    for label, r in lm_runs.items():
        for cell, d in r["differences"].items():
            print(f"DIFFERENCE lm_eval [{label}] {cell}: lm_eval - harness = {d:+.6g}")
    print("scores identical on every (model, target):", identical)

    by = lm_runs if complete else {}

    def speedup(label, key, base):
        return c.ratio(by[label][key], base) if label in by else None

    result = {
        "benchmark": "eval_vs_lm_eval", "model": c.model_label(args), "quick": quick,
        "models": k + 1, "adapters": k, "lm_eval_models": [m for m, _ in models], "targets": list(targets),
        "limit": limit, "harness_batch_size": eval_bs,
        "harness_timed": f"wall clock of one `harness run` process (adapters cached, cells not; traits off), "
                         f"mean of {len(runs)} run(s) bracketing the lm_eval commands",
        "harness_seconds": round(h_wall, 3), "harness_cpu_seconds": round(h_cpu, 3),
        "harness_run_seconds": [round(r["seconds"], 3) for r in runs],
        "harness_stage_seconds": stages, "harness_load_and_evaluate_seconds": round(eval_part, 3),
        "lm_eval_default_bs_seconds": round(by["default"]["seconds"], 3) if "default" in by else None,
        "lm_eval_same_bs_seconds": round(by["harness"]["seconds"], 3) if "harness" in by else None,
        "speedup_vs_lm_eval_default_bs": speedup("default", "seconds", h_wall),
        "speedup_vs_lm_eval_same_bs": speedup("harness", "seconds", h_wall),
        "cpu_speedup_vs_lm_eval_default_bs": speedup("default", "cpu_seconds", h_cpu),
        "cpu_speedup_vs_lm_eval_same_bs": speedup("harness", "cpu_seconds", h_cpu),
        "lm_eval_runs": {label: {"batch_size": r["batch_size"], "seconds": round(r["seconds"], 3),
                                 "cpu_seconds": round(r["cpu_seconds"], 3),
                                 "per_model_seconds": {m: round(s, 3) for m, s in r["per_model_seconds"].items()},
                                 "differences": r["differences"]} for label, r in lm_runs.items()},
        "lm_eval_one_row_command_seconds": round(floor["seconds"], 3) if floor else None,
        "lm_eval_one_row_command_cpu_seconds": round(floor["cpu_seconds"], 3) if floor else None,
        "lm_eval_one_row_command_runs": floors,
        "per_model": per_model,
        "per_model_ratio": per_model["ratio"] if per_model else None,
        "targets_met": ({"whole_run_speedup_same_bs>=3": (speedup("harness", "seconds", h_wall) or 0) >= 3,
                         "per_model_ratio<=1.15": per_model["ratio"] <= 1.15} if per_model and complete else None),
        "scores_identical": identical,
        "max_abs_score_difference": max([abs(d) for r in lm_runs.values() for d in r["differences"].values()] or [0.0]),
        "machine": c.machine(),
    }
    c.emit(result)
    return 0 if identical else 1


def per_model_comparison(runs: list[dict], same_bs: dict | None, floor: dict | None, models: list[str],
                         n_models: int) -> dict | None:
    """Per model: the harness's evaluate-stage seconds against lm_eval's in-command scoring seconds
    at the same batch size -- a command's wall time less the fixed cost every command pays (the
    one-row command's wall time: imports, lm_eval's task index, the model load, one dataset).
    Printed as a table; returned for the JSON line. None without the one-row command (--quick) or
    the same-batch-size lm_eval run.

    harness: the evaluate stage of `harness run` (provenance seconds; mean over the harness runs)
    over the number of models -- lm-eval's model object, every adapter switched in, every cell
    scored and filed; the model load is outside it, as it is inside lm_eval's fixed cost. Per model
    the cells' own seconds (cell.json) are shown too: a model's scoring without its adapter swap.
    The stage timer records wall seconds only, so the per-model ratio is over wall seconds; CPU
    seconds of lm_eval's in-command scoring are shown beside them, and the whole-run ratio above
    has both.
    """
    if floor is None or same_bs is None:
        return None
    stage = sum(r["stages"].get("evaluate", 0.0) for r in runs) / len(runs)
    harness_per_model = stage / n_models
    rows, lm_wall, lm_cpu = [], [], []
    for m in models:
        wall = same_bs["per_model_seconds"][m] - floor["seconds"]
        cpu = same_bs["per_model_cpu_seconds"][m] - floor["cpu_seconds"]
        cells = sum(r["cell_seconds"].get(m, 0.0) for r in runs) / len(runs)
        lm_wall.append(wall)
        lm_cpu.append(cpu)
        rows.append([m, cells, wall, cpu, c.ratio(cells, wall)])
    lm_mean = sum(lm_wall) / len(lm_wall)
    lm_cpu_mean = sum(lm_cpu) / len(lm_cpu)
    rows.append(["per model (harness: evaluate stage / models)", harness_per_model, lm_mean, lm_cpu_mean,
                 c.ratio(harness_per_model, lm_mean)])
    c.table(["model", "harness cells s", "lm_eval in-command s", "lm_eval in-command cpu s", "ratio (wall)"],
            rows, title=f"Per model, batch size {same_bs['batch_size']}: harness scoring vs lm_eval's in-command "
                        f"scoring (command wall - one-row command's {floor['seconds']:.1f}s)")
    ratio = c.ratio(harness_per_model, lm_mean)
    print(f"per-model ratio harness / lm_eval = {c.fmt(ratio)} (target <= 1.15: "
          f"{'met' if ratio is not None and ratio <= 1.15 else 'not met'})")
    return {"harness_evaluate_stage_seconds": round(stage, 3),
            "harness_evaluate_seconds_per_model": round(harness_per_model, 3),
            "harness_cell_seconds_per_model": {m: round(r[1], 3) for m, r in zip(models, rows)},
            "lm_eval_in_command_seconds_per_model": {m: round(v, 3) for m, v in zip(models, lm_wall)},
            "lm_eval_in_command_cpu_seconds_per_model": {m: round(v, 3) for m, v in zip(models, lm_cpu)},
            "lm_eval_in_command_seconds_mean": round(lm_mean, 3),
            "lm_eval_in_command_cpu_seconds_mean": round(lm_cpu_mean, 3),
            "ratio": ratio}


if __name__ == "__main__":
    sys.exit(main())
