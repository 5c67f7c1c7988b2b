"""What the reports say about training seeds: the between-seed SE beside each transfer cell, and
one line saying what it is. Only studies with several seeds per source (``lora.seeds`` /
``lora.replicates``) show anything; a single-seed report is unchanged."""

from __future__ import annotations


def seed_counts(results: dict) -> list[int]:
    """The number of scored replicates of every (source, target) cell that has several seeds."""
    return [cell["n_seeds"] for row in (results.get("scores") or {}).values() for cell in row.values()
            if isinstance(cell, dict) and "n_seeds" in cell]


def replicated(results: dict) -> bool:
    return bool(results.get("replicate_of")) or bool(seed_counts(results))


def seed_se(results: dict, source: str, target: str) -> float | None:
    """The between-seed SE of a cell's mean (None: one seed, or under 2 replicates scored)."""
    cell = ((results.get("scores") or {}).get(source) or {}).get(target)
    return cell.get("seed_se") if isinstance(cell, dict) else None


def plus_minus(results: dict, source: str, target: str, spec: str = ".3f") -> str:
    """`` ± SE`` for a replicated cell, empty otherwise."""
    se = seed_se(results, source, target)
    return "" if se is None else f" ± {format(se, spec)}"


def seed_line(results: dict) -> str:
    """The sentence under the transfer table of a replicated study (empty for one seed)."""
    if not replicated(results):
        return ""
    counts = seed_counts(results)
    lo, hi = (min(counts), max(counts)) if counts else (0, 0)
    n = str(hi) if lo == hi else f"{lo}-{hi}"
    seeds = (results.get("provenance") or {}).get("seeds", {}).get("lora_seeds")
    which = f" (seeds {', '.join(map(str, seeds))})" if seeds else ""
    return (f"Each cell is the mean over {n} training seeds{which}, ± its between-seed standard error "
            "(SD over seeds / √seeds; matrix_seed_se.csv); significance from the seeds+documents test, which "
            "counts both seed and document noise. Per-replicate cells: results.json `replicates`.")
