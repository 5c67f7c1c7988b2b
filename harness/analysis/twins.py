"""Twin contrasts: two sources of one task that differ in one statistic, compared on every target.

A twin pair (``source``, ``twin_of``) shares generator and content, so a difference in what their
adapters do is attributed to the statistic their options differ in (class balance, completion
length, label form). Every contrast is source minus twin, on the same documents:

* ``transfer``: the per-document score (``Outcomes.values``; transfer = score - base, and the
  base cancels in the contrast);
* classification targets: ``label_share`` (share of documents predicted as each label) and
  ``majority_bias`` (share predicted as the label the two twins predict most, pooled, minus its
  gold share; the gold share cancels, so its delta is that label's share delta);
* generation targets: ``output_length`` (whitespace words of the raw output, as the behaviour
  trait counts them) and ``format_adherence`` (the answer regex found something), unless the
  target's ``max_gen_toks`` caps the outputs (then the length contrast is skipped, with why).

Tests. One replicate per twin: :func:`harness.analysis.stats.paired_test` (exact McNemar for 0/1
values, else a paired bootstrap). Several seeds on either side: a two-sample t statistic whose
variance adds the between-seed spread of the seed means (pooled over both twins: the same
generator is assumed to have the same training noise, so a side with one seed borrows the
other's) to the document variance of the paired per-document difference of the seed-averaged
values, df by Welch-Satterthwaite. The seed-by-document noise is counted in both terms, so the
test errs conservative. Benjamini-Hochberg q-values are over every contrast of the study.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats as _st

from harness.analysis.outcomes import Outcomes
from harness.analysis.stats import bh_qvalues, paired_test
from harness.api.samples import answered, output_length, predicted_index

MEASURES = ("transfer", "label_share", "majority_bias", "output_length", "format_adherence")
CAP_SHARE = 0.2  # outputs hitting max_gen_toks from this share on: the cap, not the model, sets the length


@dataclass
class TargetInfo:
    """What the contrasts need to know of a target: its kind, labels (classification) and, for
    generation, lm-eval's ``max_gen_toks``."""

    kind: str
    labels: list[str] | None = None
    max_gen_toks: int | None = None


def two_level_test(a: np.ndarray, b: np.ndarray, confidence: float = 0.95, seed: int = 0) -> dict:
    """Contrast ``a`` minus ``b``: per-document values of shape (R_a, n) and (R_b, n), the same
    documents in the same column order.

    With R_a = R_b = 1, :func:`paired_test` on the two rows (McNemar or paired bootstrap). Otherwise
    delta = mean(a) - mean(b) and

        se^2 = s_seed^2 (1/R_a + 1/R_b) + var_j(d_j) / n,   d_j = mean_r a_rj - mean_r b_rj,

    ``s_seed^2`` the pooled variance of the seed means (each row's mean over documents), df by
    Welch-Satterthwaite over (R_a + R_b - 2, n - 1); p two-sided from Student's t, CI delta ± t se.

    Returns
    -------
    dict with ``delta``, ``ci`` ([lo, hi]), ``p``, ``method`` and ``n_docs``.
    """
    a, b = np.atleast_2d(np.asarray(a, dtype=float)), np.atleast_2d(np.asarray(b, dtype=float))
    n = a.shape[1]
    if a.shape[0] == 1 and b.shape[0] == 1:
        test = paired_test(b[0], a[0], seed=seed, confidence=confidence)
        return {"delta": test["delta"], "ci": test["ci"], "p": test["p"], "method": test["method"], "n_docs": n}
    d = a.mean(axis=0) - b.mean(axis=0)
    delta = float(d.mean())
    means = [m for m in (a.mean(axis=1), b.mean(axis=1)) if len(m) > 1]
    df_seed = sum(len(m) - 1 for m in means)
    s2_seed = sum(((m - m.mean()) ** 2).sum() for m in means) / df_seed
    v_seed = s2_seed * (1 / a.shape[0] + 1 / b.shape[0])
    v_doc = float(d.var(ddof=1)) / n if n > 1 else 0.0
    se2 = v_seed + v_doc
    method = "seeds_and_documents_t"
    if se2 <= 0:  # every seed and every document agree: no evidence of a difference either way
        p = 1.0 if delta == 0 else 0.0
        return {"delta": delta, "ci": [delta, delta], "p": p, "method": method, "n_docs": n}
    df = se2**2 / (v_seed**2 / df_seed + (v_doc**2 / (n - 1) if n > 1 else 0.0))
    se = float(np.sqrt(se2))
    half = float(_st.t.ppf(0.5 + confidence / 2, df)) * se
    p = float(2 * _st.t.sf(abs(delta) / se, df))
    return {"delta": delta, "ci": [delta - half, delta + half], "p": p, "method": method, "n_docs": n}


def _by_doc(samples: dict, model: str, target: str) -> dict:
    return {rec["doc_id"]: rec for rec in (samples.get(model, {}).get(target) or [])}


def _cap_reason(target: str, cap: int | None, logs: list[list[dict]], count_tokens, completion_tokens) -> str | None:
    """Why an output-length contrast on ``target`` would measure its ``max_gen_toks`` cap, or None.

    Capped when the cap is below either twin's mean training-completion length in tokens
    (``completion_tokens``), or when ``count_tokens`` (the base model's tokenizer) finds at least
    ``CAP_SHARE`` of either twin's outputs at the cap.
    """
    if cap is None:
        return None
    longer = [c for c in completion_tokens if c is not None and c > cap]
    if longer:
        return (f"{target} caps outputs at {cap} tokens, below a twin's mean completion of {max(longer):.0f} "
                "tokens: a length contrast would measure the cap")
    if count_tokens is None:
        return None
    for log in logs:
        hit = [count_tokens(str(r.get("output") or "")) >= cap for r in log]
        share = sum(hit) / len(hit) if hit else 0.0
        if share >= CAP_SHARE:
            return (f"{target} caps outputs at {cap} tokens; {100 * share:.0f}% of outputs hit it: a length "
                    "contrast would measure the cap")
    return None


def _measures(info: TargetInfo, logs_a: list[dict], logs_b: list[dict], docs: list) -> list[tuple[str, str | None, np.ndarray, np.ndarray]]:
    """(measure, label, values of the source (R_a, n), of the twin (R_b, n)) from per-sample logs."""
    def matrix(logs, value):
        return np.array([[value(log[doc]) for doc in docs] for log in logs], dtype=float)

    out = []
    if info.kind == "multiple_choice" and info.labels:
        k = len(info.labels)

        def pred(rec):
            return predicted_index(rec, k)

        shares = []
        for i, label in enumerate(info.labels):
            a, b = matrix(logs_a, lambda r, i=i: pred(r) == i), matrix(logs_b, lambda r, i=i: pred(r) == i)
            out.append(("label_share", label, a, b))
            shares.append(a.mean() + b.mean())
        top = int(np.argmax(shares))  # the label both twins predict most, pooled: ties to the first
        out.append(("majority_bias", info.labels[top], out[top][2], out[top][3]))
    elif info.kind == "generation":
        out.append(("output_length", None, matrix(logs_a, output_length), matrix(logs_b, output_length)))
        out.append(("format_adherence", None, matrix(logs_a, lambda r: answered(r.get("prediction"))),
                    matrix(logs_b, lambda r: answered(r.get("prediction")))))
    return out


def twin_contrasts(pairs: list[dict], outcomes: Outcomes, samples: dict[str, dict[str, list[dict]]],
                   targets: dict[str, TargetInfo], confidence: float = 0.95, fdr: float = 0.05, seed: int = 0,
                   count_tokens=None, completion_tokens: dict[str, float | None] | None = None) -> list[dict]:
    """Every twin pair's contrasts on every target: rows of ``results["twin_contrasts"]``.

    Parameters
    ----------
    pairs
        ``{"source", "twin_of", "statistic", "differs"}`` per twin pair (``results["twins"]``).
    outcomes
        Per-document scores, ``values[target]`` of shape (1 + n_models, n_docs); ``rows`` maps a
        source to its replicate rows.
    samples
        Per-sample logs ``samples[model][target]`` keyed by replicate model name.
    targets
        target -> :class:`TargetInfo`.
    count_tokens, completion_tokens
        The base tokenizer's token count of a text, and each source's mean training-completion
        length in tokens: how a capped generation target is recognised (either may be absent).
    """
    rows_of, models = outcomes.rows, outcomes.models
    completion_tokens = completion_tokens or {}
    out: list[dict] = []
    for pair in pairs:
        src, twin = pair["source"], pair["twin_of"]
        common = {k: pair[k] for k in ("source", "twin_of", "statistic", "differs")}
        ra, rb = rows_of.get(src, []), rows_of.get(twin, [])
        names_a, names_b = [models[r - 1] for r in ra], [models[r - 1] for r in rb]
        n_seeds = [len(ra), len(rb)]

        def row(target, measure, label=None, test=None, skipped=None, n_docs=0, common=common, n_seeds=n_seeds):
            test = test or {"delta": None, "ci": None, "p": None, "method": "none"}
            return {**common, "target": target, "measure": measure, "label": label, "delta": test["delta"],
                    "ci": test["ci"], "p": test["p"], "q": None, "significant": False,
                    "n_docs": test.get("n_docs", n_docs), "n_seeds": n_seeds, "method": test["method"],
                    "skipped": skipped}

        for target, info in targets.items():
            y = outcomes.values.get(target)
            if not ra or not rb:
                why = f"no scores of {src if not ra else twin}"
                out.append(row(target, "transfer", skipped=why))
                continue
            if y is None:
                out.append(row(target, "transfer", skipped=outcomes.skipped.get(target, "no per-document scores")))
            else:
                out.append(row(target, "transfer", test=two_level_test(y[ra], y[rb], confidence, seed)))
            logs_a = [_by_doc(samples, m, target) for m in names_a]
            logs_b = [_by_doc(samples, m, target) for m in names_b]
            if not all(logs_a) or not all(logs_b):
                if info.kind in ("multiple_choice", "generation"):
                    out.append(row(target, "label_share" if info.kind == "multiple_choice" else "output_length",
                                   skipped="no per-sample log of a twin's replicate"))
                continue
            docs = sorted(set.intersection(*(set(log) for log in logs_a + logs_b)))
            if not docs:
                continue
            capped = None
            if info.kind == "generation":
                capped = _cap_reason(target, info.max_gen_toks, [list(log.values()) for log in logs_a + logs_b],
                                     count_tokens, [completion_tokens.get(src), completion_tokens.get(twin)])
            for measure, label, a, b in _measures(info, logs_a, logs_b, docs):
                if measure == "output_length" and capped:
                    out.append(row(target, measure, skipped=capped, n_docs=len(docs)))
                    continue
                out.append(row(target, measure, label, test=two_level_test(a, b, confidence, seed)))
    ps = np.array([np.nan if r["p"] is None else r["p"] for r in out], dtype=float)
    for r, q in zip(out, bh_qvalues(ps) if out else []):
        r["q"] = None if np.isnan(q) else float(q)
        r["significant"] = r["q"] is not None and r["q"] < fdr
    return out
