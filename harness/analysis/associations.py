"""Which source traits go with which latent components or targets, and does similarity predict transfer.

Inputs are the nested dicts results carry (``{source: {name: value or None}}``) and outputs are
JSON-friendly dicts (plain floats, NaN written as None). All p-values come from permutations
(:mod:`harness.analysis.stats`), because the number of sources is small and the values far from normal.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import stats as _st

from harness.analysis import stats
from harness.analysis.applicability import MIN_SOURCES, NotApplicable, require
from harness.analysis.stats import as_float, plain

_BATCH = 256  # bootstrap draws or shuffles ranked per call, to bound memory




def correlate_traits(traits: dict, columns: dict, *, kind: str, max_permutations: int = 10000,
                     seed: int = 0) -> dict:
    """Correlate every source trait with every column (component score or target transfer).

    Parameters
    ----------
    traits : dict
        ``{source: {trait_name: float or None}}``.
    columns : dict
        ``{source: {column_name: float or None}}``: component scores (``kind="component"``) or one
        target's transfer per source (``kind="target"``).
    kind : {"component", "target"}
        Names the column key of each test.
    max_permutations, seed :
        As :func:`harness.analysis.stats.permutation_test`; the same orderings serve Spearman and Pearson.

    Returns
    -------
    dict
        ``tests``: one per (trait, column) with ``trait``, ``<kind>``, ``n`` (sources with both
        values), ``spearman``, ``pearson``, ``p`` (Spearman permutation p), ``pearson_p``, ``q``
        (Benjamini-Hochberg over every Spearman p of this call) and ``exact``; sorted by p then trait.
        ``skipped``: traits left out, with the reason (fewer than 3 values, or constant), and single
        (trait, column) pairs that could not be tested (with ``<kind>`` too).
        ``min_p``: the smallest p any test here could reach (from the largest n); with few sources it
        is large, and no trait can be significant whatever the data. ``method``: the test in words.

    Raises
    ------
    NotApplicable
        When there are no traits, or fewer than ``MIN_SOURCES`` sources have both traits and columns.
    """
    if kind not in ("component", "target"):
        raise ValueError(f"kind must be 'component' or 'target', got {kind!r}")
    sources = [s for s in traits if s in columns]
    names = sorted({c for s in sources for c in columns[s]})
    if not any(traits[s] for s in sources):
        raise NotApplicable("no source traits to test")
    if not names:
        raise NotApplicable(f"no {kind} values to test the traits against")
    require(len(sources), MIN_SOURCES, "sources", f"correlating traits with {kind}s")
    C = np.array([[as_float(columns[s].get(c)) for c in names] for s in sources])
    C = C.reshape(len(sources), len(names))  # (n_sources, n_columns), NaN where missing
    tests, skipped, kept = [], [], []
    for trait in sorted({t for s in sources for t in traits[s]}):
        x = np.array([as_float(traits[s].get(trait)) for s in sources])
        seen = x[~np.isnan(x)]
        if len(seen) < 3:
            reason = f"{len(seen)} source(s) with a value, needs at least 3"
            skipped.append({"trait": trait, "reason": reason})
        elif np.ptp(seen) == 0:
            skipped.append({"trait": trait, "reason": "constant across sources"})
        else:
            kept.append((trait, x))
    X = np.array([x for _, x in kept]).T.reshape(len(sources), len(kept))  # (n_sources, n_traits)
    min_ps = []
    # Shuffling the column against the traits has the same null distribution as shuffling each
    # trait against the column, and there are usually fewer columns than traits: one vectorised
    # test per column, over the traits that share its sources (they differ only where values are
    # missing).
    for j, col in enumerate(names):
        masks = ~np.isnan(X) & ~np.isnan(C[:, j])[:, None]  # (n_sources, n_traits)
        for mask in np.unique(masks, axis=1).T:
            group = np.flatnonzero((masks == mask[:, None]).all(axis=0))
            c, Xs = C[mask, j], X[mask][:, group]
            rho = stats.permutation_test(c, Xs, "spearman", max_permutations, seed)
            r = stats.permutation_test(c, Xs, "pearson", max_permutations, seed)
            for i, k in enumerate(group):
                if np.isnan(rho.r[i]):
                    n = int(mask.sum())
                    reason = (f"{n} source(s) with both values, needs at least 3" if n < 3
                              else f"trait or {kind} constant over the {n} sources with both values")
                    skipped.append({"trait": kept[k][0], kind: col, "reason": reason})
                    continue
                min_ps.append(rho.min_p)
                tests.append({"trait": kept[k][0], kind: col, "n": int(mask.sum()),
                              "spearman": rho.r[i], "pearson": r.r[i], "p": rho.p[i],
                              "pearson_p": r.p[i], "exact": rho.exact})
    q = stats.bh_qvalues([t["p"] for t in tests])
    for t, qi in zip(tests, q):
        t["q"] = qi
        for key in ("spearman", "pearson", "p", "pearson_p", "q"):
            t[key] = plain(t[key])
    tests.sort(key=lambda t: (t["p"], t["trait"], t[kind]))
    return {
        "tests": tests,
        "skipped": skipped,
        "min_p": min(min_ps) if min_ps else None,
        "method": ("Spearman (and Pearson) correlation over sources with both values; two-sided "
                   f"permutation p: exact over all n! orderings when n! <= {max_permutations}, else "
                   f"{max_permutations} random orderings with p = (1 + k)/(1 + {max_permutations}); "
                   "q: Benjamini-Hochberg over all Spearman p-values of this table"),
    }


def _spearman_rows(S: np.ndarray, T: np.ndarray) -> np.ndarray:
    """Spearman r of each row of ``S`` with the same row of ``T`` (both (B, N)), over the positions
    where neither is NaN. Shape (B,); NaN where fewer than 3 positions remain or a side is constant.
    One call ranks every bootstrap draw or shuffle of a batch, since each may keep different pairs."""
    ok = ~np.isnan(S) & ~np.isnan(T)
    n = ok.sum(axis=1, keepdims=True)
    rs = np.nan_to_num(_st.rankdata(np.where(ok, S, np.nan), axis=1, nan_policy="omit"))
    rt = np.nan_to_num(_st.rankdata(np.where(ok, T, np.nan), axis=1, nan_policy="omit"))
    with np.errstate(invalid="ignore", divide="ignore"):
        rs = np.where(ok, rs - rs.sum(axis=1, keepdims=True) / n, 0.0)
        rt = np.where(ok, rt - rt.sum(axis=1, keepdims=True) / n, 0.0)
        r = (rs * rt).sum(axis=1) / np.sqrt((rs**2).sum(axis=1) * (rt**2).sum(axis=1))
    # Ranks are exact multiples of 1/2, so a constant side gives a denominator of exactly 0 (NaN).
    return np.where(n[:, 0] >= 3, np.clip(r, -1.0, 1.0), np.nan)


def similarity_versus_transfer(similarity: dict, transfer: dict, *, exclude_same: bool = False,
                               n_boot: int = 2000, n_permutations: int = 5000, seed: int = 0,
                               confidence: float = 0.95) -> dict:
    """Does surface similarity of source to target predict transfer? Rank correlation over pairs.

    Parameters
    ----------
    similarity, transfer : dict
        ``{source: {target: float or None}}``; pairs missing or None in either are left out.
    exclude_same : bool
        Drop in-domain pairs (source name == target name), which are trivially both very similar
        and well transferred and would otherwise carry the correlation on their own.
    n_boot : int
        Cluster-bootstrap draws for the CI of Spearman r.
    n_permutations : int
        Random permutations for p.
    seed : int
    confidence : float

    Returns
    -------
    dict with ``n_pairs``, ``n_sources``, ``spearman``, ``pearson``, ``ci`` ([lo, hi] of Spearman r),
    ``p`` (two-sided), ``exclude_same`` and ``method``. CI and p are None with fewer than 3 sources.

    Notes
    -----
    Pairs that share a source are not independent (a source that transfers well, or is similar to
    everything, moves all its pairs together), so the effective sample size is nearer the number of
    sources than the number of pairs. Both the CI and the p-value therefore treat the source as the
    unit: the CI resamples whole sources with replacement (percentile interval; draws where r is
    undefined are dropped), and p comes from shuffling which source's transfer row sits against
    which similarity row. The shuffle is the same in every target column, so each target keeps its
    own transfer values (its scale), the link to similarity is broken, and each source's pairs still
    move together; shuffling every column independently would treat pairs as independent and give
    far too small p-values when sources differ in overall transfer. p = (1 + k)/(1 + n_permutations)
    with k the shuffles reaching |r| >= |r_obs|.

    With ``exclude_same`` the in-domain cells are removed from both matrices before anything is
    resampled, so every shuffle, like the observed r, pairs cross-domain similarity with
    cross-domain transfer only. A shuffle that puts source k's row against source i's similarity
    drops two of that row's pairs (target i, whose similarity is in-domain, and target k, whose
    transfer is), one more than the observed pairing drops; masking the similarity side alone let
    k's large in-domain transfer into the shuffles, which narrowed their spread and made p too small
    (a 15% false-positive rate at alpha 0.05 for 8 sources with independent per-source offsets; with
    both masked it is at or below 5%: ``tests/unit/analysis/test_associations.py``). A relabelling of rows and
    columns together (a Mantel test) would keep the excluded cells fixed, but it needs the sources
    and targets to be the same tasks and would move each target's transfer values to another
    target, which the row shuffle is designed not to do.
    """
    sources = sorted(s for s in similarity if s in transfer)
    targets = sorted({t for s in sources for t in similarity[s]} & {t for s in sources for t in transfer[s]})
    shape = (len(sources), len(targets))
    S = np.array([[as_float(similarity[s].get(t)) for t in targets] for s in sources]).reshape(shape)
    T = np.array([[as_float(transfer[s].get(t)) for t in targets] for s in sources]).reshape(shape)
    keep = np.ones(S.shape, bool)
    if exclude_same:
        keep &= np.array(sources, dtype=object)[:, None] != np.array(targets, dtype=object)[None, :]
    # A dropped pair is a missing one from here on, in both matrices: an in-domain transfer value
    # moves with its source's row in a shuffle or a bootstrap draw and must stay out there too.
    S, T = np.where(keep, S, np.nan), np.where(keep, T, np.nan)
    ok = ~np.isnan(S) & ~np.isnan(T)
    rows = np.flatnonzero(ok.any(axis=1))  # sources with at least one pair: the clusters
    rho = float(_spearman_rows(S.reshape(1, -1), T.reshape(1, -1))[0])
    r = stats.pearson(S[ok], T[ok]) if ok.sum() >= 3 else math.nan

    rng = np.random.default_rng(seed)
    ci, p = [None, None], math.nan
    if not math.isnan(rho) and len(rows) >= 3:  # fewer clusters leave nothing to resample or shuffle
        boot = []
        for start in range(0, n_boot, _BATCH):
            idx = rng.choice(rows, (min(_BATCH, n_boot - start), len(rows)))  # (B, n_sources)
            boot.append(_spearman_rows(S[idx].reshape(len(idx), -1), T[idx].reshape(len(idx), -1)))
        boot = np.concatenate(boot)
        boot = boot[~np.isnan(boot)]  # draws with too few distinct sources to define r
        tail = (1.0 - confidence) / 2.0
        ci = [float(v) for v in np.quantile(boot, [tail, 1.0 - tail])]
        count = 0
        for start in range(0, n_permutations, _BATCH):
            size = min(_BATCH, n_permutations - start)
            shuffled = np.broadcast_to(T, (size,) + T.shape).copy()  # (B, n_sources, n_targets)
            shuffled[:, rows] = T[rng.permuted(np.broadcast_to(rows, (size, len(rows))), axis=1)]
            perm = _spearman_rows(np.broadcast_to(S.ravel(), (size, S.size)), shuffled.reshape(size, -1))
            # An undefined shuffled r (too few pairs left, or constant) is not as extreme as r_obs.
            count += int((np.abs(np.nan_to_num(perm)) >= abs(rho) - 1e-12).sum())
        p = (1.0 + count) / (1.0 + n_permutations)
    return {
        "n_pairs": int(ok.sum()),
        "n_sources": len(rows),
        "spearman": plain(rho),
        "pearson": plain(r),
        "ci": ci,
        "p": plain(p),
        "exclude_same": bool(exclude_same),
        "method": (f"Spearman r over (source, target) pairs{', in-domain ones excluded' if exclude_same else ''}; "
                   f"{confidence:.0%} CI from a cluster bootstrap over sources ({n_boot} draws); two-sided p "
                   f"from {n_permutations} shuffles of sources' transfer rows against similarity rows "
                   "(same shuffle in every target column"
                   f"{'; in-domain transfer left out of every shuffle too' if exclude_same else ''})"),
    }
