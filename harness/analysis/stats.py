"""Small-sample statistics for transfer results: correlations, permutation tests, FDR, paired tests.

Transfer studies have few sources (often 5-20), so every p-value here comes from permutations or
the bootstrap rather than from a t or normal approximation, and the smallest p a test can reach is
reported alongside it: with 4 sources no correlation can be significant, and users must see why.
Pure numpy/scipy; nothing here knows about the harness.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np
from scipy import stats as _st

_TIE = 1e-12  # permuted statistics this close to the observed one count as "as extreme"
_BATCH = 4096  # permutations / bootstrap draws per matrix product, to bound memory



def as_float(value) -> float:
    """``value`` as a float for computing: NaN for ``None`` or anything not a finite number."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        return math.nan
    return v if math.isfinite(v) else math.nan


def plain(value) -> float | None:
    """``value`` as a float for JSON: None for ``None``, NaN, infinities and anything not a number."""
    v = as_float(value)
    return None if math.isnan(v) else v


def mean_present(values) -> float | None:
    """The mean of the values that are not None; None when there are none."""
    values = [v for v in values if v is not None]
    return float(np.mean(values)) if values else None


def rankdata(x) -> np.ndarray:
    """Ranks of ``x`` (shape (n,)), 1-based, ties given their average rank. Shape (n,)."""
    return _st.rankdata(np.asarray(x, dtype=float))


def _standardise(Y: np.ndarray) -> np.ndarray:
    """Centre each column of ``Y`` (n, m) and scale it to unit norm, so that the Pearson correlation
    of two columns is their dot product. Shape (n, m); constant columns become NaN."""
    constant = np.ptp(Y, axis=0) == 0  # exact test: centring a constant column can leave float dust
    Y = Y - Y.mean(axis=0)
    norm = np.sqrt((Y**2).sum(axis=0))
    norm[constant] = np.nan
    return Y / norm


def _pearson_matrix(x: np.ndarray, Y: np.ndarray) -> np.ndarray:
    """Pearson r of ``x`` (n,) with each column of ``Y`` (n, m). Shape (m,); NaN where undefined."""
    if len(x) < 3:
        return np.full(Y.shape[1], np.nan)
    r = _standardise(x[:, None])[:, 0] @ _standardise(Y)
    return np.clip(r, -1.0, 1.0)


def pearson(x, y) -> float:
    """Pearson correlation of ``x`` and ``y`` (both shape (n,)); NaN if either is constant or n < 3."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(f"x and y must have the same shape (n,); got {x.shape} and {y.shape}")
    return float(_pearson_matrix(x, y[:, None])[0])


def spearman(x, y) -> float:
    """Spearman rank correlation (Pearson r of average ranks) of ``x`` and ``y`` (both shape (n,));
    NaN if either is constant or n < 3."""
    return pearson(rankdata(x), rankdata(y))


@dataclass
class PermutationResult:
    """Outcome of :func:`permutation_test`.

    Attributes
    ----------
    r : ndarray of shape (m,)
        Observed correlation of ``x`` with each column of ``Y``; NaN where undefined.
    p : ndarray of shape (m,)
        Two-sided permutation p-values; NaN where ``r`` is NaN.
    exact : bool
        True when every one of the n! orderings was enumerated.
    n_permutations : int
        Orderings used: n! when exact, else the number of random permutations.
    min_p : float
        Smallest p-value this test can return: 2/n! when exact (the observed ordering and its
        reverse both reach |r| = 1 for untied data; ties only raise it), 1/(1 + n_permutations)
        for Monte Carlo, 1 when n < 3.
    """

    r: np.ndarray
    p: np.ndarray
    exact: bool
    n_permutations: int
    min_p: float


def permutation_test(x, Y, method: str = "spearman", max_permutations: int = 10000,
                     seed: int = 0) -> PermutationResult:
    """Two-sided permutation test of the correlation of ``x`` with each column of ``Y``.

    The null is that ``x`` is exchangeable with respect to the rows of ``Y``: ``x`` is re-ordered and
    every column's correlation recomputed, one matrix product per batch of orderings.

    Parameters
    ----------
    x : array of shape (n,)
    Y : array of shape (n, m) or (n,)
        Finite values; each column is tested against ``x``.
    method : {"spearman", "pearson"}
    max_permutations : int
        If n! <= max_permutations all orderings are enumerated and p is the exact share with
        |r_perm| >= |r_obs| (the observed ordering is among them). Otherwise ``max_permutations``
        random permutations are drawn and p = (1 + count) / (1 + max_permutations): counting the
        observed ordering among them makes p valid (P[p <= alpha] <= alpha under the null) and never 0.
    seed : int
        Seed of the random permutations; the same seed gives the same orderings for any ``Y``.

    Returns
    -------
    PermutationResult
    """
    if method not in ("spearman", "pearson"):
        raise ValueError(f"method must be 'spearman' or 'pearson', got {method!r}")
    x = np.asarray(x, dtype=float)
    Y = np.asarray(Y, dtype=float)
    Y = Y[:, None] if Y.ndim == 1 else Y
    n, m = len(x), Y.shape[1]
    if x.ndim != 1 or Y.ndim != 2 or len(Y) != n:
        raise ValueError(f"x must have shape (n,) and Y (n, m); got {x.shape} and {Y.shape}")
    if not (np.isfinite(x).all() and np.isfinite(Y).all()):
        raise ValueError("x and Y must be finite; drop missing values before testing")
    if n < 3:
        return PermutationResult(np.full(m, np.nan), np.full(m, np.nan), True, math.factorial(n), 1.0)
    if method == "spearman":
        x, Y = rankdata(x), _st.rankdata(Y, axis=0)
    exact = math.factorial(n) <= max_permutations

    zx, zY = _standardise(x[:, None])[:, 0], _standardise(Y)
    r = np.clip(zx @ zY, -1.0, 1.0)
    threshold = np.abs(r) - _TIE
    count = np.zeros(m)
    if exact:
        orderings = itertools.permutations(range(n))
        total = math.factorial(n)
        for _ in range(0, total, _BATCH):
            batch = np.array(list(itertools.islice(orderings, _BATCH)))  # (B, n)
            count += (np.abs(zx[batch] @ zY) >= threshold).sum(axis=0)
        p = count / total
        min_p = min(1.0, 2.0 / total)
    else:
        rng = np.random.default_rng(seed)
        total = int(max_permutations)
        for start in range(0, total, _BATCH):
            size = min(_BATCH, total - start)
            batch = rng.permuted(np.broadcast_to(np.arange(n), (size, n)), axis=1)
            count += (np.abs(zx[batch] @ zY) >= threshold).sum(axis=0)
        p = (1.0 + count) / (1.0 + total)
        min_p = 1.0 / (1.0 + total)
    p = np.where(np.isnan(r), np.nan, np.minimum(p, 1.0))
    return PermutationResult(r, p, bool(exact), int(total), float(min_p))


def bh_qvalues(p) -> np.ndarray:
    """Benjamini-Hochberg adjusted p-values (q-values) of ``p`` (shape (m,)), same shape.

    q_(i) = min over j >= i of p_(j) * m / j on the sorted p-values, capped at 1, so q is monotone in p:
    ``scipy.stats.false_discovery_control(p, method="bh")`` on the entries that are not NaN. NaNs
    (and None) stay NaN and do not count in m (a test that could not be run is not a test). Any
    shape is taken as one family of m tests; scipy refuses p-values outside [0, 1].
    """
    p = np.asarray(p, dtype=float)
    q = np.full(p.shape, np.nan)
    ok = ~np.isnan(p)
    q[ok] = _st.false_discovery_control(p[ok], method="bh")
    return q


def _paired(a, b) -> tuple[np.ndarray, np.ndarray]:
    a, b = np.asarray(a, dtype=float).ravel(), np.asarray(b, dtype=float).ravel()
    if len(a) != len(b):
        raise ValueError(f"paired outcomes need equal lengths, got {len(a)} and {len(b)}")
    if len(a) == 0:
        raise ValueError("paired outcomes are empty")
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise ValueError("paired outcomes must be finite")
    return a, b


def mcnemar_exact(a, b) -> dict:
    """Exact McNemar test for paired binary outcomes ``a`` and ``b`` (0/1 arrays of shape (n,)).

    Only discordant pairs carry information: under the null each is equally likely to be
    ``n01`` (a=0, b=1) or ``n10`` (a=1, b=0), so p is scipy's two-sided exact binomial test of
    n01 ~ Binomial(n01 + n10, 1/2), which by symmetry is min(1, 2 * P[X <= min(n01, n10)]); 1 when
    there is no discordant pair (scipy needs at least one trial).

    Returns
    -------
    dict with ``p`` (float), ``n01`` and ``n10`` (int).
    """
    a, b = _paired(a, b)
    if not np.isin(a, (0, 1)).all() or not np.isin(b, (0, 1)).all():
        raise ValueError("McNemar's test needs 0/1 outcomes")
    n01, n10 = int(((a == 0) & (b == 1)).sum()), int(((a == 1) & (b == 0)).sum())
    n = n01 + n10
    p = 1.0 if n == 0 else float(_st.binomtest(min(n01, n10), n, 0.5, alternative="two-sided").pvalue)
    return {"p": p, "n01": n01, "n10": n10}


def _bootstrap_means(d: np.ndarray, n_boot: int, seed: int) -> np.ndarray:
    """Means of ``n_boot`` resamples (with replacement) of ``d`` (n,). Shape (n_boot,)."""
    rng = np.random.default_rng(seed)
    n = len(d)
    step = max(1, _BATCH * 64 // n)  # bound the (step, n) index matrix for long evaluation sets
    return np.concatenate([d[rng.integers(0, n, (min(step, n_boot - s), n))].mean(axis=1)
                           for s in range(0, n_boot, step)])


def paired_bootstrap(a, b, n_boot: int = 2000, seed: int = 0, confidence: float = 0.95) -> dict:
    """Paired bootstrap of the mean difference ``mean(b - a)`` for real-valued outcomes of shape (n,).

    Pairs (a_i, b_i) are resampled together, keeping each item's pairing, ``n_boot`` times giving
    bootstrap means m*_k of d = b - a. The CI is the percentile interval of m*. The p-value tests
    mean(d) = 0 by the centred ("shift") bootstrap: m*_k - mean(d) approximates the null
    distribution of the mean difference, and p = (1 + #{|m*_k - mean(d)| >= |mean(d)|}) / (1 + n_boot)
    (two-sided; identical inputs give p = 1).

    Returns
    -------
    dict with ``delta`` (mean(b) - mean(a)), ``ci`` ([lo, hi]), ``p``, ``n`` and ``n_boot``.
    """
    a, b = _paired(a, b)
    d = b - a
    delta = float(d.mean())
    ci, p = _interval_and_shift_p(_bootstrap_means(d, n_boot, seed), delta, confidence)
    return {"delta": delta, "ci": ci, "p": p, "n": len(d), "n_boot": int(n_boot)}


def _interval_and_shift_p(draws: np.ndarray, delta: float, confidence: float) -> tuple[list[float], float]:
    """Percentile interval of bootstrap ``draws`` (k,) of a difference, and the two-sided p of
    ``delta`` = 0 by the centred ("shift") bootstrap: (1 + #{|draw - delta| >= |delta|}) / (1 + k)."""
    tail = (1.0 - confidence) / 2.0
    lo, hi = np.quantile(draws, [tail, 1.0 - tail])
    extreme = int((np.abs(draws - delta) >= abs(delta) - _TIE).sum())
    return [float(lo), float(hi)], (1.0 + extreme) / (1.0 + len(draws))


def _resampled(n: int, statistic, n_boot: int, seed: int) -> np.ndarray:
    """``statistic(idx)`` for ``n_boot`` index arrays drawn from range(n) with replacement. Shape (n_boot,)."""
    rng = np.random.default_rng(seed)
    return np.array([statistic(rng.integers(0, n, n)) for _ in range(n_boot)], dtype=float)


def bootstrap_aggregate(items: list, aggregate, n_boot: int = 1000, seed: int = 0) -> np.ndarray:
    """``aggregate`` (a function of a list of per-document items, e.g. lm-eval's f1 over
    (gold, prediction) pairs) on ``n_boot`` resamples of ``items`` with replacement. Shape (n_boot,)."""
    return _resampled(len(items), lambda idx: aggregate([items[i] for i in idx]), n_boot, seed)


def paired_bootstrap_aggregate(items_a: list, items_b: list, aggregate, n_boot: int = 2000, seed: int = 0,
                               confidence: float = 0.95) -> dict:
    """Paired bootstrap of ``aggregate(items_b) - aggregate(items_a)`` for a metric that is not a
    mean of per-document scores (F1, MCC): the same documents are resampled for both systems.

    CI: percentile interval of the resampled differences; p: the centred ("shift") bootstrap as in
    :func:`paired_bootstrap`. Resamples where the aggregate is undefined (NaN) are left out.

    Returns
    -------
    dict with ``method`` ("paired_bootstrap_aggregate"), ``delta``, ``ci``, ``p``, ``n`` and ``n_boot``.
    """
    if len(items_a) != len(items_b):
        raise ValueError(f"paired items need equal lengths, got {len(items_a)} and {len(items_b)}")
    if not items_a:
        raise ValueError("paired items are empty")
    n = len(items_a)
    out = {"method": "paired_bootstrap_aggregate", "delta": float(aggregate(items_b) - aggregate(items_a)),
           "ci": [None, None], "p": None, "n": n, "n_boot": int(n_boot)}
    diffs = _resampled(n, lambda idx: aggregate([items_b[i] for i in idx]) - aggregate([items_a[i] for i in idx]),
                       n_boot, seed)
    diffs = diffs[np.isfinite(diffs)]
    if len(diffs) and math.isfinite(out["delta"]):
        out["ci"], out["p"] = _interval_and_shift_p(diffs, out["delta"], confidence)
    return out


def paired_test(a, b, n_boot: int = 2000, seed: int = 0, confidence: float = 0.95) -> dict:
    """Compare two systems scored on the same items: ``a`` and ``b`` of shape (n,), b minus a.

    Exact McNemar when every value is 0 or 1 (accuracy-style scores), with a paired-bootstrap CI on
    the difference in accuracy; otherwise :func:`paired_bootstrap` for both p and CI.

    Returns
    -------
    dict with ``method`` ("mcnemar" or "paired_bootstrap"), ``delta`` (mean(b) - mean(a)), ``p``,
    ``ci`` ([lo, hi]) and ``n``; McNemar adds ``n01`` and ``n10``.
    """
    a, b = _paired(a, b)
    boot = paired_bootstrap(a, b, n_boot=n_boot, seed=seed, confidence=confidence)
    out = {"method": "paired_bootstrap", "delta": boot["delta"], "p": boot["p"], "ci": boot["ci"],
           "n": boot["n"]}
    if np.isin(a, (0, 1)).all() and np.isin(b, (0, 1)).all():
        out.update(method="mcnemar", **mcnemar_exact(a, b))
    return out


def seeds_documents_test(base, adapters, confidence: float = 0.95) -> dict:
    """Test a source's mean effect over training seeds AND documents: ``base`` (n,) and
    ``adapters`` (R, n), R >= 2 replicates of one source (the same source, differing only by
    training seed) scored on the same n documents as the base.

    Model. The paired per-document differences d_sj = adapter_sj - base_j follow a crossed
    random-effects model d_sj = mu + u_s + v_j + w_sj: u the seed effect (var su2), v the document
    effect (var sv2), w their interaction and the per-document noise (var sw2). The statistic is
    D = mean over s and j of d_sj = mean over seeds of d_s (d_s = mean_docs(adapter_s - base)), and
    Var(D) = su2/R + sv2/n + sw2/(R n). With the mean squares of the two-way layout,
    MS_seed = n * var(d_s) (expectation n su2 + sw2), MS_doc = R * var(mean_s d_sj) (R sv2 + sw2) and
    MS_res the interaction mean square (sw2), the unbiased estimate is
    (MS_seed + MS_doc - MS_res) / (R n): the seed part MS_seed / (R n) = var(d_s) / R already holds
    the noise term sw2/(R n), so adding the document variance of the seed-averaged difference as
    it stands would count that term twice. The document part (MS_doc - MS_res) / (R n) estimates
    sv2/n and is clamped at 0 (a variance), so the SE is never below the seeds-as-unit SE.

    Reference: t with R - 1 degrees of freedom, the df of the seed mean square. Satterthwaite's
    df for this combination was tried and rejected: on simulated nulls with R = 3 its false-positive
    rate at 0.05 was 0.058 to 0.088 (it is liberal when one component has 2 df), whereas R - 1 holds
    the level (tests/unit/analysis/test_seed_null.py); the price is power when the document part
    dominates.

    Assumes: the seeds are exchangeable draws from the training distribution (adapter
    initialisation and batch order), the documents a sample of the task's documents, and every
    model paired by document (the same documents for the base and every seed). It answers "does
    this source, trained afresh, change the score on this task", not "did these adapters change it
    on these documents" (the document-only McNemar's question).

    Returns
    -------
    dict with ``method`` ("seeds+documents_t"), ``delta`` (D), ``ci`` ([lo, hi], t interval),
    ``p`` (two-sided), ``n`` (documents), ``n_seeds``, ``df``, ``se``, ``se_seeds`` and
    ``se_documents`` (the two parts: se**2 = se_seeds**2 + se_documents**2).
    """
    b = np.asarray(base, dtype=float).ravel()
    y = np.atleast_2d(np.asarray(adapters, dtype=float))
    if y.shape[1] != len(b):
        raise ValueError(f"paired outcomes need equal lengths, got base {len(b)} and adapters {y.shape[1]}")
    R, n = y.shape
    if R < 2 or n < 2:
        raise ValueError(f"the seeds+documents test needs at least 2 seeds and 2 documents, got {R} and {n}")
    if not (np.isfinite(b).all() and np.isfinite(y).all()):
        raise ValueError("paired outcomes must be finite")
    d = y - b[None, :]
    delta = float(d.mean())
    by_seed, by_doc = d.mean(axis=1), d.mean(axis=0)
    ms_seed = n * by_seed.var(ddof=1)
    ms_doc = R * by_doc.var(ddof=1)
    residual = d - by_seed[:, None] - by_doc[None, :] + delta
    ms_res = float((residual ** 2).sum()) / ((R - 1) * (n - 1))
    var_seeds = ms_seed / (R * n)
    var_docs = max(ms_doc - ms_res, 0.0) / (R * n)
    se = math.sqrt(var_seeds + var_docs)
    df = R - 1
    out = {"method": "seeds+documents_t", "delta": delta, "n": n, "n_seeds": R, "df": float(df), "se": se,
           "se_seeds": math.sqrt(var_seeds), "se_documents": math.sqrt(var_docs)}
    if se == 0:  # every seed moved every document alike (or nothing moved): no noise to test against
        return {**out, "ci": [delta, delta], "p": 1.0 if delta == 0 else 0.0}
    half = float(_st.t.ppf(0.5 + confidence / 2, df)) * se
    return {**out, "ci": [delta - half, delta + half], "p": float(2 * _st.t.sf(abs(delta) / se, df))}


def seeds_documents_aggregate(items_base: list, items: list[list], aggregate, n_boot: int = 500, seed: int = 0,
                              confidence: float = 0.95) -> dict:
    """The seeds+documents test of a metric that is not a mean of per-document scores (F1, MCC):
    ``items`` holds R >= 2 replicates' per-document items, on the same documents as ``items_base``.

    D = mean over seeds of aggregate(items_s) - aggregate(items_base). Its variance: the seed
    part var(D_s) / R plus the paired bootstrap variance (documents resampled, the same for every
    model) of the seed-averaged difference. The bootstrap part holds the per-document noise that the
    seed part also holds, so this SE is conservative (it counts that term twice; no interaction
    mean square exists for an aggregate). t reference with R - 1 df. Assumptions as
    :func:`seeds_documents_test`.
    """
    R, n = len(items), len(items_base)
    if R < 2 or any(len(x) != n for x in items):
        raise ValueError(f"needs at least 2 replicates, each with {n} items as the base")
    by_seed = np.array([aggregate(x) - aggregate(items_base) for x in items], dtype=float)
    delta = float(by_seed.mean())
    out = {"method": "seeds+documents_aggregate", "delta": delta, "n": n, "n_seeds": R, "df": float(R - 1),
           "ci": [None, None], "p": None}
    draws = _resampled(n, lambda idx: np.mean([aggregate([x[i] for i in idx]) for x in items])
                       - aggregate([items_base[i] for i in idx]), n_boot, seed)
    draws = draws[np.isfinite(draws)]
    if not (math.isfinite(delta) and np.isfinite(by_seed).all() and len(draws) > 1):
        return out
    se = math.sqrt(by_seed.var(ddof=1) / R + draws.var(ddof=1))
    out["se"] = se
    if se == 0:
        return {**out, "ci": [delta, delta], "p": 1.0 if delta == 0 else 0.0}
    half = float(_st.t.ppf(0.5 + confidence / 2, R - 1)) * se
    return {**out, "ci": [delta - half, delta + half], "p": float(2 * _st.t.sf(abs(delta) / se, R - 1))}
