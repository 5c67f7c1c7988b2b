"""Predicting transfer from traits: one ridge regression per target, judged by leaving a source out.

The transfer of source ``s`` to target ``t`` is predicted from the features of the pair: every
source trait of ``s`` (named ``source:<trait>``) and every pair trait of ``(s, t)`` (named
``pair:<trait>``). Each target gets its own ridge, fitted on the sources whose transfer to it was
measured. Inputs are the harness's result dicts, ``None`` meaning "missing":

* ``source_traits[source][trait]``;
* ``pair_traits[trait][source][target]``;
* ``transfer[source][target]`` (adapter score minus base score).

Within a fit, features are standardised with the training rows' statistics only, so a held-out
source never moves the scale it is judged on. A missing value is imputed with the training mean
(before standardising, as in a scikit-learn ``SimpleImputer`` + ``StandardScaler`` pipeline), i.e. it
contributes nothing to the prediction; a feature that is constant or missing throughout the training
rows is dropped from that fit, since it carries nothing to learn from.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.stats import spearmanr

from harness.applicability import NotApplicable

Z90 = 1.645  # two-sided 90% normal quantile
MIN_SOURCES = 3  # fewer leaves two training rows per fold and at most a two-point Spearman


def ridge(Z: np.ndarray, y: np.ndarray, alpha: float) -> tuple[float, np.ndarray]:
    """Ridge regression with an unpenalised intercept, in closed form.

    Minimises ``||y - b0 - Z b||² + alpha ||b||²``. With ``Zc`` the column-centred ``Z``,
    ``b = (Zcᵀ Zc + alpha I)⁻¹ Zcᵀ (y - ȳ)`` and ``b0 = ȳ - mean(Z) b``. It is computed through the
    SVD ``Zc = U S Vᵀ`` as ``b = V diag(s / (s² + alpha)) Uᵀ (y - ȳ)``: the same thing, but still
    defined for ``alpha = 0`` with fewer rows than features (it is then minimum-norm least squares),
    which is the usual case here (a dozen sources, more traits).

    Parameters
    ----------
    Z : ndarray (n, p), the (standardised) features, no NaN.
    y : ndarray (n,), the responses.
    alpha : float >= 0, the penalty.

    Returns
    -------
    b0 : float, the intercept.
    b : ndarray (p,), the coefficients.
    """
    if alpha < 0:
        raise ValueError(f"alpha must be >= 0, got {alpha}")
    centre, y0 = Z.mean(axis=0), y.mean()
    U, s, Vt = np.linalg.svd(Z - centre, full_matrices=False)
    keep = s > 1e-12 * s.max(initial=0.0)  # directions of zero spread carry no information
    b = Vt[keep].T @ (s[keep] / (s[keep] ** 2 + alpha) * (U[:, keep].T @ (y - y0)))
    return float(y0 - centre @ b), b


def fit_predict(X_train: np.ndarray, y_train: np.ndarray, X_test: np.ndarray,
                alpha: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Impute and standardise with the training rows' statistics, fit :func:`ridge`, predict.

    Parameters
    ----------
    X_train : ndarray (n, p), NaN where a value is missing.
    y_train : ndarray (n,), no NaN.
    X_test : ndarray (m, p), NaN where a value is missing.
    alpha : float >= 0.

    Returns
    -------
    pred : ndarray (m,), the predictions.
    kept : ndarray (p,) of bool, the features used (not constant nor all missing in training).
    """
    observed = ~np.isnan(X_train)
    count = observed.sum(axis=0)
    mean = np.where(observed, X_train, 0.0).sum(axis=0) / np.maximum(count, 1)
    X_train = np.where(observed, X_train, mean)
    std = X_train.std(axis=0)  # ddof=0, as scikit-learn's StandardScaler
    # Relative tolerance: a constant 0.1 column has a std of ~1e-17, not 0.
    kept = (count > 0) & (std > 1e-12 * np.maximum(1.0, np.abs(mean)))
    mean, std = mean[kept], std[kept]
    X_test = np.where(np.isnan(X_test[:, kept]), mean, X_test[:, kept])
    b0, b = ridge((X_train[:, kept] - mean) / std, y_train, alpha)
    return b0 + (X_test - mean) / std @ b, kept


def _num(value) -> float:
    return math.nan if value is None else float(value)


def _out(value: float) -> float | None:
    """JSON-friendly: NaN becomes ``None``."""
    return None if value is None or math.isnan(value) else float(value)


def _feature_names(traits: dict[str, dict], pair_traits: dict) -> list[str]:
    names = dict.fromkeys(f"source:{k}" for row in traits.values() for k in row)
    return list(names) + [f"pair:{k}" for k in pair_traits]


def _design(traits: dict[str, dict], pairs: dict[str, dict], rows: list[str], names: list[str]) -> np.ndarray:
    """Feature matrix (len(rows), len(names)) of the named rows for one target; NaN where missing.
    ``traits[row][trait]`` and ``pairs[trait][row]`` (the pair traits' values for this target)."""
    values = [{**{f"source:{k}": v for k, v in traits.get(r, {}).items()},
               **{f"pair:{k}": by_row.get(r) for k, by_row in pairs.items()}} for r in rows]
    return np.array([[_num(v.get(n)) for n in names] for v in values], dtype=float).reshape(len(rows), len(names))


def _for_target(pair_traits: dict, target: str) -> dict[str, dict[str, float | None]]:
    return {k: {s: by_target.get(target) for s, by_target in by_source.items()} for k, by_source in pair_traits.items()}


def _spearman(predicted: dict, actual: dict) -> float | None:
    """Spearman over the targets both rows have; ``None`` when undefined (< 3 such targets or a
    constant row)."""
    keys = [k for k, v in predicted.items() if v is not None and actual.get(k) is not None]
    x, y = np.array([predicted[k] for k in keys]), np.array([actual[k] for k in keys])
    if len(keys) < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return None
    return _out(spearmanr(x, y).statistic)


def _need(n: int, where: str = "") -> None:
    if n < MIN_SOURCES:
        raise NotApplicable(f"predicting transfer needs at least {MIN_SOURCES} fine-tuned sources{where}, got {n}")


def _mean(values) -> float | None:
    values = [v for v in values if v is not None]
    return float(np.mean(values)) if values else None


def leave_one_source_out(source_traits: dict, pair_traits: dict, transfer: dict, alpha: float = 1.0) -> dict:
    """How well traits predict transfer: hold out each source in turn and predict its transfer row.

    For each held-out source and each target, a ridge is fitted on the other sources measured on
    that target (features standardised on those sources only) and predicts the held-out cell.

    Returns
    -------
    dict, JSON-friendly:

    * ``per_source[s]``: ``predicted`` and ``actual`` rows (target -> value or ``None``),
      ``spearman`` between them over the targets (``None`` when undefined: fewer than 3 targets or a
      constant row), and ``baseline_spearman``, the same for the training sources' mean row;
    * ``score`` / ``baseline_score``: the mean of those Spearmans over the held-out sources (the
      baseline shows whether traits add anything beyond "targets differ in how much they gain");
    * ``rmse[t]``: root mean squared error of the held-out predictions on target ``t``;
    * ``features``: the features some fit used; ``alpha``, ``n_sources``, ``method``.
    """
    sources = list(transfer)
    _need(len(sources))
    targets = list(dict.fromkeys(t for row in transfer.values() for t in row))
    names = _feature_names({s: source_traits.get(s, {}) for s in sources}, pair_traits)
    used = np.zeros(len(names), bool)
    predicted = {s: {} for s in sources}
    baseline = {s: {} for s in sources}
    for t in targets:
        X = _design(source_traits, _for_target(pair_traits, t), sources, names)
        y = np.array([_num(transfer[s].get(t)) for s in sources])
        for i, s in enumerate(sources):
            train = np.flatnonzero(~np.isnan(y) & (np.arange(len(sources)) != i))
            if len(train) == 0:
                predicted[s][t] = baseline[s][t] = None
                continue
            pred, kept = fit_predict(X[train], y[train], X[i:i + 1], alpha)
            predicted[s][t], baseline[s][t] = float(pred[0]), float(y[train].mean())
            used |= kept
    per_source = {}
    for s in sources:
        actual = {t: _out(_num(transfer[s].get(t))) for t in targets}
        per_source[s] = {"spearman": _spearman(predicted[s], actual),
                         "baseline_spearman": _spearman(baseline[s], actual),
                         "predicted": predicted[s], "actual": actual}
    rmse = {}
    for t in targets:
        errors = [predicted[s][t] - per_source[s]["actual"][t] for s in sources
                  if predicted[s][t] is not None and per_source[s]["actual"][t] is not None]
        rmse[t] = float(np.sqrt(np.mean(np.square(errors)))) if errors else None
    return {
        "alpha": alpha, "n_sources": len(sources),
        "features": [n for n, u in zip(names, used) if u],
        "per_source": per_source,
        "score": _mean(p["spearman"] for p in per_source.values()),
        "baseline_score": _mean(p["baseline_spearman"] for p in per_source.values()),
        "rmse": rmse,
        "method": (f"Per target, ridge regression (alpha={alpha}) of transfer on the source's traits and the "
                   "(source, target) pair traits, standardised and mean-imputed with the training sources' "
                   "statistics; each source held out in turn. score: mean over held-out sources of the Spearman "
                   "between predicted and actual transfer rows; baseline_score: the same for the training "
                   "sources' mean row."),
    }


def recommend(source_traits: dict, pair_traits: dict, transfer: dict, target: str,
              candidates: dict[str, dict[str, float | None]],
              candidate_pairs: dict[str, dict[str, float | None]],
              alpha: float = 1.0, n_boot: int = 200, seed: int = 0) -> list[dict]:
    """Rank fine-tuned sources and not-yet-fine-tuned candidates by expected transfer to ``target``.

    Parameters
    ----------
    source_traits, pair_traits, transfer : the fine-tuned sources' data (see the module docstring).
    target : str, the target to rank for.
    candidates : ``{name: {trait: value}}``, source traits of datasets not fine-tuned.
    candidate_pairs : ``{pair_trait: {name: value}}``, the candidates' pair traits with ``target``.
    alpha : float >= 0, the ridge penalty.
    n_boot : int, bootstrap resamples of the training sources (below 2: no bootstrap term).
    seed : int, seeds the bootstrap.

    Returns
    -------
    list of dict, by ``expected`` descending, one per source and candidate: ``source``,
    ``fine_tuned``, ``measured`` (``None`` for candidates or a failed cell), ``predicted`` (for a
    fine-tuned source, from the other sources only, so it is comparable to a candidate's),
    ``expected`` (measured when there is one, else predicted), ``stderr`` and ``interval``.

    Notes
    -----
    ``stderr = sqrt(var_boot + rmse_loso²)``: ``var_boot`` is the variance of the prediction over
    ridges fitted to bootstrap resamples of the training sources (how unsettled the fit is), and
    ``rmse_loso`` the leave-one-source-out RMSE on this target (how far a well-settled fit still
    misses). ``interval`` is ``predicted ± 1.645·stderr``, nominally 90%.
    """
    clash = sorted(set(candidates) & set(transfer))
    if clash:
        raise ValueError(f"candidates already fine-tuned (they are sources of the transfer matrix): {clash}")
    sources = list(transfer)
    y = np.array([_num(transfer[s].get(target)) for s in sources])
    measured = np.flatnonzero(~np.isnan(y))
    _need(len(measured), f" with a measured transfer to {target!r}")
    names = _feature_names({s: source_traits.get(s, {}) for s in sources}, pair_traits)
    X = _design(source_traits, _for_target(pair_traits, target), sources, names)
    Xc = _design(candidates, candidate_pairs, list(candidates), names)
    rng = np.random.default_rng(seed)

    def predict(train: np.ndarray, X_new: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Predictions (m,) of a fit on ``train`` and their bootstrap variance (m,)."""
        pred = fit_predict(X[train], y[train], X_new, alpha)[0]
        if n_boot < 2:
            return pred, np.zeros(len(X_new))
        boots = [fit_predict(X[b], y[b], X_new, alpha)[0] for b in rng.choice(train, (n_boot, len(train)))]
        return pred, np.var(boots, axis=0, ddof=1)

    loo = [predict(np.setdiff1d(measured, [i]), X[i:i + 1]) for i in range(len(sources))]
    rmse = float(np.sqrt(np.mean([(loo[i][0][0] - y[i]) ** 2 for i in measured])))
    items = [(s, True, _out(y[i]), float(loo[i][0][0]), float(loo[i][1][0])) for i, s in enumerate(sources)]
    if candidates:
        pred, var = predict(measured, Xc)
        items += [(c, False, None, float(p), float(v)) for c, p, v in zip(candidates, pred, var)]
    ranked = []
    for name, fine_tuned, value, pred, var in items:
        se = math.sqrt(var + rmse ** 2)
        ranked.append({"source": name, "fine_tuned": fine_tuned, "measured": value, "predicted": pred,
                       "expected": pred if value is None else value, "stderr": se,
                       "interval": [pred - Z90 * se, pred + Z90 * se]})
    return sorted(ranked, key=lambda r: (-r["expected"], r["source"]))
