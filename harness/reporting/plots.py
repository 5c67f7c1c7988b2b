"""Figures for the HTML report, drawn from a run's ``results.json``.

:func:`render_all` writes one PNG per figure and returns what it wrote, in report order. Every
figure has a fixed pixel size (so the report can lay them out without reading the files), names
from the data are drawn literally, and a figure that fails is reported and skipped rather than
taking the report down with it.
"""

from __future__ import annotations

import hashlib
import io
import logging
import math
import re
import sys
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import matplotlib

# Headless machines and CI have no display: choose Agg before anything imports pyplot. When
# pyplot is already loaded (a notebook, say) switching would close the user's figures, and this
# module never needs pyplot anyway, so leave their backend alone.
if "matplotlib.pyplot" not in sys.modules:
    matplotlib.use("Agg")

import numpy as np  # noqa: E402
from matplotlib.colors import TwoSlopeNorm  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from harness.analysis.stats import as_float  # noqa: E402
from harness.errors import describe
from harness.files import write_bytes_atomic  # noqa: E402
from harness.reporting.numbers import annotation  # noqa: E402
from harness.reporting.seeds import replicated, seed_se  # noqa: E402

log = logging.getLogger(__name__)

DPI = 100
# (width, height) in inches per kind of figure; pixels are these times DPI.
SIZES: dict[str, tuple[float, float]] = {
    "transfer_heatmap": (9.0, 6.0),
    "base_scores": (8.0, 4.5),
    "scree": (10.0, 4.5),
    "loadings": (9.0, 5.0),
    "biplot": (7.0, 6.0),
    "traitcorr": (9.0, 8.0),
    "confusion": (10.0, 3.6),
    "lengths": (10.0, 3.4),
}
# Small multiples (confusion matrices, length histograms) add this many inches per extra row of
# panels, so one row does not sit in a tall, mostly empty figure.
ROW_HEIGHT = 2.8
MAX_LABEL = 28  # characters of a data name shown on a figure; the full name is in the tables
DIVERGING = "RdBu"  # blue = positive transfer / loading, red = negative
MISSING = "#d9d9d9"

# Kept apart from the user's matplotlibrc: a style that turns on usetex or ``savefig.bbox:
# tight`` would break literal labels or the fixed pixel size.
_RC = {"text.usetex": False, "savefig.bbox": None, "figure.autolayout": False,
       "figure.constrained_layout.use": False}


@dataclass(frozen=True)
class Plot:
    """One written figure.

    Attributes
    ----------
    id : str
        File-name-safe identifier, unique within one :func:`render_all` call (file ``{id}.png``).
    title : str
        Human-readable caption; contains data names verbatim, so escape it before putting it in HTML.
    path : Path
        The PNG written.
    width, height : int
        Size of the PNG in pixels.
    section : str
        ``"transfer"``, ``"base"``, ``"components"``, ``"traits"`` or ``"side_effects"``.
    kind : str
        What the figure is: the id's prefix (``"scree"``, ``"confusion"``, ...) before any name.
    key : str or None
        The decomposition or target the figure belongs to, verbatim; None for the run-wide
        figures. Select by ``(kind, key)``, not by id prefix: slugs of two names can share one.
    fingerprint : str
        Hash of everything the figure shows: equal fingerprints draw identical PNGs.
    """

    id: str
    title: str
    path: Path
    width: int
    height: int
    section: str
    kind: str = ""
    key: str | None = None
    fingerprint: str = ""


# ---------------------------------------------------------------------------------------------
# Helpers


def slug(name: str, max_len: int = 60) -> str:
    """A file-name-safe form of ``name``: ASCII letters, digits, ``_`` and ``-`` only.

    Every other character becomes ``_``; the result is capped at ``max_len`` characters and never
    empty. Distinct names can share a slug: :class:`_Ids` resolves that.
    """
    out = re.sub(r"[^A-Za-z0-9_-]", "_", str(name))[:max_len]
    return out or "_"


class _Ids:
    """Hands out unique ids. The first name to claim a slug keeps it; a later one that slugs the
    same gets a suffix from a hash of its full name (the same name always gets the same suffix),
    and only a clash of those (or one name twice) falls back to a counter. Names are visited in
    results order, so the ids of one results file are always the same."""

    def __init__(self) -> None:
        self.used: set[str] = set()

    def get(self, prefix: str, name: str | None = None) -> str:
        base = prefix if name is None else f"{prefix}_{slug(name)}"
        candidate = base
        if candidate in self.used:
            candidate = f"{base}-{hashlib.sha1(str(name).encode('utf-8')).hexdigest()[:8]}"
        n = 2
        while candidate in self.used:
            candidate = f"{base}-{n}"
            n += 1
        self.used.add(candidate)
        return candidate


def label(text, max_len: int = MAX_LABEL) -> str:
    """``text`` as matplotlib should draw it: shortened, with ``$`` escaped.

    matplotlib reads text between two ``$`` as mathtext; escaping each one makes it print the
    name exactly (it strips the escapes again). Long names keep their start and end, the parts
    most likely to tell two similar names apart.
    """
    s = str(text).replace("\n", " ")
    if len(s) > max_len:
        head = max_len * 2 // 3
        s = s[:head] + "…" + s[-(max_len - head - 1):]
    return s.replace("$", r"\$")






def _figure(kind: str, rows: int = 1, layout: str | None = None) -> Figure:
    """A new figure of ``kind``'s size; small multiples grow by one panel height per extra row."""
    w, h = SIZES[kind]
    # A bare Figure, not pyplot: it is never registered with pyplot's figure manager, so there is
    # nothing global to leak or to close, and no GUI can be involved.
    return Figure(figsize=(w, h + ROW_HEIGHT * (rows - 1)), dpi=DPI, layout=layout)


def _pixels(fig: Figure) -> tuple[int, int]:
    w, h = fig.get_size_inches()
    return round(w * DPI), round(h * DPI)


def _font(n_cells: int, big: float = 10.0, small: float = 5.0) -> float:
    """Annotation font size for a heatmap of ``n_cells`` cells on a fixed-size figure."""
    return float(np.clip(big - 0.06 * max(n_cells - 20, 0), small, big))


def _symmetric_limit(values: np.ndarray) -> float:
    finite = np.abs(values[np.isfinite(values)])
    m = float(finite.max()) if finite.size else 0.0
    return m if m > 0 else 1.0  # an all-zero (or all-missing) matrix still needs a scale


def _heatmap(fig: Figure, ax, values: np.ndarray, rows: list[str], cols: list[str], *, norm,
             texts: list[list[str]] | None = None, cbar_label: str = "", cmap: str = DIVERGING,
             weights: list[list[str]] | None = None):
    """Draw ``values`` (NaN = missing, shown grey) with tick labels (already passed through
    :func:`label`) and optional cell texts."""
    colormap = matplotlib.colormaps[cmap].with_extremes(bad=MISSING)
    image = ax.imshow(np.ma.masked_invalid(values), cmap=colormap, norm=norm, aspect="auto")
    ax.set_xticks(range(len(cols)), cols, rotation=40, ha="right", rotation_mode="anchor")
    ax.set_yticks(range(len(rows)), rows)
    if texts is not None:
        size = _font(values.size)
        for i in range(values.shape[0]):
            for j in range(values.shape[1]):
                v = values[i, j]
                # White text on the dark ends of the colormap, black elsewhere and on grey.
                dark = np.isfinite(v) and abs(norm(v) - 0.5) > 0.3
                ax.text(j, i, texts[i][j], ha="center", va="center", fontsize=size,
                        color="white" if dark else "black",
                        fontweight=weights[i][j] if weights else "normal")
    bar = fig.colorbar(image, ax=ax, fraction=0.05, pad=0.02)
    bar.set_label(cbar_label)
    return image


def _order(preferred: list, present) -> list:
    """``present``'s keys in the order of ``preferred``, then any others in their own order."""
    present = list(present)
    return [p for p in preferred if p in present] + [p for p in present if p not in preferred]


# ---------------------------------------------------------------------------------------------
# Figures. Each returns a Figure, or None when the results hold nothing to draw.


def _transfer_heatmap(results: dict) -> Figure | None:
    sources, targets = list(results.get("sources") or []), list(results.get("targets") or [])
    transfer = results.get("transfer") or {}
    if not sources or not targets:
        return None
    tests = results.get("cell_tests") or {}
    values = np.array([[as_float((transfer.get(s) or {}).get(t)) for t in targets] for s in sources])
    texts = []
    for i, s in enumerate(sources):
        row = []
        for j, t in enumerate(targets):
            test = (tests.get(s) or {}).get(t) or {}
            star = "*" if test.get("significant") is True else ""
            se = seed_se(results, s, t)  # several training seeds: the between-seed SE under the mean
            row.append(annotation(values[i, j], sign=True) + star + ("" if se is None else f"\n±{se:.2f}"))
        texts.append(row)
    m = _symmetric_limit(values)
    fig = _figure("transfer_heatmap")
    ax = fig.add_subplot()
    _heatmap(fig, ax, values, [label(s) for s in sources], [label(t) for t in targets],
             norm=TwoSlopeNorm(0.0, -m, m), texts=texts,
             cbar_label="adapter − base")
    ax.set_xlabel("target")
    ax.set_ylabel("source (adapter)")
    seeds = "; mean over seeds ± between-seed SE" if replicated(results) else ""
    ax.set_title("Transfer: adapter − base" + (_SIG_NOTE if tests else "; no cell tests") + seeds, fontsize=11)
    fig.tight_layout()
    return fig


_SIG_NOTE = "; * significant vs base (q < FDR); grey = n/a"


def _base_scores(results: dict) -> Figure | None:
    base = results.get("base") or {}
    targets = _order(list(results.get("targets") or []), base)
    if not targets or all(not isinstance(base.get(t), dict) for t in targets):
        return None
    metrics = results.get("metrics") or {}
    cells = [base.get(t) if isinstance(base.get(t), dict) else {} for t in targets]
    values = np.array([as_float(c.get("value")) for c in cells])
    errors = np.array([as_float(c.get("stderr")) for c in cells])
    fig = _figure("base_scores")
    ax = fig.add_subplot()
    x = np.arange(len(targets))
    # A NaN error draws no bar at all; 0 would draw a cap suggesting an exact score.
    ax.bar(x, np.nan_to_num(values), yerr=errors, capsize=3,
           color="#4c72b0", error_kw={"elinewidth": 1})
    for i, (v, e) in enumerate(zip(values, errors)):
        # Beyond the error bar's end, where the value does not collide with it.
        y = 0.0 if math.isnan(v) else v + math.copysign(0 if math.isnan(e) else e, v)
        ax.text(i, y, annotation(v), ha="center", va="bottom" if math.isnan(v) or v >= 0 else "top", fontsize=8)
    ticks = [f"{label(t)}\n({label(metrics.get(t, '?'), 20)})" for t in targets]
    ax.set_xticks(x, ticks, rotation=30, ha="right", rotation_mode="anchor", fontsize=8)
    ax.set_ylabel("base score (± stderr)")
    if np.nanmin(values) >= 0:
        ax.set_ylim(bottom=0)
    ax.set_title("Base model scores", fontsize=11)
    fig.tight_layout()
    return fig


def _components(dec: dict) -> list[str]:
    """Component names (``C1``, ``C2``, ...) in the decomposition's own order."""
    return list((dec.get("loadings") or {}).keys()) or list((dec.get("labels") or {}).keys())


def _component_name(dec: dict, c: str, with_variance: bool = False) -> str:
    name = (dec.get("labels") or {}).get(c)
    text = f"{c} {label(name)}" if name else c
    if with_variance:
        ratios = dec.get("explained_variance_ratio") or []
        i = _components(dec).index(c) if c in _components(dec) else -1
        if 0 <= i < len(ratios) and not math.isnan(as_float(ratios[i])):
            text += f" ({100 * as_float(ratios[i]):.0f}%)"
    return text


def _scree(name: str, dec: dict) -> Figure | None:
    info = dec.get("n_components") or {}
    eig = [as_float(v) for v in info.get("eigenvalues") or []]
    ratio = [as_float(v) for v in info.get("explained_variance_ratio") or []]
    if not eig and not ratio:
        return None
    fig = _figure("scree")
    left, right = fig.subplots(1, 2)
    thresholds = info.get("parallel_thresholds")
    if thresholds:
        # Parallel analysis compares eigenvalues of the correlation matrix with thresholds on
        # the same scale; the covariance eigenvalues would not be comparable to them.
        observed = [as_float(v) for v in info.get("correlation_eigenvalues") or eig]
        left.plot(range(1, len(observed) + 1), observed, "o-", label="observed (correlation)")
        left.plot(range(1, len(thresholds) + 1), [as_float(v) for v in thresholds], "s--", color="#c44e52",
                  label="parallel-analysis threshold")
        left.legend(fontsize=8)
        left.set_title("Eigenvalues vs parallel analysis", fontsize=10)
    elif eig:
        left.plot(range(1, len(eig) + 1), eig, "o-")
        left.set_title("Eigenvalues", fontsize=10)
    left.set_xlabel("component")
    left.set_ylabel("eigenvalue")
    if ratio:
        x = np.arange(1, len(ratio) + 1)
        right.bar(x, np.nan_to_num(ratio), color="#4c72b0", label="per component")
        right.plot(x, np.nancumsum(ratio), "o-", color="#dd8452", label="cumulative")
        right.set_ylim(0, 1.05)
        right.legend(fontsize=8, loc="center right")
    right.set_xlabel("component")
    right.set_ylabel("explained variance ratio")
    right.set_title("Explained variance", fontsize=10)
    k = info.get("k")
    for ax in (left, right):
        if len(ax.lines) or len(ax.patches):
            ax.xaxis.get_major_locator().set_params(integer=True)
        if isinstance(k, int):
            ax.axvline(k + 0.5, color="grey", linestyle=":", linewidth=1)  # the retained cut-off
    fig.suptitle(f"Scree: {label(name)} (kept k = {k}; {label(info.get('method', '?'), 60)})", fontsize=11)
    fig.tight_layout()
    return fig


def _loadings(name: str, dec: dict, targets: list[str]) -> Figure | None:
    loadings = dec.get("loadings") or {}
    comps = _components(dec)
    if not loadings or not comps:
        return None
    cols = _order(targets, {t: None for c in comps for t in (loadings.get(c) or {})})
    values = np.array([[as_float((loadings.get(c) or {}).get(t)) for t in cols] for c in comps])
    m = _symmetric_limit(values)
    fig = _figure("loadings")
    ax = fig.add_subplot()
    texts = [[annotation(v) for v in row] for row in values]
    _heatmap(fig, ax, values, [_component_name(dec, c, with_variance=True) for c in comps],
             [label(t) for t in cols], norm=TwoSlopeNorm(0.0, -m, m), texts=texts, cbar_label="loading")
    ax.set_xlabel("target")
    ax.set_title(f"Loadings: {label(name)}", fontsize=11)
    fig.tight_layout()
    return fig


def _biplot(name: str, dec: dict) -> Figure | None:
    scores, loadings = dec.get("scores") or {}, dec.get("loadings") or {}
    comps = _components(dec)
    if not scores or not comps:
        return None
    fig = _figure("biplot")
    ax = fig.add_subplot()
    sources = list(scores)
    if len(comps) >= 2:
        c1, c2 = comps[:2]
        pts = np.array([[as_float((scores[s] or {}).get(c1)), as_float((scores[s] or {}).get(c2))] for s in sources])
        ok = np.isfinite(pts).all(axis=1)
        ax.scatter(pts[ok, 0], pts[ok, 1], color="#4c72b0", zorder=3)
        for s, (x, y) in zip([s for s, k in zip(sources, ok) if k], pts[ok]):
            # Labels point inwards so names of the outermost sources stay inside the axes.
            ax.annotate(label(s), (x, y), textcoords="offset points", xytext=(4 if x <= 0 else -4, 4),
                        ha="left" if x <= 0 else "right", fontsize=8, color="#4c72b0")
        targets = list({t: None for c in (c1, c2) for t in (loadings.get(c) or {})})
        arrows = np.array([[as_float((loadings.get(c1) or {}).get(t)), as_float((loadings.get(c2) or {}).get(t))]
                           for t in targets]).reshape(-1, 2)
        good = np.isfinite(arrows).all(axis=1)
        # Loadings and scores live on different scales: stretch the arrows so the longest
        # reaches 80% of the farthest source, which keeps both readable on one set of axes.
        reach = np.abs(pts[ok]).max() if ok.any() else 1.0
        longest = np.linalg.norm(arrows[good], axis=1).max() if good.any() else 0.0
        scale = 0.8 * reach / longest if longest > 0 else 1.0
        for t, (dx, dy) in zip([t for t, g in zip(targets, good) if g], arrows[good] * scale):
            ax.annotate("", xy=(dx, dy), xytext=(0, 0),
                        arrowprops={"arrowstyle": "->", "color": "#c44e52", "lw": 1})
            ax.text(dx * 1.08, dy * 1.08, label(t), color="#c44e52", fontsize=8, ha="center", va="center")
        lim = 1.2 * max(reach, 1e-12)
        ax.set_xlim(-lim, lim)
        ax.set_ylim(-lim, lim)
        ax.axhline(0, color="grey", lw=0.5)
        ax.axvline(0, color="grey", lw=0.5)
        ax.set_xlabel(_component_name(dec, c1, with_variance=True))
        ax.set_ylabel(_component_name(dec, c2, with_variance=True))
        ax.set_title(f"Biplot: {label(name)} (blue: sources' scores; red: target loadings, "
                     f"scaled ×{scale:.2g})", fontsize=10)
    else:
        # One component: nothing to plot against, so a strip of scores and one of loadings.
        c1 = comps[0]
        xs = np.array([as_float((scores[s] or {}).get(c1)) for s in sources])
        load = loadings.get(c1) or {}
        lt = list(load)
        lx = np.array([as_float(load[t]) for t in lt])
        ax.scatter(xs, np.ones_like(xs), color="#4c72b0")
        ax.scatter(lx, np.zeros_like(lx), color="#c44e52", marker="s")
        for s, x in zip(sources, xs):
            if np.isfinite(x):
                ax.text(x, 1.05, label(s), rotation=60, fontsize=8, color="#4c72b0", ha="left", va="bottom")
        for t, x in zip(lt, lx):
            if np.isfinite(x):
                ax.text(x, 0.05, label(t), rotation=60, fontsize=8, color="#c44e52", ha="left", va="bottom")
        ax.set_yticks([0, 1], ["loadings\n(targets)", "scores\n(sources)"])
        ax.set_ylim(-0.5, 2.0)
        ax.axvline(0, color="grey", lw=0.5)
        ax.set_xlabel(_component_name(dec, c1, with_variance=True))
        ax.set_title(f"Component strip: {label(name)} (one component)", fontsize=10)
    fig.tight_layout()
    return fig


def _traitcorr(name: str, dec: dict, correlations: list) -> Figure | None:
    rows = [r for r in correlations or [] if isinstance(r, dict) and r.get("decomposer") == name]
    if not rows:
        return None
    traits = list({str(r.get("trait")): None for r in rows})
    comps = _order(_components(dec), {str(r.get("component")): None for r in rows})
    rho = np.full((len(traits), len(comps)), np.nan)
    q = np.full_like(rho, np.nan)
    for r in rows:
        i, j = traits.index(str(r.get("trait"))), comps.index(str(r.get("component")))
        rho[i, j], q[i, j] = as_float(r.get("spearman")), as_float(r.get("q"))
    texts = [[f"{annotation(rho[i, j])}\nq={annotation(q[i, j])}" for j in range(len(comps))] for i in range(len(traits))]
    # Bold where the correlation survives FDR at the usual 0.05, so the eye finds it.
    weights = [["bold" if q[i, j] < 0.05 else "normal" for j in range(len(comps))] for i in range(len(traits))]
    fig = _figure("traitcorr")
    ax = fig.add_subplot()
    # Trait names come from plugins and are long but telling: allow more of them.
    _heatmap(fig, ax, rho, [label(t, 40) for t in traits], [_component_name(dec, c) for c in comps],
             norm=TwoSlopeNorm(0.0, -1.0, 1.0), texts=texts, weights=weights, cbar_label="Spearman ρ")
    n = sorted({r.get("n") for r in rows if isinstance(r.get("n"), int)})
    ax.set_title(f"Traits vs components: {label(name)} (Spearman ρ, BH q"
                 + (f"; n = {n[0]}" + (f"–{n[-1]}" if n[-1] != n[0] else "") + " sources" if n else "") + ")",
                 fontsize=10)
    fig.tight_layout()
    return fig


def _models(trait: dict, entry: dict) -> list[str]:
    """Models of a behaviour target, the base model first, then the adapters in run order."""
    present = entry.get("models") or {}
    order = _order(list(trait.get("models") or []), present)
    return (["base"] if "base" in order else []) + [m for m in order if m != "base"]


def _grid(n: int) -> tuple[int, int]:
    cols = min(n, 5)
    return math.ceil(n / cols), cols


def _confusion(target: str, trait: dict, entry: dict) -> Figure | None:
    labels_ = [str(x) for x in entry.get("labels") or []]
    k = len(labels_)
    mats = {}
    for m in _models(trait, entry):
        conf = (entry["models"].get(m) or {}).get("confusion")
        arr = np.array(conf, dtype=float) if conf else None
        if arr is not None and arr.shape == (k, k) and k:
            mats[m] = arr
    if not mats:
        return None
    nrows, ncols = _grid(len(mats))
    # Constrained layout, unlike tight_layout, makes room for a colorbar shared by every panel.
    fig = _figure("confusion", nrows, layout="constrained")
    axes = np.atleast_1d(fig.subplots(nrows, ncols, squeeze=False)).ravel()
    vmax = max(float(a.max()) for a in mats.values()) or 1.0  # one scale for every panel
    small = k > 4 or len(mats) > 10
    short = [label(x, 9 if small else 16) for x in labels_]
    image = None
    for ax, (m, arr) in zip(axes, mats.items()):
        image = ax.imshow(arr, cmap="Blues", vmin=0, vmax=vmax)
        stats = entry["models"][m]
        acc, invalid = as_float(stats.get("accuracy")), stats.get("invalid") or 0
        title = label(m, 18) + ("" if math.isnan(acc) else f"\nacc {acc:.2f}") + (f", {invalid} invalid" if invalid else "")
        ax.set_title(title, fontsize=8)
        ax.set_xticks(range(k), short, rotation=45, ha="right", rotation_mode="anchor", fontsize=7)
        ax.set_yticks(range(k), short, fontsize=7)
        if k * k * len(mats) <= 400:  # annotations stop being legible beyond that
            for i in range(k):
                for j in range(k):
                    ax.text(j, i, f"{arr[i, j]:.0f}", ha="center", va="center", fontsize=7,
                            color="white" if arr[i, j] > 0.6 * vmax else "black")
    for ax in axes[len(mats):]:
        ax.set_visible(False)
    for ax in axes[::ncols]:
        ax.set_ylabel("gold", fontsize=8)
    for ax in axes[(nrows - 1) * ncols:]:
        ax.set_xlabel("predicted", fontsize=8)
    fig.suptitle(f"Confusion matrices: {label(target, 40)} (base, then each adapter; same colour scale)",
                 fontsize=11)
    fig.colorbar(image, ax=list(axes), fraction=0.02, pad=0.02).set_label("count")
    return fig


def _lengths(target: str, trait: dict, entry: dict) -> Figure | None:
    edges = [as_float(e) for e in entry.get("length_bin_edges") or []]
    if len(edges) < 2 or any(math.isnan(e) for e in edges):
        return None
    hists = {}
    for m in _models(trait, entry):
        h = (entry["models"].get(m) or {}).get("output_length_histogram")
        if h and len(h) == len(edges) - 1:
            arr = np.array([as_float(v) for v in h])
            total = np.nansum(arr)
            # Shares, not counts: a model with fewer scored samples stays comparable.
            hists[m] = arr / total if total > 0 else arr
    if not hists:
        return None
    base = hists.get("base")
    panels = [m for m in hists if m != "base"] or list(hists)
    nrows, ncols = _grid(len(panels))
    fig = _figure("lengths", nrows)
    axes = np.atleast_1d(fig.subplots(nrows, ncols, squeeze=False, sharex=True, sharey=True)).ravel()
    for ax, m in zip(axes, panels):
        ax.stairs(np.nan_to_num(hists[m]), edges, fill=True, color="#4c72b0", alpha=0.6, label="model")
        if base is not None and m != "base":
            ax.stairs(np.nan_to_num(base), edges, color="black", linewidth=1.2, label="base")
        ax.set_title(label(m, 18), fontsize=8)
        ax.tick_params(labelsize=7)
    for ax in axes[len(panels):]:
        ax.set_visible(False)
    for ax in axes[::ncols]:
        ax.set_ylabel("share of outputs", fontsize=8)
    for ax in axes[(nrows - 1) * ncols:]:
        ax.set_xlabel("output length (whitespace tokens)", fontsize=8)
    fig.suptitle(f"Output lengths: {label(target, 40)} (each adapter filled, base outlined)", fontsize=11)
    fig.tight_layout()
    # One legend for the figure: inside a panel it would cover the bars.
    fig.legend(*axes[0].get_legend_handles_labels(), loc="upper right", fontsize=8, frameon=False)
    return fig


# ---------------------------------------------------------------------------------------------
# Driver


@dataclass
class _Job:
    id: str
    title: str
    section: str
    draw: Callable[[], Figure | None]
    kind: str = ""
    key: str | None = None
    fingerprint: str = ""


def _jobs(results: dict) -> list[_Job]:
    """Every figure the results call for, in report order (drawing happens later, one by one)."""
    from harness.files import stable_hash

    ids = _Ids()
    # Looked up through the module at call time (not bound here) so tests can swap one out.
    mod = sys.modules[__name__]
    # What a run-wide figure may read: all of the results but their provenance (timings, cache hits).
    everything = {k: v for k, v in results.items() if k != "provenance"}

    def job(kind: str, key: str | None, title: str, section: str, draw, inputs=everything) -> _Job:
        return _Job(ids.get(kind, key), title, section, draw, kind, key,
                    stable_hash({"kind": kind, "key": key, "title": title, "inputs": inputs}))

    significance = "; * = significant against the base after FDR correction" if results.get("cell_tests") else ""
    jobs = [job("transfer_heatmap", None, "Transfer matrix (adapter − base)" + significance, "transfer",
                lambda: mod._transfer_heatmap(results)),
            job("base_scores", None, "Base model scores", "base", lambda: mod._base_scores(results))]
    targets = list(results.get("targets") or [])
    correlations = results.get("correlations") or []
    decompositions = results.get("decompositions")
    for name, dec in (decompositions.items() if isinstance(decompositions, dict) else []):
        if not isinstance(dec, dict):
            continue  # a failed decomposer leaves no usable entry: nothing to draw
        jobs += [job("scree", name, f"Scree: {name}", "components", lambda n=name, d=dec: mod._scree(n, d)),
                 job("loadings", name, f"Loadings: {name}", "components",
                     lambda n=name, d=dec: mod._loadings(n, d, targets)),
                 job("biplot", name, f"Biplot: {name}", "components", lambda n=name, d=dec: mod._biplot(n, d))]
        if any(isinstance(r, dict) and r.get("decomposer") == name for r in correlations):
            jobs.append(job("traitcorr", name, f"Traits vs components: {name} (Spearman ρ, BH q)", "traits",
                            lambda n=name, d=dec: mod._traitcorr(n, d, correlations)))
    behaviour = results.get("behaviour")
    for trait in (behaviour.values() if isinstance(behaviour, dict) else []):
        entries = trait.get("targets") if isinstance(trait, dict) else None
        if not isinstance(entries, dict):
            continue
        for target in _order(targets, entries):
            entry = entries[target]
            if not isinstance(entry, dict) or not isinstance(entry.get("models"), dict):
                continue
            # One target's panels read only its entry and the model order: adding a target leaves
            # the other targets' figures as they were.
            inputs = {"entry": entry, "models": trait.get("models")}
            if entry.get("kind") == "multiple_choice":
                jobs.append(job("confusion", target, f"Confusion matrices: {target} (base, then each adapter)",
                                "side_effects", lambda t=target, tr=trait, e=entry: mod._confusion(t, tr, e), inputs))
            elif entry.get("kind") == "generation":
                jobs.append(job("lengths", target, f"Output lengths: {target} (each adapter against the base)",
                                "side_effects", lambda t=target, tr=trait, e=entry: mod._lengths(t, tr, e), inputs))
    return jobs


def _png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    # No bbox_inches="tight": it crops to the content and so changes the pixel size. No
    # "Software" tag: matplotlib would write its web address into the file.
    fig.savefig(buf, format="png", dpi=DPI, metadata={"Software": None})
    return buf.getvalue()


def render_all(results: dict, out_dir: Path, *, failures: list[dict] | None = None,
               drawn_before: list[Plot] = ()) -> list[Plot]:
    """Draw every figure the results support and write them as PNGs into ``out_dir``.

    Parameters
    ----------
    results : dict
        A run's ``results.json``, parsed. Parts that are absent, null or failed only skip the
        figures that need them.
    out_dir : Path
        Folder for the PNGs (``{id}.png``); created when missing.
    failures : list of dict, optional
        Receives ``{"stage": "plot", "plot": id, "error": "..."}`` for every figure that raised;
        each is also logged as a warning. The other figures are drawn regardless.
    drawn_before : list of Plot, optional
        Figures already in ``out_dir`` from an earlier call: one with the same id and fingerprint
        whose file still exists is kept as it is, not drawn again.

    Returns
    -------
    list of Plot
        The figures written, in report order.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[Plot] = []
    try:
        jobs = _jobs(results if isinstance(results, dict) else {})
    except Exception as exc:  # malformed results: report it, never fail the report
        _record(failures, "plan", exc)
        return written
    kept = {p.id: p for p in drawn_before if p.fingerprint and Path(p.path).is_file()}
    for job in jobs:
        fig = None
        before = kept.get(job.id)
        if before is not None and before.fingerprint == job.fingerprint and Path(before.path).parent == out_dir:
            written.append(before)
            continue
        try:
            # Warnings about glyphs a font lacks (emoji, CJK names) or a cramped tight_layout
            # are expected with arbitrary names and say nothing useful in a run's log.
            with matplotlib.rc_context(_RC), warnings.catch_warnings():
                warnings.filterwarnings("ignore", message=r"Glyph .* missing from")
                warnings.filterwarnings("ignore", message=r".*[Tt]ight.?layout")
                fig = job.draw()
                if fig is None:
                    continue
                data = _png(fig)
            path = out_dir / f"{job.id}.png"
            write_bytes_atomic(path, data)
            width, height = _pixels(fig)
            written.append(Plot(job.id, job.title, path, width, height, job.section, job.kind, job.key,
                                job.fingerprint))
        except Exception as exc:
            _record(failures, job.id, exc)
        finally:
            if fig is not None:
                fig.clear()  # drop artists now rather than at the next garbage collection
    return written


def _record(failures: list[dict] | None, plot_id: str, exc: BaseException) -> None:
    error = describe(exc)
    log.warning("plot %s failed: %s", plot_id, error)
    if failures is not None:
        failures.append({"stage": "plot", "plot": plot_id, "error": error})
