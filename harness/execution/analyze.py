"""``harness analyze``: the analysis stage on a matrix made anywhere, or on a finished run."""

from __future__ import annotations

import json
from pathlib import Path

from harness.config.registry import AnalysisSettings, DecomposerUse
from harness.reporting.tables import TableError, read_pair_traits, read_wide
from harness.stages.analyse import TransferData, analyse, from_results


class AnalyzeError(ValueError):
    pass


def _n_components(text: str | None):
    if text is None or text == "parallel":
        return text
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        raise AnalyzeError(f"--n-components {text!r}: give an integer, a share in (0, 1) such as 0.8, "
                           "or 'parallel'") from None


def read_run(path: Path) -> tuple[dict, dict]:
    """results.json of a run folder (or the file itself) and its per-sample logs."""
    results_path = path / "results.json" if path.is_dir() else path
    try:
        results = json.loads(results_path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise AnalyzeError(f"{results_path}: cannot read a run's results.json ({exc})") from None
    samples: dict = {}
    for log in sorted((results_path.parent / "samples").glob("*/*.jsonl")):
        records = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
        samples.setdefault(log.parent.name, {})[log.stem] = records
    return results, samples


def load_input(args) -> TransferData:
    path: Path = args.matrix
    if not path.exists():
        raise AnalyzeError(f"{path}: no such file or folder")
    try:
        if path.is_dir() or path.suffix == ".json":
            results, samples = read_run(path)
            scopes = results.get("trait_scopes")
            data = from_results(results, samples,
                                [k for k, v in scopes.items() if v == "source"] if scopes else None)
        else:
            sources, targets, transfer = read_wide(path, "target")
            data = TransferData(sources=sources, targets=targets, transfer=transfer)
        if args.traits:
            names, _, traits = read_wide(args.traits, "trait")
            unknown = sorted(set(names) - set(data.sources))
            if unknown:
                raise AnalyzeError(f"{args.traits}: sources {unknown} are not in {path}")
            data.traits, data.source_trait_names = traits, None
        if args.pair_traits:
            data.pair_traits = read_pair_traits(args.pair_traits)
    except TableError as exc:
        raise AnalyzeError(str(exc)) from None
    return data


def analyze(args) -> tuple[dict, list[dict]]:
    from harness.api.plugins import catalog
    from harness.config.registry import did_you_mean

    cat = catalog()
    data = load_input(args)
    names = args.decomposer or ["pca"]
    for name in names:
        if name not in cat.entries["decomposer"]:
            raise AnalyzeError(f"unknown decomposer {name!r}" + did_you_mean(name, cat.names("decomposer")))
    if args.normalisation == "ordinal" and data.outcomes is None:
        raise AnalyzeError("ordinal normalisation needs per-sample logs: give a run folder, not a matrix.csv")
    if args.normalisation == "relative" and data.base is None:
        raise AnalyzeError("relative normalisation needs base scores: give a run folder, not a matrix.csv")
    spec = _n_components(args.n_components)
    uses = [DecomposerUse(name=n, n_components=spec, normalisation=args.normalisation) for n in names]
    settings = AnalysisSettings(**{k: v for k, v in (("bootstrap", args.bootstrap), ("permutations", args.permutations),
                                                      ("seed", args.seed)) if v is not None})
    analysed, failures = analyse(data, uses, cat, settings)
    analysed = {"sources": data.sources, "targets": data.targets, **analysed}
    return analysed, [{k: v for k, v in f.items() if k != "traceback"} for f in failures]
