"""The report stage: ``results.json`` (the contract), ``matrix.csv``, ``traits.csv``, ``report.md``,
``report.html`` with its plots, and the per-sample and training logs copied beside them."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from harness.cache.entries import samples_path, train_log_path
from harness.cache.store import Cache
from harness.config.registry import Registry
from harness.files import copy_atomic, stable_hash, write_json_atomic, write_text_atomic
from harness.reporting.markdown import markdown
from harness.reporting.numbers import csv_number
from harness.stages.matrix import Matrix
from harness.stages.plan import Plan, library_versions


def build_results(registry: Registry, plan: Plan, mat: Matrix, traits, analysed: dict,
                  provenance: dict, failures: list[dict]) -> dict:
    return {
        "experiment": registry.experiment,
        "base_model": {"name": registry.base_model.display_name, "resolved_from": plan.model.how,
                       "key": plan.model.key},
        "sources": mat.sources,
        "source_weights": source_weights(plan),
        "targets": mat.targets,
        "metrics": mat.metrics,
        "abilities": {t: list(plan.tasks[t].abilities) for t in mat.targets},
        "base": mat.base,
        "scores": mat.scores,
        "transfer": mat.transfer,
        **replicate_results(mat),
        "traits": traits.values,
        "trait_scopes": traits.scopes,
        "trait_plugins": traits.plugins,
        "analysis_settings": registry.analysis.model_dump(),
        "pair_traits": traits.pairs,
        "behaviour": traits.behaviour,
        **analysed,
        "failures": [{k: v for k, v in f.items() if k != "traceback"} for f in failures],
        "provenance": provenance,
    }


def replicate_results(mat: Matrix) -> dict:
    """With several training seeds: every replicate's cells (``replicates[model][target]``) and
    what each replicate model is (``replicate_of[model]``: its source and seed). Nothing otherwise,
    so a single-seed study's results are as before."""
    if not mat.replicated:
        return {}
    return {"replicates": mat.replicates,
            "replicate_of": {m: {"source": s, "seed": mat.seeds[m]} for s, ms in mat.models.items() for m in ms}}


def source_weights(plan: Plan) -> dict:
    """Where each source's weights come from: trained here on its task, or brought in (an adapter or
    a checkpoint, from its folder), with the task its data came from (None: not given)."""
    return {a.source: {"kind": a.kind, "task": a.task.name if a.task is not None else None,
                       **({"path": str(a.path)} if a.path is not None else {})} for a in plan.adapters}


def provenance(registry: Registry, plan: Plan, cache: Cache, location, executor, seconds: dict) -> dict:
    """Where the results came from: versions, seeds, every key, where jobs ran, what this run
    computed itself and what it found in the cache (from an earlier run, or another one sharing it)."""
    trained = [a for a in plan.adapters if not a.brought]  # brought weights are neither computed nor reused
    computed = {"adapters": sum(a.done_here for a in trained), "cells": sum(c.done_here for c in plan.cells)}
    reused = {"adapters": sum(a.cached and not a.done_here for a in trained),
              "cells": sum(c.cached and not c.done_here for c in plan.cells)}
    return {
        "versions": library_versions(),
        "seeds": {"lora": registry.lora.seed, "lora_seeds": registry.lora.seed_list,
                  "evaluation": registry.evaluation.seed,
                  "tasks": {name: t.options.seed for name, t in plan.tasks.items()}},
        # Where jobs ran, and where results are sent, are not part of the experiment: the same registry
        # hashes the same on any executor, tracked or not.
        "config_hashes": {"registry": stable_hash(registry.model_dump(mode="json", exclude={"executor", "tracking"})),
                          "base_model": location.key,
                          "adapters": {a.model: a.key for a in plan.adapters},  # by replicate model name
                          "cells": {f"{c.model}/{c.target}": c.key for c in plan.cells}},
        "seconds": seconds,
        # Where each target's few-shot examples came from: its training rows ("train") or its test
        # split with the scored document left out ("test"); empty at 0 shots.
        "fewshot": ({t: c.get("fewshot_split") for t, c in plan.target_configs.items()}
                    if registry.evaluation.num_fewshot else {}),
        "cache_dir": str(cache.root),
        "executor": executor.describe(),
        "reused": reused,
        "computed": computed,
        "cache_repairs": list(cache.repairs),
    }


def _csv(header: list[str], rows: list[list]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buf.getvalue()




def write_outputs(run_dir: Path, results: dict, mat: Matrix, plan: Plan, cache: Cache) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)  # results.json itself is written last, by the pipeline
    write_text_atomic(run_dir / "matrix.csv", _csv(
        ["source", *mat.targets], [[s, *(csv_number(mat.transfer[s][t]) for t in mat.targets)] for s in mat.sources]))
    if mat.replicated:  # the between-seed SE of every matrix.csv cell, same layout (empty: under 2 seeds)
        write_text_atomic(run_dir / "matrix_seed_se.csv", _csv(
            ["source", *mat.targets], [[s, *(csv_number((mat.scores[s][t] or {}).get("seed_se")) for t in mat.targets)]
                                       for s in mat.sources]))
    _write_trait_tables(run_dir, mat.sources, results["traits"], results["pair_traits"])
    tests = results.get("cell_tests") or {}
    if tests:  # the significance of every matrix.csv cell, in the same long form as pair_traits.csv
        rows = [[s, t, csv_number(test["delta"]), csv_number(test["p"]), csv_number(test["q"]), test["method"], int(test["significant"])]
                for s, row in tests.items() for t, test in row.items()]
        write_text_atomic(run_dir / "cell_tests.csv", _csv(
            ["source", "target", "delta", "p", "q", "method", "significant"], rows))
    # Per-sample logs and training logs travel with the run, so it can be analysed without the cache.
    for cell in plan.cells:
        src = samples_path(cache, cell.key)
        if src.is_file():
            copy_atomic(src, run_dir / "samples" / cell.model / f"{cell.target}.jsonl")
    for job in plan.adapters:
        src = train_log_path(cache, job.key)
        if src.is_file():
            copy_atomic(src, run_dir / "training" / f"{job.model}.json")


def write_reports(run_dir: Path, results: dict) -> dict[str, Path]:
    """report.md, plots/*.png and the self-contained report.html, from ``results`` alone (no model:
    `harness report` calls this on a finished run). Returns what was written, by name."""
    from harness.reporting import html as htmlreport

    run_dir.mkdir(parents=True, exist_ok=True)
    write_text_atomic(run_dir / "report.md", markdown(results))
    drawn = _plots(results, run_dir / "plots")
    write_text_atomic(run_dir / "report.html", htmlreport.render(results, drawn))
    return {"report.md": run_dir / "report.md", "report.html": run_dir / "report.html",
            **{f"plots/{Path(p.path).name}": Path(p.path) for p in drawn}}


def _plots(results: dict, folder: Path) -> list:
    """The figures of ``results``, each drawn again only when what it shows changed (drawing is
    most of a re-run's report time). ``index.json`` remembers what each PNG was drawn from."""
    from dataclasses import asdict

    from harness.reporting import plots

    index = folder / "index.json"
    try:
        before = [plots.Plot(**{**d, "path": folder / d["path"]}) for d in json.loads(index.read_text())["plots"]]
    except (OSError, ValueError, KeyError, TypeError):
        before = []  # no index yet, or an unreadable one: draw everything
    drawn = plots.render_all(results, folder, drawn_before=before)
    write_json_atomic(index, {"plots": [{**asdict(p), "path": Path(p.path).name} for p in drawn]})
    return drawn


def _write_trait_tables(run_dir: Path, sources: list[str], values: dict, pairs: dict) -> None:
    """traits.csv (one row per source) and, when there are pair traits, pair_traits.csv (long form)."""
    names = sorted({k for row in values.values() for k in row})
    write_text_atomic(run_dir / "traits.csv", _csv(
        ["source", *names], [[s, *(csv_number(values.get(s, {}).get(k)) for k in names)] for s in sources]))
    if pairs:
        rows = [[s, t, name, csv_number(v)] for name, by_source in sorted(pairs.items())
                for s, row in by_source.items() for t, v in row.items()]
        write_text_atomic(run_dir / "pair_traits.csv", _csv(["source", "target", "trait", "value"], rows))


def write_traits(run_dir: Path, sources: list[str], traits) -> None:
    """What `harness traits` writes: the trait tables and a small JSON of the same numbers."""
    run_dir.mkdir(parents=True, exist_ok=True)
    _write_trait_tables(run_dir, sources, traits.values, traits.pairs)
    write_json_atomic(run_dir / "traits.json", {"traits": traits.values, "pair_traits": traits.pairs,
                                                "failures": [{k: v for k, v in f.items() if k != "traceback"}
                                                             for f in traits.failures]})


