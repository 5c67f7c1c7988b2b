"""``harness check`` and ``$GITHUB_STEP_SUMMARY``: the Markdown diff appended (never truncating what
earlier steps wrote), with ``--json`` too; nothing written when the variable is unset; a summary
file that cannot be written warns and leaves the gate's exit code alone."""

from __future__ import annotations

import json

import pytest

from harness.cli import main
from helpers import make_results


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A current results.json and a baseline where src2 on nli scored 0.5 higher (a regression now)."""
    folder = tmp_path_factory.mktemp("summary")
    results = make_results()
    (folder / "current.json").write_text(json.dumps(results))
    baseline = json.loads(json.dumps(results))
    baseline["scores"]["src2"]["nli"]["value"] += 0.5
    (folder / "baseline.json").write_text(json.dumps(baseline))
    return folder


def test_the_diff_is_appended_after_what_earlier_steps_wrote(runs, tmp_path, monkeypatch, capsys):
    summary = tmp_path / "step_summary.md"
    summary.write_text("## Tests\n\nall green\n")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    assert main(["check", str(runs / "current.json"), "--baseline", str(runs / "current.json")]) == 0
    assert main(["check", str(runs / "current.json"), "--baseline", str(runs / "baseline.json")]) == 1
    printed = capsys.readouterr().out
    text = summary.read_text()
    assert text.startswith("## Tests\n\nall green\n")  # appended, as GitHub documents: not truncated
    first, second = text.split("### harness check: ")[1:]
    assert first.startswith(f"{runs / 'current.json'} against {runs / 'current.json'}") and "**PASS**" in first
    assert "**FAIL**: 1 of" in second and "| src2 | nli |" in second and "❌ regression" in second
    assert second.split("\n\n", 1)[1].strip() in printed  # the same table the terminal shows


def test_json_output_still_writes_markdown_to_the_summary(runs, tmp_path, monkeypatch, capsys):
    summary = tmp_path / "summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    assert main(["check", str(runs / "current.json"), "--baseline", str(runs / "baseline.json"), "--json"]) == 1
    assert json.loads(capsys.readouterr().out)["passed"] is False  # stdout stays JSON
    assert "**FAIL**" in summary.read_text() and "| model | target |" in summary.read_text()


def test_nothing_is_written_without_the_variable(runs, tmp_path, monkeypatch):
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    monkeypatch.chdir(tmp_path)
    assert main(["check", str(runs / "current.json"), "--baseline", str(runs / "current.json")]) == 0
    assert list(tmp_path.iterdir()) == []


def test_an_unwritable_summary_warns_and_keeps_the_verdict(runs, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(tmp_path))  # a folder: cannot be opened for appending
    assert main(["check", str(runs / "current.json"), "--baseline", str(runs / "baseline.json")]) == 1
    assert main(["check", str(runs / "current.json"), "--baseline", str(runs / "current.json")]) == 0
    err = capsys.readouterr().err
    assert "cannot append the diff to $GITHUB_STEP_SUMMARY" in err and "Traceback" not in err
