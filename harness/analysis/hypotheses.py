"""The paper's hypotheses (Krishna et al.), each tested the way this study allows, with a verdict
computed from the numbers: "supported", "not supported" or "not testable" (with the reason).

Everything is read from a results-like dict (the analysis stage's output, or a ``results.json``):
``twin_contrasts`` (twin pairs), ``prediction["comparisons"]`` (predictors on the same folds),
``target_correlations`` (trait tests), ``decompositions`` (parallel analysis, stability), and the
``traits`` / ``kinds`` they need for fallbacks and directions. Nothing is recomputed that an
analysis already reports, except the across-source fallbacks of H1 and H2, which are permutation
tests of two trait columns. One entry per claim::

    {"id", "claim", "test", "effect": {"name", "value", "ci"}, "p", "q", "verdict", "reason"}

``q`` is Benjamini-Hochberg over the hypotheses that have a ``p`` (a family of at most five
tests). The verdicts use each hypothesis's own decision rule, written in its function's docstring;
``q`` is reported beside them so a reader can apply the stricter family-wise reading.
"""

from __future__ import annotations

import math

import numpy as np
from pydantic import BaseModel, ConfigDict, Field
from scipy.stats import norm

from harness.analysis import stats

SUPPORTED, NOT_SUPPORTED, NOT_TESTABLE = "supported", "not supported", "not testable"
CLASSIFICATION, GENERATION = "multiple_choice", "generation"
# Fieller, Hartley and Pearson (1957): var(atanh(Spearman r)) ~ 1.06 / (n - 3).
SPEARMAN_Z_VARIANCE = 1.06

CLAIMS = {
    "H1": "The class distribution of a source's training data biases the labels it predicts on classification targets.",
    "H2": "The completion length of a source's training data sets the output length on generation targets.",
    "H3": "The source's hidden statistics predict transfer better than surface similarity does.",
    "H4": "Data quality does not explain transfer.",
    "H5": "Transfer is explained by a few stable latent abilities.",
}


class HypothesisSettings(BaseModel):
    """How the hypotheses are tested: the level, the power a null claim needs, and which trait
    columns stand for which statistic (the built-in trait plugins' output names by default)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    level: float = Field(0.05, gt=0, lt=1, description="Significance level of every decision (the analysis' fdr).")
    power: float = Field(0.8, gt=0, lt=1, description="Power H4 needs before the absence of an effect counts as support.")
    large_effect: float = Field(0.5, gt=0, lt=1, description="The |Spearman| H4 must be able to detect (with `power`) for "
                                "'supported': a large correlation (Cohen, 1988).")
    permutations: int = Field(10_000, ge=100, description="Permutation budget of the H1/H2 fallback tests.")
    seed: int = Field(0, ge=0, description="Seed of the fallback permutations.")
    primary_metric: str = Field("spearman", description="H3's metric in prediction['comparisons']; 'ndcg_at_k' when "
                                "no Spearman row exists.")
    skew_trait: str = Field("majority_share", description="Source trait of class skew (class_distribution).")
    label_bias_trait: str = Field("behaviour_majority_bias_shift", description="Behaviour trait of label bias.")
    length_trait: str = Field("completion_tokens_mean", description="Source trait of completion length.")
    output_length_trait: str = Field("behaviour_output_length_shift", description="Behaviour trait of output length.")
    quality_traits: tuple[str, ...] = Field(
        ("completion_perplexity", "duplicate_rate", "prompt_duplicate_rate", "label_noise"),
        description="Source traits of data quality (the quality plugin's outputs).")


def settings_from(analysis) -> HypothesisSettings:
    """Hypothesis settings from an ``AnalysisSettings``: its fdr as the level, its permutations and seed."""
    return HypothesisSettings(level=analysis.fdr, permutations=analysis.permutations, seed=analysis.seed)


def entry(hid: str, test: str, verdict: str, reason: str, effect_name: str | None = None,
          value: float | None = None, ci: list | None = None, p: float | None = None) -> dict:
    """One ``results["hypotheses"]`` item (``q`` filled in by :func:`assess`)."""
    return {"id": hid, "claim": CLAIMS[hid], "test": test,
            "effect": {"name": effect_name, "value": stats.plain(value), "ci": ci if ci is None else [stats.plain(c) for c in ci]},
            "p": stats.plain(p), "q": None, "verdict": verdict, "reason": reason}


def _f(v, spec: str = ".3g") -> str:
    return "n/a" if v is None else format(v, spec)


def simes(p) -> float:
    """Simes' combined p of the global null over ``p`` (shape (m,)): min_i m p_(i) / i, which is the
    smallest Benjamini-Hochberg q; valid under independence and positive dependence."""
    return float(np.nanmin(stats.bh_qvalues(np.asarray(p, dtype=float))))


def fisher_ci(r: float, n: int, confidence: float = 0.95) -> list[float] | None:
    """Interval of a Spearman ``r`` over ``n`` sources by Fisher's z with variance 1.06/(n - 3)."""
    if r is None or n <= 3 or abs(r) >= 1:
        return None
    half = norm.ppf(0.5 + confidence / 2) * math.sqrt(SPEARMAN_Z_VARIANCE / (n - 3))
    return [math.tanh(math.atanh(r) - half), math.tanh(math.atanh(r) + half)]


def detectable_correlation(n: int, alpha: float, power: float) -> float | None:
    """The smallest |Spearman| a two-sided test at ``alpha`` detects with ``power`` over ``n`` sources
    (Fisher z, variance 1.06/(n - 3)): tanh((z_{1-alpha/2} + z_power) sqrt(1.06/(n - 3))). None for n <= 3."""
    if n <= 3:
        return None
    return math.tanh((norm.ppf(1 - alpha / 2) + norm.ppf(power)) * math.sqrt(SPEARMAN_Z_VARIANCE / (n - 3)))


# --- H1 and H2: twins first, an association across sources as the fallback ----------------------

def _length(row: dict, source: str, traits: dict, s: HypothesisSettings) -> float | None:
    """How long ``source``'s completions are: its completion-length trait, else its differing option
    (a number, or a bool such as ``rationale``: True writes longer completions)."""
    value = stats.as_float((traits.get(source) or {}).get(s.length_trait))
    if not math.isnan(value):
        return value
    side = 0 if source == row.get("source") else 1
    for pair in (row.get("differs") or {}).values():
        if isinstance(pair, (list, tuple)) and len(pair) == 2 and isinstance(pair[side], (bool, int, float)):
            return float(pair[side])
    return None


def _directed(rows: list[dict], order, results: dict, s: HypothesisSettings) -> list[tuple[dict, float]]:
    """Each row with the sign the claim predicts for its delta (source - twin): +1 when the source has
    more of the statistic than its twin, -1 when less; rows whose twins cannot be ordered are dropped."""
    traits = results.get("traits") or {}
    out = []
    for row in rows:
        a, b = order(row, row["source"], traits, s), order(row, row["twin_of"], traits, s)
        if a is not None and b is not None and a != b:
            out.append((row, 1.0 if a > b else -1.0))
    return out


def _twin_verdict(hid: str, directed: list[tuple[dict, float]], measure: str, s: HypothesisSettings) -> dict:
    """Supported when at least one contrast has q < level and every contrast with q < level has the
    predicted sign; not supported otherwise. Effect: the most significant contrast, signed so that
    positive is the predicted direction; p: Simes over the contrasts' p-values."""
    significant = [(r, sign) for r, sign in directed if r["q"] is not None and r["q"] < s.level]
    wrong = [(r, sign) for r, sign in significant if sign * r["delta"] <= 0]
    best, sign = min(directed, key=lambda rs: (rs[0]["p"], -abs(rs[0]["delta"] or 0)))
    ci = best.get("ci")
    ci = None if not ci or None in ci else sorted(sign * c for c in ci)
    pairs = sorted({f"{r['source']} vs {r['twin_of']}" for r, _ in directed})
    seeds = any(max((n or 1) for n in (r.get("n_seeds") or [1])) > 1 for r, _ in directed)
    test = (f"twin contrasts of {measure} (source - twin, paired documents{' and seeds' if seeds else ''}) "
            f"on {len(directed)} (pair, target) row(s): {', '.join(pairs)}; each signed so that + is the predicted "
            f"direction; q: Benjamini-Hochberg over the study's twin contrasts; p: Simes over these rows")
    where = f"{best['source']} vs {best['twin_of']} on {best['target']}"
    if not significant:
        qs = [r["q"] for r, _ in directed if r["q"] is not None]
        verdict, reason = NOT_SUPPORTED, (f"no contrast is significant (smallest q {_f(min(qs) if qs else None)} "
                                          f">= {s.level}); strongest: {where}, signed delta {_f(sign * best['delta'])}")
    elif wrong:
        r, sg = wrong[0]
        verdict, reason = NOT_SUPPORTED, (f"{len(wrong)} of {len(significant)} significant contrast(s) go against the claim, "
                                          f"e.g. {r['source']} vs {r['twin_of']} on {r['target']}: signed delta "
                                          f"{_f(sg * r['delta'])}, q {_f(r['q'])}")
    else:
        verdict, reason = SUPPORTED, (f"all {len(significant)} significant contrast(s) (q < {s.level}) go the predicted way; "
                                      f"strongest: {where}, signed delta {_f(sign * best['delta'])}, q {_f(best['q'])}")
    return entry(hid, test, verdict, reason, f"{measure} difference, predicted direction (source - twin)",
                 sign * best["delta"], ci, simes([r["p"] for r, _ in directed]))


def _source_value(traits: dict, source: str, name: str) -> float:
    """A source's trait, or (a behaviour trait of a study with several seeds, filed under the
    replicate models ``source@seedN``) the mean over its replicates; NaN when there is none."""
    value = stats.as_float((traits.get(source) or {}).get(name))
    if math.isnan(value):
        reps = [stats.as_float(row.get(name)) for model, row in traits.items() if model.startswith(f"{source}@seed")]
        reps = [v for v in reps if not math.isnan(v)]
        value = float(np.mean(reps)) if reps else math.nan
    return value


def _association(hid: str, results: dict, x_trait: str, y_trait: str, s: HypothesisSettings, why_no_twins: str) -> dict:
    """The fallback without twins: Spearman across sources of ``x_trait`` with ``y_trait``, two-sided
    permutation p. Supported when p < level and r > 0; not supported otherwise; not testable when
    fewer than 3 sources have both values, either is constant, or the smallest attainable p is not
    below the level."""
    traits = results.get("traits") or {}
    values = {src: (_source_value(traits, src, x_trait), _source_value(traits, src, y_trait))
              for src in results.get("sources", [])}
    sources = [src for src, (a, b) in values.items() if not (math.isnan(a) or math.isnan(b))]
    x = np.array([values[src][0] for src in sources])
    y = np.array([values[src][1] for src in sources])
    test = (f"fallback without twins: Spearman across {len(sources)} sources of {x_trait} with {y_trait}, "
            f"two-sided permutation p")
    if len(sources) < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        why = (f"{len(sources)} source(s) have both {x_trait} and {y_trait}, needs 3" if len(sources) < 3
               else f"{x_trait if np.ptp(x) == 0 else y_trait} is constant across the sources")
        return entry(hid, test, NOT_TESTABLE, f"{why_no_twins}; and the fallback cannot run: {why}")
    res = stats.permutation_test(x, y, "spearman", s.permutations, s.seed)
    r, p = float(res.r[0]), float(res.p[0])
    if res.min_p >= s.level:
        return entry(hid, test, NOT_TESTABLE, f"{why_no_twins}; and with {len(sources)} sources the smallest attainable "
                     f"permutation p is {res.min_p:.3g} >= {s.level}: the fallback cannot be significant", "Spearman", r,
                     fisher_ci(r, len(sources)), p)
    verdict = SUPPORTED if p < s.level and r > 0 else NOT_SUPPORTED
    reason = (f"{why_no_twins}, so across sources: Spearman {r:+.2f}, p {p:.3g} "
              + ("< " if p < s.level else ">= ") + f"{s.level}" + ("" if r > 0 else " and not positive"))
    return entry(hid, test, verdict, reason, f"Spearman of {x_trait} with {y_trait}", r, fisher_ci(r, len(sources)), p)


def _twin_rows(results: dict, statistic: str, measures: tuple[str, ...], kind: str) -> tuple[list[dict], list[dict]]:
    """Twin contrasts of ``statistic`` on ``measures`` and targets of ``kind`` (when kinds are known):
    the usable ones, and those skipped (with a reason) or without a p."""
    kinds = results.get("kinds") or {}
    rows = [r for r in results.get("twin_contrasts") or [] if r.get("statistic") == statistic
            and r.get("measure") in measures and kinds.get(r.get("target"), kind) == kind]
    usable = [r for r in rows if not r.get("skipped") and r.get("p") is not None and r.get("delta") is not None]
    return usable, [r for r in rows if r not in usable]


def over_represented(results: dict, row: dict) -> str | None:
    """The label a twin contrast's source is trained on more of than its twin (the largest gap in
    ``results["twins"][...]["label_shares"]``), or None when the pair records no label shares or
    the source has more of no label."""
    pair = next((p for p in results.get("twins") or []
                 if p.get("source") == row["source"] and p.get("twin_of") == row["twin_of"]), None)
    shares = (pair or {}).get("label_shares") or {}
    mine, theirs = shares.get(row["source"]), shares.get(row["twin_of"])
    if not mine or not theirs:
        return None
    gaps = {label: mine.get(label, 0.0) - theirs.get(label, 0.0) for label in sorted(set(mine) | set(theirs))}
    label = max(gaps, key=gaps.get)
    return label if gaps[label] > 0 else None


def h1(results: dict, s: HypothesisSettings) -> dict:
    """H1, class distribution -> label bias on classification targets.

    Primary test: twin contrasts with ``statistic == "class_balance"`` and ``measure ==
    "label_share"`` of the label the source's training rows over-represent relative to its twin's
    (:func:`over_represented`), on classification targets that have that label. The claim predicts
    the source answers that label more than its twin: a positive source - twin delta. Targets with
    other labels are left out, since no label of theirs is the one the twins' data differ in (a
    majority-label contrast there has no predicted sign). Decision: :func:`_twin_verdict`. Without
    such rows: :func:`_association` of ``majority_share`` with the behaviour trait
    ``behaviour_majority_bias_shift``; not testable when neither can run.
    """
    usable, _ = _twin_rows(results, "class_balance", ("label_share",), CLASSIFICATION)
    directed = [(row, 1.0) for row in usable if row.get("label") is not None
                and row["label"] == over_represented(results, row)]
    if directed:
        return _twin_verdict("H1", directed, "label_share", s)
    if any(r.get("statistic") == "class_balance" for r in results.get("twin_contrasts") or []):
        why = ("twins differ in class balance, but no classification target has a label_share contrast, with a p, "
               "of the label the source's training rows over-represent")
    else:
        why = "no twin differs in class balance"
    return _association("H1", results, s.skew_trait, s.label_bias_trait, s, why)


def h2(results: dict, s: HypothesisSettings) -> dict:
    """H2, completion length -> output length on generation targets.

    Primary test: twin contrasts with ``statistic == "completion_length"`` and ``measure ==
    "output_length"`` on generation targets; a row ``skipped`` because ``max_gen_toks`` caps the
    outputs does not count. The claim predicts the twin with longer completions (larger
    ``completion_tokens_mean``, else the larger/True option) writes longer outputs. Decision:
    :func:`_twin_verdict`. When every such row is skipped: not testable, quoting the skip reasons
    (the cap hides length from the behaviour trait too, so there is no fallback). Without such
    twins: :func:`_association` of ``completion_tokens_mean`` with ``behaviour_output_length_shift``.
    """
    usable, other = _twin_rows(results, "completion_length", ("output_length",), GENERATION)
    directed = _directed(usable, _length, results, s)
    if directed:
        return _twin_verdict("H2", directed, "output_length", s)
    capped = [r for r in other if r.get("skipped")]
    if capped:
        reasons = sorted({str(r["skipped"]) for r in capped})
        return entry("H2", f"twin contrasts of output_length on {len(capped)} (pair, target) row(s)", NOT_TESTABLE,
                     "every completion-length twin contrast on a generation target was skipped: " + "; ".join(reasons))
    why = ("no twin differs in completion length" if not usable else
           "the completion-length twins could not be ordered by length")
    return _association("H2", results, s.length_trait, s.output_length_trait, s, why)


# --- H3 and H4: prediction comparisons and trait tests -----------------------------------------

def _comparison(prediction: dict, a: str, b: str, metric: str) -> tuple[dict, float] | None:
    """The ``prediction["comparisons"]`` row of ``a`` vs ``b`` on ``metric``, and +1 or -1 (-1: the
    row was written as b vs a, so its difference and CI are negated)."""
    for row in prediction.get("comparisons") or []:
        if row.get("metric") == metric and row.get("difference") is not None:
            if (row.get("a"), row.get("b")) == (a, b):
                return row, 1.0
            if (row.get("a"), row.get("b")) == (b, a):
                return row, -1.0
    return None


def _why_not_compared(results: dict, names: tuple[str, ...]) -> str:
    prediction = results.get("prediction")
    if not prediction:
        skips = [i["reason"] for i in results.get("skipped") or [] if i.get("analysis") == "prediction"]
        return "prediction was not run" + (f": {skips[0]}" if skips else "")
    missing = prediction.get("not_compared") or {}
    said = [f"{n}: {missing[n]}" for n in names if n in missing]
    return "; ".join(said) or f"prediction['comparisons'] has no row comparing {' with '.join(names)}"


def h3(results: dict, s: HypothesisSettings) -> dict:
    """H3, hidden statistics predict transfer better than surface similarity.

    Reads the ``prediction["comparisons"]`` row with a = "statistics" and b = "similarity" (the two
    leave-one-source-out predictors on the same folds), on the primary metric (mean over targets of
    the per-target Spearman; NDCG@k when no Spearman row exists). Supported when the difference is
    > 0 and p < level; not supported otherwise; not testable when the row is absent (the reason from
    ``prediction["not_compared"]``, or why prediction did not run).
    """
    prediction = results.get("prediction") or {}
    found, metric = None, s.primary_metric
    for metric in (s.primary_metric, "ndcg_at_k"):
        found = _comparison(prediction, "statistics", "similarity", metric)
        if found:
            break
    if not found:
        return entry("H3", "leave-one-source-out prediction from statistics vs from similarity, same folds",
                     NOT_TESTABLE, _why_not_compared(results, ("statistics", "similarity")))
    row, sign = found
    diff, p = sign * row["difference"], row.get("p")
    ci = row.get("ci")
    ci = None if not ci or None in ci else sorted(sign * c for c in ci)
    test = (f"prediction comparison statistics - similarity on {metric} over {row.get('n_targets')} targets, "
            f"same leave-one-source-out folds{'' if metric == s.primary_metric else ' (no ' + s.primary_metric + ' row)'}")
    if p is None:
        return entry("H3", test, NOT_TESTABLE, "the comparison has no p-value", f"difference in {metric}", diff, ci)
    verdict = SUPPORTED if diff > 0 and p < s.level else NOT_SUPPORTED
    reason = (f"statistics - similarity = {diff:+.3f} in {metric}, p {p:.3g}: "
              + ("statistics predict better" if verdict == SUPPORTED else
                 "not better" if diff <= 0 else f"not significant at {s.level}"))
    return entry("H3", test, verdict, reason, f"difference in {metric} (statistics - similarity)", diff, ci, p)


def h4(results: dict, s: HypothesisSettings) -> dict:
    """H4, data quality does not explain transfer: a null claim, so absence of evidence must be
    shown to be evidence of absence before it counts as support.

    The family of tests: every ``target_correlations`` row of a quality trait (its Spearman with one
    target's transfer across sources, two-sided permutation p), plus, when prediction compared
    them, the "quality" predictor against "mean_row" (one-sided: quality better, p/2 when its
    difference is > 0, else 1 - p/2). Their Simes combination is the p of "quality explains
    nothing" (the global null); it is the smallest BH q within the family, so the family is the
    quality tests alone, not the whole trait table (a larger family would make an effect harder to
    find, which would favour this null claim).

    - not supported: Simes p < level (some quality association or the quality predictor survives).
    - not testable: no quality trait in the study, no quality test, 3 or fewer sources, or too few
      sources to detect a large effect: the smallest |Spearman| detectable with ``power`` at level
      level/m (m tests; BH finds a lone true effect among m about when Bonferroni does), by Fisher's
      z with variance 1.06/(n - 3), exceeds ``large_effect``; or the permutation test's smallest
      attainable p is not below level/m.
    - supported: otherwise, i.e. the study could detect |Spearman| >= ``large_effect`` with
      ``power`` and found nothing.
    Effect: the strongest quality association (Spearman, Fisher-z CI).
    """
    names = set(s.quality_traits)
    have = sorted({k for row in (results.get("traits") or {}).values() for k, v in row.items()
                   if k in names and v is not None})
    test = "quality traits' Spearman with each target's transfer (target_correlations)"
    if not have:
        return entry("H4", test, NOT_TESTABLE, f"no quality traits ({', '.join(s.quality_traits)}) in this study")
    rows = [r for r in results.get("target_correlations") or [] if r.get("trait") in names and r.get("p") is not None]
    if not rows:
        skipped = (results.get("trait_tests") or {}).get("targets", {}).get("skipped") or []
        why = "; ".join(f"{i['trait']}: {i['reason']}" for i in skipped if i.get("trait") in names)
        return entry("H4", test, NOT_TESTABLE, "no quality trait could be tested against transfer"
                     + (f" ({why})" if why else ""))
    ps = [r["p"] for r in rows]
    found = _comparison(results.get("prediction") or {}, "quality", "mean_row", s.primary_metric)
    if found:
        row, sign = found
        if row.get("p") is not None:
            diff = sign * row["difference"]
            ps.append(row["p"] / 2 if diff > 0 else 1 - row["p"] / 2)
            test += f" and the quality predictor vs mean_row on {s.primary_metric}"
    m, n = len(ps), max(r.get("n") or 0 for r in rows)
    p = simes(ps)
    best = max(rows, key=lambda r: abs(r.get("spearman") or 0))
    test += f": {m} test(s) over {n} sources, p = Simes over the family"
    effect = ("strongest quality-transfer Spearman", best.get("spearman"), fisher_ci(best.get("spearman"), best.get("n") or 0))
    where = f"{best['trait']} on {best.get('target')}"
    if p < s.level:
        return entry("H4", test, NOT_SUPPORTED, f"quality is associated with transfer: Simes p {p:.3g} < {s.level} "
                     f"(strongest: {where}, Spearman {_f(best.get('spearman'), '+.2f')})", *effect, p)
    detectable = detectable_correlation(n, s.level / m, s.power)
    floor = ((results.get("trait_tests") or {}).get("targets") or {}).get("min_p")  # of the target_correlations table
    if detectable is None or detectable > s.large_effect or (floor is not None and floor >= s.level / m):
        why = (f"{n} sources" if detectable is None else
               f"with {n} sources and {m} tests the smallest |Spearman| detectable with {s.power:.0%} power at "
               f"{s.level}/{m} is {detectable:.2f} > {s.large_effect}")
        if floor is not None and floor >= s.level / m:
            why += f"; the smallest attainable permutation p is {floor:.3g} >= {s.level}/{m}"
        return entry("H4", test, NOT_TESTABLE, f"no quality association found (Simes p {p:.3g}), but the study could "
                     f"not have detected one: {why}", *effect, p)
    return entry("H4", test, SUPPORTED, f"no quality association (Simes p {p:.3g} >= {s.level}), and the study could "
                 f"detect |Spearman| >= {detectable:.2f} with {s.power:.0%} power ({n} sources, {m} tests)", *effect, p)


# --- H5: parallel analysis and stability --------------------------------------------------------

def h5(results: dict, s: HypothesisSettings) -> dict:
    """H5, a few stable latent abilities.

    Reads the first decomposition (registry order) whose number of components was chosen by
    parallel analysis. k = ``n_components["retained_by_test"]`` (components whose correlation
    eigenvalue beats the 95th percentile of column-shuffled matrices). "A few" is 1 <= k <=
    n_targets / 2: at most half the targets, so the abilities summarise the targets rather than
    restate them (k = n_targets - 1 would be "no structure" as much as k = 0).

    - supported: 1 <= k <= n_targets / 2 and each of the k components' stability verdict is
      "stable" (bootstrap and leave-one-source-out congruence, :func:`harness.analysis.stability.verdict`).
    - not supported: k = 0, k > n_targets / 2, or some of the k components "unstable".
    - not testable: no decomposition (the reason from ``skipped``), none chose k by parallel
      analysis, or stability "untested" (neither check could run).
    No p-value: parallel analysis is a threshold rule and stability a congruence criterion.
    """
    decs = results.get("decompositions") or {}
    test = "parallel analysis (Horn) and bootstrap / leave-one-source-out stability"
    if not decs:
        why = [i["reason"] for i in results.get("skipped") or [] if i.get("analysis") == "decompose"]
        return entry("H5", test, NOT_TESTABLE, "no decomposition" + (f": {why[0]}" if why else " was run"))
    key = next((k for k, d in decs.items() if "retained_by_test" in (d.get("n_components") or {})), None)
    if key is None:
        return entry("H5", test, NOT_TESTABLE, "no decomposition chose its components by parallel analysis "
                     f"({', '.join(decs)} fixed them); use n_components: parallel")
    dec = decs[key]
    k, n_targets = int(dec["n_components"]["retained_by_test"]), len(next(iter(dec["loadings"].values()), {}))
    ids = list(dec["labels"])[:k]
    verdicts = {c: (dec.get("stability") or {}).get("verdict", {}).get(c, "untested") for c in ids}
    test = f"{key}: {test}, over {len(dec.get('scores') or {})} sources x {n_targets} targets; 'a few' = 1 <= k <= {n_targets // 2}"
    effect = ("components retained by parallel analysis", k, None)
    if k == 0:
        return entry("H5", test, NOT_SUPPORTED, "parallel analysis keeps no component: no structure beyond chance", *effect)
    if k > n_targets / 2:
        return entry("H5", test, NOT_SUPPORTED, f"parallel analysis keeps {k} of {n_targets} targets' dimensions: not a few", *effect)
    if any(v == "untested" for v in verdicts.values()):
        why = "; ".join(f"{c}: {r}" for c, r in ((dec.get("stability") or {}).get("skipped") or {}).items())
        return entry("H5", test, NOT_TESTABLE, f"parallel analysis keeps {k}, but stability was not tested"
                     + (f" ({why})" if why else ""), *effect)
    unstable = [c for c, v in verdicts.items() if v != "stable"]
    if unstable:
        return entry("H5", test, NOT_SUPPORTED, f"parallel analysis keeps {k}, but {', '.join(unstable)} "
                     f"{'is' if len(unstable) == 1 else 'are'} unstable", *effect)
    return entry("H5", test, SUPPORTED, f"parallel analysis keeps {k} component(s), all stable", *effect)


def assess(results: dict, settings: HypothesisSettings | None = None) -> list[dict]:
    """H1-H5 on a results-like dict, with Benjamini-Hochberg q over those that have a p.

    ``results`` needs ``sources`` and reads, where present: ``traits``, ``kinds`` (target -> task
    kind; else taken from ``behaviour``), ``twin_contrasts``, ``prediction``, ``target_correlations``,
    ``trait_tests``, ``decompositions`` and ``skipped``.
    """
    s = settings or HypothesisSettings()
    if "kinds" not in results:
        details = ((results.get("behaviour") or {}).get("behaviour") or {}).get("targets") or {}
        results = {**results, "kinds": {t: d["kind"] for t, d in details.items() if "kind" in d}}
    out = [h(results, s) for h in (h1, h2, h3, h4, h5)]
    q = stats.bh_qvalues([np.nan if e["p"] is None else e["p"] for e in out])
    for e, qi in zip(out, q):
        e["q"] = None if np.isnan(qi) else float(qi)
    return out


def not_testable_all(reason: str) -> list[dict]:
    """Every hypothesis not testable, for the same reason (a study without sources)."""
    return [entry(h, "none", NOT_TESTABLE, reason) for h in CLAIMS]
