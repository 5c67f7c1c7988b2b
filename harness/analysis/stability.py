"""Are the components real? Refit on perturbed data and see whether the same loadings come back.

Two perturbations: a bootstrap over evaluation samples (the matrix as it might have come out on
other test documents) and leave-one-source-out (the matrix without each source). Each refit is
matched to the full-data solution - components are only defined up to order and sign - and
compared with Tucker's congruence coefficient, the cosine between loading vectors. Lorenzo-Seva
and ten Berge (2006): 0.85-0.94 is fair similarity, 0.95 and above means equal.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy.optimize import linear_sum_assignment

from harness.analysis.applicability import MIN_SOURCES, require

FAIR, EQUAL = 0.85, 0.95


def congruence(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """Tucker's congruence between rows: ndarray (k_a, k_b) for A (k_a, p) and B (k_b, p)."""
    A, B = np.atleast_2d(A), np.atleast_2d(B)
    norms = np.linalg.norm(A, axis=1)[:, None] * np.linalg.norm(B, axis=1)[None, :]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(norms > 0, A @ B.T / np.where(norms > 0, norms, 1.0), 0.0)


def align(reference: np.ndarray, candidate: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Match ``candidate`` components to ``reference`` ones (order by the assignment maximising total
    |congruence|, then sign).

    Returns
    -------
    aligned : ndarray (k_ref, p), NaN rows where the candidate has fewer components
    phi : ndarray (k_ref,), the congruence of each matched pair (NaN where unmatched)
    """
    C = congruence(reference, candidate)
    rows, cols = linear_sum_assignment(-np.abs(C))
    aligned = np.full(reference.shape, np.nan)
    phi = np.full(len(reference), np.nan)
    for r, c in zip(rows, cols):
        sign = 1.0 if C[r, c] >= 0 else -1.0
        aligned[r] = sign * candidate[c]
        phi[r] = abs(C[r, c])
    return aligned, phi


def bootstrap(fit: Callable[[np.ndarray, int], np.ndarray], draw: Callable[[np.random.Generator], np.ndarray],
              reference: np.ndarray, targets: list[str], ids: list[str], n_boot: int, seed: int = 0,
              confidence: float = 0.95) -> dict:
    """Refit on ``n_boot`` matrices from ``draw(rng)`` (resampled evaluation documents).

    ``fit(X, k)`` returns loadings (k, n_targets). Reports per component the median and 5th
    percentile congruence with ``reference`` and the share of refits at least fair/equal, and
    percentile intervals of every aligned loading.
    """
    rng = np.random.default_rng(seed)
    k = len(reference)
    loadings, phis, failed = [], [], 0
    for _ in range(n_boot):
        try:
            aligned, phi = align(reference, fit(draw(rng), k))
        except (ValueError, np.linalg.LinAlgError):
            failed += 1  # e.g. a resample where some target has no variance left
            continue
        loadings.append(aligned)
        phis.append(phi)
    if not phis:
        return {"n": 0, "n_failed": failed}
    loadings, phis = np.array(loadings), np.array(phis)
    tail = (1 - confidence) / 2
    lo, hi = np.nanquantile(loadings, tail, axis=0), np.nanquantile(loadings, 1 - tail, axis=0)
    return {
        "n": len(phis), "n_failed": failed, "confidence": confidence,
        "congruence": {c: {"median": float(np.median(phis[:, i])), "p05": float(np.quantile(phis[:, i], 0.05)),
                           "share_fair": float(np.mean(phis[:, i] >= FAIR)),
                           "share_equal": float(np.mean(phis[:, i] >= EQUAL))} for i, c in enumerate(ids)},
        "loadings_ci": {c: {t: [float(lo[i, j]), float(hi[i, j])] for j, t in enumerate(targets)}
                        for i, c in enumerate(ids)},
    }


def leave_one_source_out(fit: Callable[[np.ndarray, int], np.ndarray], X: np.ndarray, sources: list[str],
                         reference: np.ndarray, ids: list[str], max_k: Callable[[int, int], int]) -> dict:
    """Refit without each source in turn; ``max_k(n, p)`` caps the components a smaller matrix allows.

    A component the smaller matrix cannot carry (fewer sources, fewer dimensions) counts as not
    recovered (``None``), which is the honest reading: it rests on the source that was left out.
    Needs MIN_SOURCES (3) sources (NotApplicable otherwise): two left after one is removed, the fewest a fit takes.
    """
    require(len(sources), MIN_SOURCES, "sources", "refitting without each source")
    per = {c: {} for c in ids}
    for i, source in enumerate(sources):
        rest = np.delete(X, i, axis=0)
        k = min(len(reference), max_k(*rest.shape))
        phi = np.full(len(reference), np.nan)
        if k >= 1:
            try:
                _, phi = align(reference, fit(rest, k))
            except (ValueError, np.linalg.LinAlgError):
                pass
        for c, value in zip(ids, phi):
            per[c][source] = None if np.isnan(value) else float(value)
    # A component lost without some source counts as 0 in the minimum, and that source is named.
    minimum = {c: min((v if v is not None else 0.0) for v in per[c].values()) if per[c] else None for c in ids}
    lost = {c: [s for s, v in per[c].items() if v is None] for c in ids}
    return {"congruence": per, "min": minimum, "not_recovered_without": lost}


def verdict(boot: dict | None, loso: dict | None, cid: str) -> str:
    """"stable" when 95% of bootstrap refits are at least fairly congruent and no single source's
    removal breaks the component; "unstable" otherwise; "untested" when neither check could run."""
    checks = []
    if boot and boot.get("n"):
        checks.append(boot["congruence"][cid]["p05"] >= FAIR)
    if loso and loso["min"].get(cid) is not None:
        checks.append(loso["min"][cid] >= FAIR)
    if not checks:
        return "untested"
    return "stable" if all(checks) else "unstable"
