"""``harness recommend``: which source to fine-tune on for a target, including datasets never
fine-tuned, whose transfer is predicted from their traits by the model fitted on the run."""

from __future__ import annotations

import json
from pathlib import Path

from harness.config.registry import Registry, SourceConfig, did_you_mean


class RecommendError(ValueError):
    pass


def recommend_sources(registry: Registry, registry_path: Path | None, target: str,
                      candidate_names: list[str] | None = None, out: Path | None = None) -> dict:
    """Rank the run's sources and the candidates for ``target``.

    Candidates are the registry's ``candidates`` plus task names given on the command line (with
    default options). Their source and pair traits are computed (and cached) exactly as for sources.
    """
    from harness.analysis import predict
    from harness.api.plugins import catalog
    from harness.config.paths import resolve_dirs
    from harness.model import loading as models
    from harness.stages import traits
    from harness.stages.plan import make_plan
    from harness.stages.traits import trait_model

    run_dir, cache = resolve_dirs(registry, registry_path, out)
    results_path = run_dir / "results.json"
    if not results_path.is_file():
        raise RecommendError(f"no finished run at {run_dir}: run `harness run {registry_path or 'REGISTRY'}` first")
    results = json.loads(results_path.read_text())
    if target not in results["targets"]:
        raise RecommendError(f"{target!r} is not a target of this run" + did_you_mean(target, results["targets"]))
    cat = catalog()
    candidates = list(registry.candidates)
    for name in candidate_names or []:
        if any(c.key == name for c in candidates):
            continue
        if name in results["sources"]:
            raise RecommendError(f"{name!r} is already fine-tuned in this run; it is ranked anyway")
        if name not in cat.entries["task"]:
            raise RecommendError(f"unknown candidate task {name!r}" + did_you_mean(name, cat.names("task")))
        candidates.append(SourceConfig(task=name, n_train=registry.sources[0].n_train))
    target_config = next(t for t in registry.targets if t.key == target)

    scopes = results.get("trait_scopes") or {}
    source_traits = {s: {k: v for k, v in row.items() if scopes.get(k, "source") == "source"}
                     for s, row in results["traits"].items()}
    cand_traits, cand_pairs = {}, {}
    if candidates:
        # The candidates as the sources of a sibling registry: same model, traits and target.
        sibling = registry.model_copy(update={"sources": candidates, "targets": [target_config]})
        location = models.locate(registry.base_model, cache)
        plan = make_plan(sibling, cat, cache, location)
        model, tokenizer = trait_model(sibling, cat, location, cache, None, None, plan)
        measured = traits.compute_all(sibling, plan, cat, tokenizer, model, cache=cache, scopes=("source", "pair"))
        if measured.failures:
            first = measured.failures[0]
            raise RecommendError(f"trait {first['plugin']} failed on candidate {first.get('source', '?')}: {first['error']}")
        cand_traits = measured.values
        cand_pairs = {name: {c: row.get(target) for c, row in by_source.items()}
                      for name, by_source in measured.pairs.items()}
    base = results["base"].get(target)
    bounds = predict.transfer_bounds(results["metrics"].get(target), base["value"] if base else None)
    ranking = predict.recommend(source_traits, results.get("pair_traits", {}), results["transfer"], target,
                                cand_traits, cand_pairs, alpha=registry.analysis.ridge_alpha,
                                seed=registry.analysis.seed, bounds=bounds)
    return {"target": target, "metric": results["metrics"].get(target), "run_dir": str(run_dir),
            "n_sources": sum(row.get(target) is not None for row in results["transfer"].values()),
            "bounds": list(bounds) if bounds else None, "ranking": ranking}


def print_ranking(result: dict, console) -> None:
    """The ranking as a table. A prediction whose interval spans most of what the metric allows
    (``informative`` false) is not printed as a number: its cell says "not informative" (the
    caption says with how many sources, and why), and a candidate with nothing else to go by gets no rank."""
    from rich.markup import escape
    from rich.table import Table

    from harness.analysis.predict import INFORMATIVE_SHARE

    vague = [row for row in result["ranking"] if row.get("informative") is False]
    caption = None
    if vague:
        lo, hi = result["bounds"]
        caption = (f"not informative with {result['n_sources']} sources: the 90% interval spans more than "
                   f"{INFORMATIVE_SHARE:.0%} of [{lo:+.3f}, {hi:+.3f}], the range transfer can take")
    elif result.get("bounds") is None:
        caption = f"the range of {result['metric']} is unknown: predictions are not bounded"
    table = Table(title=f"Sources for {escape(result['target'])} (transfer in {escape(str(result['metric']))})",
                  title_justify="left", caption=escape(caption) if caption else None, caption_justify="left")
    for col in ("#", "source", "", "measured", "predicted", "90% interval"):
        table.add_column(col, justify="right" if col in ("#", "measured", "predicted") else "left")
    rank = 0
    for row in result["ranking"]:
        ranked = row["expected"] is not None
        rank += ranked
        lo, hi = row["interval"]
        guess = (["[dim]not informative", ""] if row.get("informative") is False
                 else [f"{row['predicted']:+.3f}", f"[{lo:+.3f}, {hi:+.3f}]"])
        table.add_row(str(rank) if ranked else "", escape(row["source"]),
                      "fine-tuned" if row["fine_tuned"] else "[cyan]candidate",
                      "" if row["measured"] is None else f"{row['measured']:+.3f}", *guess)
    console.print(table)
