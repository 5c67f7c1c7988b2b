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

A study has few sources and often more traits than sources. Then a fixed penalty lets the ridge
pass through every training source and extrapolate far outside what the metric allows, so (1) the
penalty is chosen by leave-one-out on the training sources (nested inside any outer leave-one-out),
(2) predictions and intervals are clipped to the range transfer can take (-base to 1 - base for
accuracy), and (3) a prediction whose interval still spans most of that range is flagged as not
informative, so it is not ranked as if it were a number.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.stats import spearmanr

from harness.analysis.applicability import MIN_SOURCES, NotApplicable
from harness.analysis.stats import as_float, mean_present

Z90 = 1.645  # two-sided 90% normal quantile
# Penalties tried when the training sources are no more than the features, relative to n·p (the
# total sum of squares of n standardised rows of p features, the scale of ZᵀZ's eigenvalues): from
# almost none (a near-interpolating fit) to so much that the fit predicts the training mean.
# Descending, so a leave-one-out tie goes to the stronger penalty.
RELATIVE_ALPHAS = np.logspace(3, -3, 13)
# A prediction whose 90% interval spans more than this share of what the metric allows says little
# about where the transfer lies: it is shown as "not informative", not as a number to rank by.
INFORMATIVE_SHARE = 0.5
# Ranges of the metrics the harness knows, by lm-eval name (the part before the comma in
# "acc,none"). Anything else (perplexity, BLEU on 0-100, a plugin's own score) is left unbounded.
METRIC_RANGES = {name: (0.0, 1.0) for name in ("acc", "acc_norm", "acc_mutual_info", "exact_match", "f1",
                                               "precision", "recall")} | {"mcc": (-1.0, 1.0)}


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


def choose_alpha(Z: np.ndarray, y: np.ndarray, alpha: float) -> float:
    """The ridge penalty for standardised training features ``Z`` (n, p) and responses ``y`` (n,).

    With more rows than features, ``alpha`` (the registry's ``ridge_alpha``). Otherwise a fixed
    penalty is arbitrary: the fit can pass through every training row, and a small penalty lets it
    extrapolate wildly. The penalty is then chosen among ``alpha`` and ``RELATIVE_ALPHAS · n·p`` by
    the leave-one-out error on these rows (scikit-learn's ``RidgeCV``: exact leave-one-out,
    unpenalised intercept). Two rows cannot judge (each fold trains on a single row): the strongest is used.
    """
    n, p = Z.shape
    if n > p or p == 0:
        return alpha
    grid = np.unique(np.append(RELATIVE_ALPHAS * n * p, alpha))[::-1]
    if n < 3:
        return float(grid[0])
    from sklearn.linear_model import RidgeCV

    return float(RidgeCV(alphas=grid).fit(Z, y).alpha_)


def fit_predict(X_train: np.ndarray, y_train: np.ndarray, X_test: np.ndarray,
                alpha: float = 1.0, select: bool = False) -> tuple[np.ndarray, np.ndarray, float]:
    """Impute and standardise with the training rows' statistics, fit :func:`ridge`, predict.

    Parameters
    ----------
    X_train : ndarray (n, p), NaN where a value is missing.
    y_train : ndarray (n,), no NaN.
    X_test : ndarray (m, p), NaN where a value is missing.
    alpha : float >= 0.
    select : bool, choose the penalty on the training rows (:func:`choose_alpha`), ``alpha`` being
        kept when they outnumber the features. Done inside the fit, so when the fit is one fold of
        an outer leave-one-out the choice is nested: the held-out row never sees it.

    Returns
    -------
    pred : ndarray (m,), the predictions.
    kept : ndarray (p,) of bool, the features used (not constant nor all missing in training).
    alpha : float, the penalty used.
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
    Z = (X_train[:, kept] - mean) / std
    if select:
        alpha = choose_alpha(Z, y_train, alpha)
    b0, b = ridge(Z, y_train, alpha)
    return b0 + (X_test - mean) / std @ b, kept, alpha


def transfer_bounds(metric: str | None, base: float | None) -> tuple[float, float] | None:
    """The range transfer (adapter minus base) can take on a target: ``(low - base, high - base)``
    for a metric of known range (``METRIC_RANGES``, e.g. -base to 1 - base for accuracy), else None."""
    known = METRIC_RANGES.get((metric or "").split(",")[0])
    if known is None or base is None:
        return None
    return known[0] - base, known[1] - base


def _clip(values, bounds: tuple[float, float] | None):
    return values if bounds is None else np.clip(values, *bounds)


def informative(width: float, bounds: tuple[float, float] | None) -> bool | None:
    """Whether an interval of ``width`` says something: at most ``INFORMATIVE_SHARE`` of the
    feasible range. None when the metric's range is unknown (nothing to judge it against)."""
    if bounds is None:
        return None
    return bool(width <= INFORMATIVE_SHARE * (bounds[1] - bounds[0]))




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
    return np.array([[as_float(v.get(n)) for n in names] for v in values], dtype=float).reshape(len(rows), len(names))


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


_PENALTY = ("the penalty is alpha when the training sources outnumber the features, else chosen by "
            "leave-one-out on the training sources alone (nested)")


def leave_one_source_out(source_traits: dict, pair_traits: dict, transfer: dict, alpha: float = 1.0,
                         bounds: dict[str, tuple[float, float] | None] | None = None) -> dict:
    """How well traits predict transfer: hold out each source in turn and predict its transfer row.

    For each held-out source and each target, a ridge is fitted on the other sources measured on
    that target (features standardised on those sources only) and predicts the held-out cell. With
    no more training sources than features the penalty is chosen on them by an inner
    leave-one-out (:func:`choose_alpha`). ``bounds[t]`` (:func:`transfer_bounds`) is the range
    transfer to ``t`` can take: predictions are clipped to it.

    Returns
    -------
    dict, JSON-friendly:

    * ``per_source[s]``: ``predicted`` and ``actual`` rows (target -> value or ``None``),
      ``spearman`` between them over the targets (``None`` when undefined: fewer than 3 targets or a
      constant row), and ``baseline_spearman``, the same for the training sources' mean row;
    * ``score`` / ``baseline_score``: the mean of those Spearmans over the held-out sources (the
      baseline shows whether traits add anything beyond "targets differ in how much they gain");
    * ``rmse[t]``: root mean squared error of the held-out predictions on target ``t``;
    * ``bounds[t]``: ``[low, high]`` or ``None`` (range unknown); ``informative[t]``: whether a
      held-out prediction's 90% error band (± 1.645 RMSE) spans at most half of that range
      (``None`` when unknown): where it is ``False`` the predicted numbers say little;
    * ``penalties[t][s]``: the penalty of the fit that predicted ``s`` on ``t``;
    * ``features``: the features some fit used; ``alpha``, ``n_sources``, ``method``.

    Raises
    ------
    NotApplicable
        With fewer than ``MIN_SOURCES`` sources.
    """
    sources = list(transfer)
    _need(len(sources))
    bounds = bounds or {}
    targets = list(dict.fromkeys(t for row in transfer.values() for t in row))
    names = _feature_names({s: source_traits.get(s, {}) for s in sources}, pair_traits)
    used = np.zeros(len(names), bool)
    predicted = {s: {} for s in sources}
    baseline = {s: {} for s in sources}
    penalties = {t: {} for t in targets}
    for t in targets:
        X = _design(source_traits, _for_target(pair_traits, t), sources, names)
        y = np.array([as_float(transfer[s].get(t)) for s in sources])
        for i, s in enumerate(sources):
            train = np.flatnonzero(~np.isnan(y) & (np.arange(len(sources)) != i))
            if len(train) == 0:
                predicted[s][t] = baseline[s][t] = None
                continue
            pred, kept, penalties[t][s] = fit_predict(X[train], y[train], X[i:i + 1], alpha, select=True)
            predicted[s][t], baseline[s][t] = float(_clip(pred[0], bounds.get(t))), float(y[train].mean())
            used |= kept
    per_source = {}
    for s in sources:
        actual = {t: _out(as_float(transfer[s].get(t))) for t in targets}
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
        "score": mean_present(p["spearman"] for p in per_source.values()),
        "baseline_score": mean_present(p["baseline_spearman"] for p in per_source.values()),
        "rmse": rmse,
        "bounds": {t: None if bounds.get(t) is None else list(bounds[t]) for t in targets},
        "informative": {t: None if rmse[t] is None else informative(2 * Z90 * rmse[t], bounds.get(t))
                        for t in targets},
        "penalties": penalties,
        "method": (f"Per target, ridge regression of transfer on the source's traits and the (source, target) "
                   f"pair traits, standardised and mean-imputed with the training sources' statistics; {_PENALTY} "
                   f"(alpha={alpha}); predictions clipped to the range the metric allows; each source held out "
                   "in turn. score: mean over held-out sources of the Spearman between predicted and actual "
                   "transfer rows; baseline_score: the same for the training sources' mean row."),
    }


def recommend(source_traits: dict, pair_traits: dict, transfer: dict, target: str,
              candidates: dict[str, dict[str, float | None]],
              candidate_pairs: dict[str, dict[str, float | None]],
              alpha: float = 1.0, n_boot: int = 200, seed: int = 0,
              bounds: tuple[float, float] | None = None) -> list[dict]:
    """Rank fine-tuned sources and not-yet-fine-tuned candidates by expected transfer to ``target``.

    Parameters
    ----------
    source_traits, pair_traits, transfer : the fine-tuned sources' data (see the module docstring).
    target : str, the target to rank for.
    candidates : ``{name: {trait: value}}``, source traits of datasets not fine-tuned.
    candidate_pairs : ``{pair_trait: {name: value}}``, the candidates' pair traits with ``target``.
    alpha : float >= 0, the ridge penalty when the sources outnumber the features (otherwise it is
        chosen by a nested leave-one-out, :func:`choose_alpha`).
    n_boot : int, bootstrap resamples of the training sources (below 2: no bootstrap term).
    seed : int, seeds the bootstrap.
    bounds : ``(low, high)``, the range transfer to ``target`` can take (:func:`transfer_bounds`),
        or None when the metric's range is unknown.

    Returns
    -------
    list of dict, one per source and candidate: ``source``, ``fine_tuned``, ``measured`` (``None``
    for candidates or a failed cell), ``predicted`` (for a fine-tuned source, from the other sources
    only, so it is comparable to a candidate's), ``stderr``, ``interval``, ``informative`` and
    ``expected`` (measured when there is one, else predicted; ``None`` for a prediction that is not
    informative). Sorted by ``expected`` descending, the rows without one last.

    Notes
    -----
    ``stderr = sqrt(var_boot + rmse_loso²)``: ``var_boot`` is the variance of the prediction over
    ridges fitted to bootstrap resamples of the training sources (how unsettled the fit is), and
    ``rmse_loso`` the leave-one-source-out RMSE on this target (how far a well-settled fit still
    misses). ``interval`` is ``predicted ± 1.645·stderr``, nominally 90%. With ``bounds``,
    predictions and intervals are clipped to them, and ``informative`` says whether the interval
    spans at most ``INFORMATIVE_SHARE`` of that range (``None`` without bounds).

    Raises
    ------
    NotApplicable
        With fewer than ``MIN_SOURCES`` sources measured on ``target``.
    """
    clash = sorted(set(candidates) & set(transfer))
    if clash:
        raise ValueError(f"candidates already fine-tuned (they are sources of the transfer matrix): {clash}")
    sources = list(transfer)
    y = np.array([as_float(transfer[s].get(target)) for s in sources])
    measured = np.flatnonzero(~np.isnan(y))
    _need(len(measured), f" with a measured transfer to {target!r}")
    names = _feature_names({s: source_traits.get(s, {}) for s in sources}, pair_traits)
    X = _design(source_traits, _for_target(pair_traits, target), sources, names)
    Xc = _design(candidates, candidate_pairs, list(candidates), names)
    rng = np.random.default_rng(seed)

    def predict(train: np.ndarray, X_new: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Predictions (m,) of a fit on ``train`` and their bootstrap variance (m,), both within
        ``bounds``. The resampled fits keep the penalty chosen on ``train`` (a leave-one-out over
        a resample with repeated rows would judge rows by their own copies)."""
        pred, _, penalty = fit_predict(X[train], y[train], X_new, alpha, select=True)
        if n_boot < 2:
            return _clip(pred, bounds), np.zeros(len(X_new))
        boots = [_clip(fit_predict(X[b], y[b], X_new, penalty)[0], bounds)
                 for b in rng.choice(train, (n_boot, len(train)))]
        return _clip(pred, bounds), np.var(boots, axis=0, ddof=1)

    loo = [predict(np.setdiff1d(measured, [i]), X[i:i + 1]) for i in range(len(sources))]
    rmse = float(np.sqrt(np.mean([(loo[i][0][0] - y[i]) ** 2 for i in measured])))
    items = [(s, True, _out(y[i]), float(loo[i][0][0]), float(loo[i][1][0])) for i, s in enumerate(sources)]
    if candidates:
        pred, var = predict(measured, Xc)
        items += [(c, False, None, float(p), float(v)) for c, p, v in zip(candidates, pred, var)]
    ranked = []
    for name, fine_tuned, value, pred, var in items:
        se = math.sqrt(var + rmse ** 2)
        lo, hi = (float(v) for v in _clip(np.array([pred - Z90 * se, pred + Z90 * se]), bounds))
        useful = informative(hi - lo, bounds)
        ranked.append({"source": name, "fine_tuned": fine_tuned, "measured": value, "predicted": pred,
                       "expected": value if value is not None else None if useful is False else pred,
                       "stderr": se, "interval": [lo, hi], "informative": useful})
    return sorted(ranked, key=lambda r: (r["expected"] is None, -(r["expected"] or 0.0), r["source"]))
