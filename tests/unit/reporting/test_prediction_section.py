"""The Prediction table of report.md and report.html, from a real predictor comparison."""

from __future__ import annotations

from harness.analysis.predictors import compare_predictors
from harness.reporting.prediction import html_section, markdown_section


def results():
    sources = [f"s{i}" for i in range(5)]
    targets = ["a", "b", "c"]
    transfer = {s: {t: 0.01 * (i + 1) * (j + 1) for j, t in enumerate(targets)} for i, s in enumerate(sources)}
    traits = {s: {"majority_share": 0.5 + 0.1 * i} for i, s in enumerate(sources)}
    compared = compare_predictors(traits, {}, transfer, {"majority_share": "class_distribution"},
                                  base={t: 0.5 for t in targets}, k=2)
    return {"prediction": {"score": 0.5, **compared}}


def test_markdown_and_html_show_every_predictor_and_why_others_are_absent():
    res = results()
    md = "\n".join(markdown_section(res))
    assert "## Prediction" in md and "| predictor | Spearman | NDCG@2 | Regret@2 |" in md
    assert "| statistics | +1.00 | 1.00 | 0.000 |" in md  # the planted statistic ranks every target right
    assert "| mean_row | +0.00 |" in md and "statistics − mean_row" in md
    assert "not compared: similarity" in md
    page = html_section(res)
    assert "<h3>Prediction</h3>" in page and "<td>statistics</td>" in page and "Not compared: similarity" in page
    assert markdown_section({"prediction": None}) == [] and html_section({}) == ""
