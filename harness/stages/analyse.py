"""The analysis stage: from a transfer matrix (with traits and, when there are any, per-sample
outcomes) to decompositions, trait tests, cell tests, the similarity test and prediction.

It takes plain data, not a run, so ``harness analyze`` can give a matrix made elsewhere the same
treatment as a run of the harness: whatever needs per-sample outcomes or base scores (bootstrap,
ordinal and relative normalisation, cell tests) is skipped, and says so, when they are absent.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from harness.analysis.applicability import NO_SOURCES, NotApplicable, entry, require
from harness.analysis.decompose import complete_submatrix, decompose
from harness.analysis.outcomes import Outcomes
from harness.config.registry import BASE
from harness.errors import failure_record


@dataclass
class TransferData:
    sources: list[str]
    targets: list[str]
    transfer: dict[str, dict[str, float | None]]  # source -> target -> adapter - base
    base: dict[str, float | None] | None = None  # target -> base score
    abilities: dict[str, tuple[str, ...]] = field(default_factory=dict)
    traits: dict[str, dict[str, float | None]] = field(default_factory=dict)  # source -> trait -> value
    # Traits a dataset has before anything is fine-tuned on it (not behaviour): prediction uses only these.
    source_trait_names: list[str] | None = None
    pair_traits: dict[str, dict[str, dict[str, float | None]]] = field(default_factory=dict)
    outcomes: Outcomes | None = None
    # target -> lm-eval metric ("acc,none"); its range bounds the predicted transfer
    metrics: dict[str, str] = field(default_factory=dict)
    # Twin pairs {source, twin_of, statistic, differs, note} (harness.config.registry.twin_pairs), the
    # per-sample logs their behaviour contrasts read (samples[model][target]), what each target is
    # (target -> {kind, labels, max_gen_toks}) and the base tokenizer's token count of a text (or None).
    twins: list[dict] = field(default_factory=list)
    samples: dict[str, dict[str, list[dict]]] | None = None
    target_info: dict[str, dict] = field(default_factory=dict)
    count_tokens: object = None
    # trait column (source or pair trait name) -> the trait plugin that produced it; the predictor
    # comparison picks feature sets by plugin. Empty: taken from the catalog's declared outputs.
    trait_plugins: dict[str, str] = field(default_factory=dict)
    # target -> task kind ("multiple_choice", "generation"): which targets a hypothesis reads
    kinds: dict[str, str] = field(default_factory=dict)

    def array(self) -> np.ndarray:
        return np.array([[np.nan if self.transfer[s][t] is None else self.transfer[s][t] for t in self.targets]
                         for s in self.sources], dtype=float).reshape(len(self.sources), len(self.targets))  # (0, n) without sources

    def source_traits(self) -> dict[str, dict[str, float | None]]:
        keep = self.source_trait_names
        return {s: {k: v for k, v in self.traits.get(s, {}).items() if keep is None or k in keep} for s in self.sources}


def _failure(stage: str, plugin: str | None, exc: BaseException) -> dict:
    return failure_record(stage, exc, **({"plugin": plugin} if plugin else {}))


def analyse(data: TransferData, decomposers: list, catalog, settings) -> tuple[dict, list[dict]]:
    """Everything the analysis stage adds to results, and the failures met on the way.

    ``decomposers`` are registry ``DecomposerUse`` entries; ``settings`` an ``AnalysisSettings``.
    An analysis the study is too small for, or lacks the input of, raises
    :class:`~harness.analysis.applicability.NotApplicable` where its requirement is known: it is left out
    and listed in ``out["skipped"]`` with the reason. Anything else it raises is a failure.
    """
    from harness.analysis import associations, hypotheses, predict

    failures: list[dict] = []
    skipped: list[dict] = []

    def attempt(stage: str, plugin: str | None, compute):
        """``compute()``, or None when it does not apply (a skip) or raises (a failure)."""
        try:
            return compute()
        except NotApplicable as exc:
            skipped.append(entry(stage, str(exc), plugin))
        except Exception as exc:
            failures.append(_failure(stage, plugin, exc))
        return None

    if not data.sources:  # a suite: say once per analysis why it is absent, rather than how it is too small
        parts = [*(("decompose", use.key) for use in decomposers), ("target_trait_tests", None),
                 *(("similarity_test", name) for name in data.pair_traits), ("cell_tests", None), ("prediction", None)]
        return {"decompositions": {}, "correlations": [], "trait_tests": {}, "target_correlations": [],
                "similarity_test": {}, "cell_tests": None, "prediction": None, "twins": [], "twin_targets": {}, "twin_contrasts": [],
                "hypotheses": hypotheses.not_testable_all(NO_SOURCES),
                "skipped": [entry(analysis, NO_SOURCES, plugin) for analysis, plugin in parts]}, []

    X = data.array()
    keep_rows, keep_cols = complete_submatrix(X)
    sources = [s for s, k in zip(data.sources, keep_rows) if k]
    targets = [t for t, k in zip(data.targets, keep_cols) if k]
    excluded = {"sources": [s for s in data.sources if s not in sources],
                "targets": [t for t in data.targets if t not in targets]}
    X = X[keep_rows][:, keep_cols]
    base = None
    if data.base is not None and all(data.base.get(t) is not None for t in targets):
        base = np.array([data.base[t] for t in targets], dtype=float)

    def decomposition(use):
        require(len(sources), 2, "sources with every target scored", "a decomposition")
        require(len(targets), 1, "targets scored for every source", "a decomposition")
        cls = catalog.get("decomposer", use.name).obj
        dec = decompose(use, cls, sources, targets, X, base, data.outcomes, data.abilities, settings)
        dec["excluded"] = excluded
        return dec

    def trait_tests(traits: dict, columns: dict, kind: str) -> dict:
        return associations.correlate_traits(traits, columns, kind=kind, max_permutations=settings.permutations,
                                             seed=settings.seed)

    out: dict = {"decompositions": {}, "correlations": [], "trait_tests": {}}
    for use in decomposers:
        dec = attempt("decompose", use.key, lambda use=use: decomposition(use))
        if dec is None:
            continue
        out["decompositions"][use.key] = dec
        skipped += [entry(check, reason, use.key) for check, reason in dec["stability"]["skipped"].items()]
        tests = attempt("trait_tests", use.key,
                        lambda dec=dec: trait_tests({s: data.traits.get(s, {}) for s in sources}, dec["scores"], "component"))
        if tests is not None:
            out["correlations"] += [{"decomposer": use.key, **row} for row in tests["tests"]]
            out["trait_tests"][use.key] = {k: v for k, v in tests.items() if k != "tests"}

    by_target = {s: {t: data.transfer[s][t] for t in data.targets} for s in data.sources}
    targets_test = attempt("target_trait_tests", None, lambda: trait_tests(data.traits, by_target, "target")) or {}
    out["target_correlations"] = targets_test.pop("tests", [])
    if targets_test:
        out["trait_tests"]["targets"] = targets_test

    def similarity_test(similarity: dict) -> dict:
        # Sources are the test's unit (it resamples and shuffles whole sources): with fewer there
        # is no interval and no p-value, and a Spearman over one source's pairs is not a test.
        require(sum(s in data.transfer for s in similarity), associations.MIN_SOURCES, "sources",
                "the similarity-versus-transfer test")
        return {key: associations.similarity_versus_transfer(similarity, data.transfer, exclude_same=exclude,
                                                             n_permutations=min(settings.permutations, 5000),
                                                             seed=settings.seed, confidence=settings.confidence)
                for key, exclude in (("all_pairs", False), ("excluding_in_domain", True))}

    out["similarity_test"] = {}
    for name, similarity in data.pair_traits.items():
        result = attempt("similarity_test", name, lambda similarity=similarity: similarity_test(similarity))
        if result is not None:
            out["similarity_test"][name] = result

    def cells():
        if data.outcomes is None:
            raise NotApplicable("needs per-sample logs (a run folder, not a bare matrix)")
        tests = cell_tests(data.outcomes, settings)
        # A target no paired test applies to is named once here, not only in its cells.
        whys = {t: test["skipped"] for row in tests.values() for t, test in row.items() if "skipped" in test}
        skipped.extend(entry("cell_tests", why, target) for target, why in whys.items())
        return tests

    out["cell_tests"] = attempt("cell_tests", None, cells)
    out["twins"] = data.twins
    out["twin_targets"] = {t: data.target_info[t] for t in data.targets if t in data.target_info} if data.twins else {}
    out["twin_contrasts"] = (attempt("twin_contrasts", None, lambda: twin_contrasts(data, settings)) or []) if data.twins else []
    bounds = {t: predict.transfer_bounds(data.metrics.get(t), (data.base or {}).get(t)) for t in data.targets}
    out["prediction"] = attempt("prediction", None, lambda: prediction(data, catalog, settings, bounds))
    # A section not computed is None or empty; ``skipped`` (or ``failures``) says why.
    out["skipped"] = skipped
    # Last: the hypotheses read every analysis above (twin contrasts, prediction, decompositions).
    view = {"sources": data.sources, "targets": data.targets, "traits": data.traits, "kinds": data.kinds, **out}
    out["hypotheses"] = attempt("hypotheses", None, lambda: hypotheses.assess(view, hypotheses.settings_from(settings)))
    # A section not computed is None or empty; ``skipped`` (or ``failures``) says why.
    return out, failures


def trait_plugins(catalog) -> dict[str, str]:
    """Trait column -> plugin from the catalog's declared ``outputs`` (for a matrix analysed without
    the traits stage's own record of it)."""
    out: dict[str, str] = {}
    for name in catalog.names("trait"):
        for column in getattr(catalog.get("trait", name).obj, "outputs", ()):
            out.setdefault(column, name)
    return out


def prediction(data: TransferData, catalog, settings, bounds: dict) -> dict:
    """Leave-one-source-out prediction from all traits (today's keys), plus every predictor of
    :mod:`harness.analysis.predictors` on the same folds and their comparisons."""
    from harness.analysis import predict, predictors

    result = predict.leave_one_source_out(data.source_traits(), data.pair_traits, data.transfer,
                                          alpha=settings.ridge_alpha, bounds=bounds)
    plugins = {**trait_plugins(catalog), **data.trait_plugins}
    compared = predictors.compare_predictors(
        data.source_traits(), data.pair_traits, data.transfer, plugins, base=data.base, bounds=bounds,
        alpha=settings.ridge_alpha, k=settings.top_k, traits_result=result, n_boot=max(settings.bootstrap, 200),
        max_permutations=settings.permutations, seed=settings.seed, confidence=settings.confidence)
    return {**result, **{key: compared[key] for key in ("k", "predictors", "comparisons", "not_compared")},
            "comparison_method": compared["method"]}


def cell_tests(outcomes: Outcomes, settings) -> dict:
    """A paired test of every adapter cell against the base on the same documents, with
    Benjamini-Hochberg q-values over the matrix.

    Which test applies depends on the metric: McNemar's exact test for 0/1 per-sample scores
    (accuracy, exact match); a paired bootstrap of the mean for other per-sample scores; a paired
    bootstrap of the aggregate itself for metrics that are not means (f1, mcc), since neither a
    per-document "correct" nor McNemar describes them. A target of such a metric whose items were
    not logged gets ``{"method": "none", "skipped": why}`` cells, and so does a target the outcomes
    could not align (``outcomes.skipped``).

    A source with several training seeds (``outcomes.rows``) is tested over seeds and documents
    together, on the mean of its replicates: :func:`~harness.analysis.stats.seeds_documents_test`
    ("seeds+documents_t"), or for a non-mean metric
    :func:`~harness.analysis.stats.seeds_documents_aggregate` ("seeds+documents_aggregate").

    Returns source -> target -> {"method", "delta", "p", "q", "ci", "n", "significant"}.
    """
    from harness.analysis.stats import (
        bh_qvalues,
        paired_bootstrap_aggregate,
        paired_test,
        seeds_documents_aggregate,
        seeds_documents_test,
    )
    from harness.stages.evaluate import aggregate_function

    rows, skipped = [], dict(outcomes.skipped)
    for target, y in outcomes.values.items():
        if target in outcomes.aggregations and target not in outcomes.items:
            skipped[target] = (f"{outcomes.not_mean[target]}, and its per-document items were not logged: "
                               "no paired test applies")
            continue
        for source in outcomes.sources:
            rows_of = outcomes.rows[source]
            if len(rows_of) > 1:  # several training seeds: the test uses both sources of noise
                if target in outcomes.items:
                    items = outcomes.items[target]
                    test = seeds_documents_aggregate(items[0], [items[r] for r in rows_of],
                                                     aggregate_function(outcomes.aggregations[target]),
                                                     seed=settings.seed, confidence=settings.confidence)
                else:
                    test = seeds_documents_test(y[0], y[rows_of], confidence=settings.confidence)
            elif target in outcomes.items:
                items = outcomes.items[target]
                test = paired_bootstrap_aggregate(items[0], items[rows_of[0]],
                                                  aggregate_function(outcomes.aggregations[target]),
                                                  seed=settings.seed, confidence=settings.confidence)
            else:
                test = paired_test(y[0], y[rows_of[0]], seed=settings.seed, confidence=settings.confidence)
            rows.append((source, target, test))
    qs = bh_qvalues(np.array([np.nan if r[2]["p"] is None else r[2]["p"] for r in rows], dtype=float)) if rows else []
    out: dict = {s: {} for s in outcomes.sources}
    for (source, target, test), q in zip(rows, qs):
        q = None if np.isnan(q) else float(q)
        out[source][target] = {**test, "q": q, "significant": q is not None and q < settings.fdr}
    for target, why in skipped.items():
        for source in outcomes.sources:
            out[source][target] = {"method": "none", "delta": None, "p": None, "q": None, "ci": None,
                                   "significant": False, "skipped": why}
    return out


def twin_contrasts(data: TransferData, settings) -> list[dict]:
    """Every twin pair's contrasts on every target (:func:`harness.analysis.twins.twin_contrasts`)."""
    from harness.analysis import twins

    if data.outcomes is None or not data.samples:
        raise NotApplicable("needs per-sample logs (a run folder, not a bare matrix)")
    # Every target gets its transfer contrast; behaviour contrasts need its kind (and labels, cap).
    known = {t: data.target_info.get(t) or {} for t in data.targets}
    info = {t: twins.TargetInfo(kind=i.get("kind", ""), labels=i.get("labels"), max_gen_toks=i.get("max_gen_toks"))
            for t, i in known.items()}
    completion = {s: (data.traits.get(s) or {}).get("completion_tokens_mean") for s in data.sources}
    return twins.twin_contrasts(data.twins, data.outcomes, data.samples, info, confidence=settings.confidence,
                                fdr=settings.fdr, seed=settings.seed, count_tokens=data.count_tokens,
                                completion_tokens=completion)


def with_label_shares(pairs: list[dict], plan) -> list[dict]:
    """Twin pairs with ``label_shares``: for twins of a classification task, each twin's share of
    every label among the rows it is trained on (source -> label -> share), which says the label a
    class-balance twin over-represents (what H1 predicts it will answer more)."""
    out = []
    for pair in pairs:
        shares = {}
        for name in (pair["source"], pair["twin_of"]):
            job = next(iter(plan.replicates(name)), None)
            task = job.task if job is not None else None
            if task is None or task.kind != "multiple_choice" or not task.labels:
                break
            labels = [ex.label for ex in task.examples("train", job.n_train) if ex.label is not None]
            shares[name] = {label: labels.count(i) / len(labels) for i, label in enumerate(task.labels)} if labels else {}
        out.append({**pair, **({"label_shares": shares} if len(shares) == 2 else {})})
    return out


def target_info(plan) -> dict[str, dict]:
    """target -> {kind, labels, max_gen_toks} of a plan's targets (lm-eval's generation_kwargs cap)."""
    out = {}
    for name, task in plan.tasks.items():
        kwargs = (plan.target_configs.get(name) or {}).get("generation_kwargs") or {}
        out[name] = {"kind": task.kind, "labels": list(task.labels) or None, "max_gen_toks": kwargs.get("max_gen_toks")}
    return out


def from_results(results: dict, samples: dict | None = None, source_trait_names: list[str] | None = None) -> TransferData:
    """The analysis input of a finished run (``results.json`` and its per-sample logs)."""
    from harness.analysis.outcomes import collect

    # With several training seeds the logs are by replicate model (results["replicate_of"]).
    of = results.get("replicate_of") or {}
    replicates = {s: [m for m, r in of.items() if r["source"] == s] or [s] for s in results["sources"]}
    cells = {BASE: results["base"], **results["scores"], **(results.get("replicates") or {})}
    outcomes = collect(samples, results["sources"], results["targets"], cells, replicates) if samples else None
    return TransferData(
        sources=results["sources"], targets=results["targets"], transfer=results["transfer"],
        base={t: (c["value"] if c else None) for t, c in results["base"].items()},
        abilities={t: tuple(v) for t, v in results.get("abilities", {}).items()},
        traits=results.get("traits", {}), source_trait_names=source_trait_names,
        pair_traits=results.get("pair_traits", {}), outcomes=outcomes, metrics=results.get("metrics", {}),
        twins=results.get("twins", []), samples=samples, target_info=results.get("twin_targets", {}),
        trait_plugins=results.get("trait_plugins", {}),
        kinds=kinds_of(results))


def kinds_of(results: dict) -> dict[str, str]:
    """Target -> task kind, from a results.json's behaviour details (the only place it records them)."""
    details = ((results.get("behaviour") or {}).get("behaviour") or {}).get("targets") or {}
    return {t: d["kind"] for t, d in details.items() if d.get("kind")}


def analyse_run(registry, plan, mat, trait_results, behaviour, catalog, tokenizer=None) -> tuple[dict, list[dict]]:
    """The analysis stage of a run: its matrix, traits and per-sample logs put together as
    :class:`TransferData`, then :func:`analyse` with the registry's decomposers and settings.
    ``tokenizer`` (the base model's, when loaded) tells generation outputs that hit ``max_gen_toks``."""
    from harness.analysis.outcomes import collect
    from harness.config.registry import twin_pairs

    def count_tokens(text: str) -> int:
        return len(tokenizer(text, add_special_tokens=False)["input_ids"])

    data = TransferData(
        sources=mat.sources, targets=mat.targets, transfer=mat.transfer,
        base={t: (c["value"] if c else None) for t, c in mat.base.items()},
        abilities={t: plan.tasks[t].abilities for t in mat.targets},
        traits=trait_results.values,
        source_trait_names=[k for k, scope in trait_results.scopes.items() if scope == "source"],
        pair_traits=trait_results.pairs,
        outcomes=collect(behaviour.samples, mat.sources, mat.targets, {BASE: mat.base, **mat.scores, **mat.replicates},
                         mat.models or None),
        metrics=mat.metrics, twins=with_label_shares(twin_pairs(registry), plan), samples=behaviour.samples, target_info=target_info(plan),
        count_tokens=count_tokens if tokenizer is not None else None,
        trait_plugins=trait_results.plugins,
        kinds={t: plan.tasks[t].kind for t in mat.targets if getattr(plan.tasks[t], "kind", None)})
    out, failures = analyse(data, registry.decomposers, catalog, registry.analysis)
    out["skipped"] = [*trait_results.skipped, *out.get("skipped", [])]  # traits a source had no data for
    return out, failures
