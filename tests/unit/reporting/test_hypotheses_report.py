"""results["hypotheses"] in the schema, report.md, report.html, the console and `harness report`."""

from __future__ import annotations

import copy
import json

import jsonschema
import pytest
from rich.console import Console

from harness.cli import main
from harness.reporting import html as htmlreport
from harness.reporting.console import print_analysis
from harness.reporting.markdown import markdown
from harness.reporting.results_schema import validate_results
from helpers import HOSTILE, Structure, make_results

ITEMS = [
    {"id": "H1", "claim": "Class distribution biases labels.", "test": "twin contrasts of majority_bias",
     "effect": {"name": "majority_bias difference", "value": 0.4, "ci": [0.3, 0.5]}, "p": 0.002, "q": 0.004,
     "verdict": "supported", "reason": f"all 1 significant contrast(s) go the predicted way {HOSTILE}"},
    {"id": "H5", "claim": "A few stable abilities.", "test": "parallel analysis",
     "effect": {"name": "components retained by parallel analysis", "value": 0, "ci": None}, "p": None, "q": None,
     "verdict": "not supported", "reason": "parallel analysis keeps no component"},
]


@pytest.fixture(scope="module")
def results():
    res = make_results()
    res["hypotheses"] = copy.deepcopy(ITEMS)
    return res


def test_the_schema_accepts_hypotheses_and_refuses_a_bad_verdict_or_their_absence(results):
    validate_results(results)
    assert [h["id"] for h in make_results()["hypotheses"]] == ["H1", "H2", "H3", "H4", "H5"]  # from the analysis
    bad = copy.deepcopy(results)
    bad["hypotheses"][0]["verdict"] = "probably"
    with pytest.raises(jsonschema.ValidationError, match="probably"):
        validate_results(bad)
    missing = {k: v for k, v in results.items() if k != "hypotheses"}
    with pytest.raises(jsonschema.ValidationError, match="hypotheses"):
        validate_results(missing)


def test_markdown_section_after_the_transfer_table(results):
    text = markdown(results)
    assert text.index("## Transfer") < text.index("## Hypotheses") < text.index("## Latent abilities")
    assert ("| H1 | Class distribution biases labels. | +0.400 \\[+0.300, +0.500\\] (majority_bias difference) | "
            "0.002 | 0.004 | **supported** |") in text
    assert "| H5 | A few stable abilities. | 0 (components retained by parallel analysis) | n/a | n/a | **not supported** |" in text
    assert "- **H5** (not supported): parallel analysis keeps no component. *Test:* parallel analysis." in text
    assert HOSTILE not in text  # reasons are escaped


def test_html_section_is_escaped_and_well_formed(results):
    text = htmlreport.render(results, [])
    parser = Structure()
    parser.feed(text)
    assert parser.errors == [] and parser.stack == []
    start = text.index('id="hypotheses"')
    assert text.index('<section id="transfer">') < start < text.index('<section id="base">')
    assert "<td>+0.400 [+0.300, +0.500] (majority_bias difference)</td>" in text[start:]
    assert '<td class="verdict">not supported</td>' in text and HOSTILE not in text


def test_console_prints_one_line_per_hypothesis(results):
    console = Console(record=True, width=300)
    print_analysis(results, console)
    lines = [line for line in console.export_text().splitlines() if line.startswith(("H1 ", "H5 "))]
    assert lines[0].startswith("H1 supported: effect +0.400 [+0.300, +0.500]") and HOSTILE in lines[0]
    assert lines[1].startswith("H5 not supported:")


def test_report_command_tests_hypotheses_of_an_older_results_json(tmp_path, capsys):
    old = {k: v for k, v in make_results().items() if k != "hypotheses"}
    (tmp_path / "results.json").write_text(json.dumps(old))
    assert main(["report", str(tmp_path)]) == 0
    assert "## Hypotheses" in (tmp_path / "report.md").read_text()
