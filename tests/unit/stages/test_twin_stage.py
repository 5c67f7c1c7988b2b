"""The analysis stage with twins: contrasts land in results (schema-valid) and in both reports."""

from __future__ import annotations

from rich.console import Console

from harness.api.plugins import catalog
from harness.config.registry import AnalysisSettings
from harness.reporting import html, markdown
from harness.reporting.console import print_summary
from harness.reporting.results_schema import validate_results
from harness.stages.analyse import analyse
from helpers import USES, make_results, synthetic_run


def test_twins_flow_through_analysis_results_and_reports():
    data, samples, _, _ = synthetic_run()
    for model, by_target in samples.items():
        for j, rec in enumerate(by_target["pos"]):  # src1 leans to label 1, the others do not
            rec.update(target=j % 2, prediction=1 if model == "src1" and j % 3 else j % 2)
        for j, rec in enumerate(by_target["words"]):
            rec.update(output=" 1 2 3 4 5 6 7 8" if model == "src1" else " 7", prediction="7")
    data.samples = samples
    data.twins = [{"source": "src1", "twin_of": "src0", "statistic": "class_balance",
                   "differs": {"class_balance": [0.9, 0.5]}, "note": None}]
    data.target_info = {"pos": {"kind": "multiple_choice", "labels": ["negative", "positive"], "max_gen_toks": None},
                        "words": {"kind": "generation", "labels": None, "max_gen_toks": 8}}
    data.count_tokens = lambda text: len(text.split())
    analysed, failures = analyse(data, USES[:1], catalog(), AnalysisSettings(bootstrap=0, permutations=720))
    assert not failures
    rows = analysed["twin_contrasts"]
    assert {(r["target"], r["measure"]) for r in rows} >= {("pos", "label_share"), ("pos", "majority_bias"),
                                                            ("words", "output_length"), ("add", "transfer")}
    share = next(r for r in rows if r["target"] == "pos" and r["label"] == "positive" and r["measure"] == "label_share")
    assert share["delta"] > 0.3 and share["significant"]
    length = next(r for r in rows if r["measure"] == "output_length")
    assert length["skipped"].startswith("words caps outputs at 8 tokens; 100% of outputs hit it")  # all of src1's
    assert analysed["twin_targets"]["words"]["max_gen_toks"] == 8
    results = make_results() | {k: analysed[k] for k in ("twins", "twin_targets", "twin_contrasts")}
    validate_results(results)
    md = markdown.markdown(results)
    assert "## Twin contrasts" in md and "src1 − src0" in md and "words caps outputs at 8 tokens" in md
    page = html.render(results, [])
    assert 'id="twins"' in page and "src1 is the twin of src0 in class_balance" in page
    console = Console(record=True, width=200)
    print_summary(results, console)
    assert "twin contrasts: 1 pair(s)" in console.export_text()
