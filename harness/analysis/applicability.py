"""When an analysis does not apply: the study is too small for it (too few sources or targets), or
lacks what it reads (per-sample logs, traits).

That is not a failure. The analysis is left out of results, an entry in ``results["skipped"]``
says which one and why, the reports show it, and the run still exits 0. Only the code that knows
an analysis's requirement raises :class:`NotApplicable`; anything else an analysis raises
(including a plain ``ValueError``) is a real failure, recorded in ``failures`` (exit 1).
"""

from __future__ import annotations

# The fewest sources a test across sources needs: a rank correlation over two points is always
# +-1, a leave-one-source-out fit over two keeps one training row per fold (prediction: two, and a
# two-point Spearman), and a refit without one source has a single row left.
MIN_SOURCES = 3
# Why every analysis is skipped in a run without sources (a CI suite: targets, the base model, nothing else).
NO_SOURCES = ("no sources: only the base model was scored (a suite of targets); add sources, or bring a model "
              "with harness run --checkpoint NAME=DIR")


class NotApplicable(ValueError):
    """The study does not have what this analysis needs; the message is the reason, for the report.

    A ``ValueError`` so that callers which treat a too-small study as bad input (``harness
    recommend`` exits 2 on it) keep doing so."""


def require(have: int, need: int, what: str, analysis: str) -> None:
    """Raise :class:`NotApplicable` unless ``have >= need`` (``what``: "sources", "targets")."""
    if have < need:
        raise NotApplicable(f"{analysis} needs at least {need} {what}; this study has {have}")


def entry(analysis: str, reason: str, plugin: str | None = None) -> dict:
    """One ``results["skipped"]`` item: ``analysis``, ``reason`` and, for a decomposition's parts
    or a pair trait's test, the ``plugin`` key it concerns."""
    return {"analysis": analysis, **({"plugin": plugin} if plugin else {}), "reason": reason}


def skipped_analyses(results: dict) -> list[dict]:
    """``results["skipped"]``; for a results.json from before that list, the one skip it recorded
    (prediction's)."""
    if "skipped" in results:
        return results["skipped"]
    reason = (results.get("prediction") or {}).get("skipped")
    return [entry("prediction", reason)] if reason else []


def describe(item: dict) -> str:
    """``"decomposition (pca): needs ..."``: one skip for a report line."""
    where = f" ({item['plugin']})" if item.get("plugin") else ""
    return f"{item['analysis'].replace('_', ' ')}{where}: {item['reason']}"
