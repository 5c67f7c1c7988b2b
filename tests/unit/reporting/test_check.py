"""`harness check`'s comparison, JUnit and Markdown outputs and input errors, on hand-built results dicts."""

from __future__ import annotations

import copy
import json
import xml.etree.ElementTree as ET

import pytest

from harness.reporting.check import CheckError, compare, load_results, to_json, to_junit, to_markdown

SOURCES = ["arith", "senti"]
TARGETS = ["arith", "senti", "nli"]


def cell(value, stderr=0.05):
    return {"value": value, "stderr": stderr}


def results(experiment="demo"):
    """A 3-row (base + 2 adapters) x 3-target run, every cell 0.5 +- 0.05."""
    return {"experiment": experiment, "base_model": {"name": "tiny"}, "sources": list(SOURCES),
            "targets": list(TARGETS), "metrics": {t: "acc,none" for t in TARGETS},
            "base": {t: cell(0.5) for t in TARGETS},
            "scores": {s: {t: cell(0.5) for t in TARGETS} for s in SOURCES}}


def statuses(result):
    return {(c["model"], c["target"]): c["status"] for c in result.cells}


def only(result, model, target):
    [c] = [c for c in result.cells if (c["model"], c["target"]) == (model, target)]
    return c


def test_identical_runs_pass():
    r = compare(results(), results())
    assert r.passed and r.failed == []
    assert len(r.cells) == 9 and set(statuses(r).values()) == {"pass"}
    assert r.summary["pass"] == 9 and sum(r.summary.values()) == 9
    assert to_markdown(r).startswith("**PASS**")
    assert to_json(r)["passed"] is True


def test_doctored_baseline_cell_is_the_one_regression():
    base = results()
    base["scores"]["senti"]["nli"] = cell(0.95)
    r = compare(results(), base)
    assert not r.passed
    assert [(c["model"], c["target"], c["status"]) for c in r.failed] == [("senti", "nli", "regression")]
    assert {k for k, v in statuses(r).items() if v != "pass"} == {("senti", "nli")}
    c = r.failed[0]
    assert c["delta"] == pytest.approx(-0.45) and c["baseline"] == 0.95 and c["current"] == 0.5
    assert c["threshold"] == pytest.approx(1.96 * (2 * 0.05 ** 2) ** 0.5)

    root = ET.fromstring(to_junit(r))
    fails = [tc for tc in root.iter("testcase") if tc.find("failure") is not None]
    assert [(tc.get("classname"), tc.get("name")) for tc in fails] == [("senti", "nli")]
    message = fails[0].find("failure").get("message")
    for part in ("senti / nli", "0.500", "0.950", "-0.450", "0.139"):
        assert part in message

    md = to_markdown(r)
    assert md.startswith("**FAIL**: 1 of 9 cell(s) failed (1 regression)")
    rows = [line for line in md.splitlines() if line.startswith("| ") and "---" not in line][1:]
    assert rows[0].startswith("| senti | nli | acc,none | 0.950 ± 0.050 | 0.500 ± 0.050 | -0.450 | 0.139 | ❌")
    assert len(rows) == 9


def test_drop_within_stderr_is_not_significant():
    base = results()
    base["base"]["nli"] = cell(0.58)  # 0.08 drop < 1.96 * sqrt(2) * 0.05 = 0.139
    r = compare(results(), base, tolerance=0.0)
    assert r.passed and only(r, "base", "nli")["status"] == "pass"
    # Without stderrs the same drop is significant: a null stderr counts as 0.
    cur, base = results(), copy.deepcopy(base)
    cur["base"]["nli"]["stderr"] = None
    base["base"]["nli"]["stderr"] = None
    assert only(compare(cur, base), "base", "nli")["status"] == "regression"
    # z=0 turns the significance test off.
    assert only(compare(results(), base, z=0), "base", "nli")["status"] == "regression"


def test_big_drop_within_tolerance_passes_and_tolerance_and_margin_combine_by_max():
    cur, base = results(), results()
    for c in (cur["base"]["senti"], base["base"]["senti"]):
        c["stderr"] = 0.0
    base["base"]["senti"]["value"] = 0.7  # a 0.2 drop, significant (stderr 0)
    assert only(compare(cur, base, tolerance=0.25), "base", "senti")["status"] == "pass"
    c = only(compare(cur, base, tolerance=0.15), "base", "senti")
    assert c["status"] == "regression" and c["threshold"] == 0.15
    # A drop beyond the tolerance but within the stderr margin passes: it must clear both.
    base2 = results()
    base2["base"]["senti"] = cell(0.6)
    c = only(compare(results(), base2, tolerance=0.05), "base", "senti")
    assert c["status"] == "pass" and c["threshold"] == pytest.approx(c["margin"]) and c["margin"] > 0.1


def test_improvement_is_reported_but_passes():
    cur = results()
    cur["scores"]["arith"]["arith"] = cell(0.9)
    r = compare(cur, results())
    assert r.passed and only(r, "arith", "arith")["status"] == "improved"
    assert r.summary["improved"] == 1 and "⬆️" in to_markdown(r)


def test_missing_and_null_current_cells_fail():
    cur = results()
    cur["scores"]["arith"]["nli"] = None  # scoring failed
    del cur["scores"]["senti"]["senti"]  # absent
    r = compare(cur, results())
    assert not r.passed
    assert {(c["model"], c["target"]) for c in r.failed} == {("arith", "nli"), ("senti", "senti")}
    assert all(c["status"] == "missing" for c in r.failed)
    # A whole source gone: each of its cells is missing.
    cur = results()
    cur["sources"].remove("senti")
    del cur["scores"]["senti"]
    r = compare(cur, results())
    assert sorted(c["target"] for c in r.failed if c["model"] == "senti") == sorted(TARGETS)
    assert "⚠️ missing" in to_markdown(r)


def test_new_cells_and_null_baseline_pass():
    cur = results()
    cur["sources"].append("nli")
    cur["scores"]["nli"] = {t: cell(0.4) for t in TARGETS}
    cur["targets"].append("topic")
    cur["metrics"]["topic"] = "acc,none"
    cur["base"]["topic"] = cell(0.6)
    base = results()
    base["base"]["arith"] = None
    r = compare(cur, base)
    assert r.passed
    st = statuses(r)
    assert st[("nli", "arith")] == "new" and st[("base", "topic")] == "new" and st[("arith", "topic")] == "new"
    assert st[("base", "arith")] == "baseline_missing"
    assert r.summary["new"] == 7  # nli x 4 targets, topic x (base, arith, senti)
    # Null in both: nothing was lost.
    cur2 = results()
    cur2["base"]["arith"] = None
    assert only(compare(cur2, base), "base", "arith")["status"] == "unscored"


def test_metric_change_fails_with_both_names():
    cur = results()
    cur["metrics"]["nli"] = "f1,none"
    r = compare(cur, results())
    assert {(c["model"], c["target"]) for c in r.failed} == {(m, "nli") for m in ["base", *SOURCES]}
    c = r.failed[0]
    assert c["status"] == "metric_changed" and "acc,none" in c["message"] and "f1,none" in c["message"]
    assert "acc,none → f1,none" in to_markdown(r)


def test_base_row_is_compared():
    base = results()
    base["base"]["arith"] = cell(0.9, 0.01)
    r = compare(results(), base)
    assert [(c["model"], c["kind"], c["target"]) for c in r.failed] == [("base", "base", "arith")]


def test_junit_parses_and_counts():
    cur = results()
    cur["scores"]["arith"]["nli"] = None
    base = results()
    base["base"]["senti"] = cell(0.99, 0.0)
    r = compare(cur, base)
    text = to_junit(r, suite_name="gate")
    assert text.startswith('<?xml version="1.0" encoding="UTF-8"?>')
    root = ET.fromstring(text.encode("utf-8"))
    assert root.tag == "testsuites"
    [suite] = root.findall("testsuite")
    assert suite.get("name") == "gate"
    assert (suite.get("tests"), suite.get("failures"), suite.get("errors")) == ("9", "2", "0")
    assert (root.get("tests"), root.get("failures")) == ("9", "2")
    cases = suite.findall("testcase")
    assert len(cases) == 9 and sum(tc.find("failure") is not None for tc in cases) == 2
    assert {tc.find("failure").get("type") for tc in cases if tc.find("failure") is not None} == {"missing",
                                                                                                  "regression"}


HOSTILE = '<script>alert(1)</script> & "x" | y\n\x07'


def test_hostile_names_are_escaped():
    cur, base = results(), results()
    for r in (cur, base):
        r["sources"].append(HOSTILE)
        r["scores"][HOSTILE] = {t: cell(0.5) for t in TARGETS}
    base["scores"][HOSTILE]["nli"] = cell(0.99, 0.0)
    r = compare(cur, base)
    md = to_markdown(r)
    assert "<script>" not in md and "\x07" not in md and "&lt;script&gt;alert(1)&lt;/script&gt; &amp; \"x\" \\| y" in md
    assert all(line.count(" | ") == 7 for line in md.splitlines() if line.startswith("| "))  # no extra columns
    root = ET.fromstring(to_junit(r))
    [failing] = [tc for tc in root.iter("testcase") if tc.find("failure") is not None]
    assert failing.get("classname") == '<script>alert(1)</script> & "x" | y\n\ufffd'  # round trip; BEL replaced
    assert failing.get("name") == "nli"


def test_to_json_is_plain_json():
    base = results()
    base["base"]["nli"] = None
    r = compare(results(), base)
    data = json.loads(json.dumps(to_json(r), allow_nan=False))
    assert data["summary"]["baseline_missing"] == 1 and len(data["cells"]) == 9 and data["failed"] == []
    keys = {"model", "target", "metric", "baseline", "current", "delta", "threshold", "status", "message"}
    assert keys <= set(data["cells"][0])


def test_nan_current_value_counts_as_missing():
    cur = results()
    cur["base"]["nli"] = cell(float("nan"))
    assert only(compare(cur, results()), "base", "nli")["status"] == "missing"


# --- input errors ----------------------------------------------------------------------------------

def test_load_results_from_folder_and_file(tmp_path):
    (tmp_path / "results.json").write_text(json.dumps(results()))
    assert load_results(tmp_path) == load_results(tmp_path / "results.json") == results()


def test_check_errors(tmp_path):
    with pytest.raises(CheckError, match=r"no results\.json.*finished `harness run`"):
        load_results(tmp_path, role="current run")
    with pytest.raises(CheckError, match="no such file or folder"):
        load_results(tmp_path / "nope.json")
    bad = tmp_path / "bad.json"
    bad.write_text('{"experiment": ')
    with pytest.raises(CheckError, match=r"bad\.json:1:\d+: the baseline is not valid JSON"):
        load_results(bad, role="baseline")
    other = tmp_path / "package.json"
    other.write_text(json.dumps({"name": "x", "version": "1"}))
    with pytest.raises(CheckError) as exc:
        load_results(other, role="baseline")
    assert "package.json" in str(exc.value) and "not a results.json" in str(exc.value)
    assert "sources, targets, metrics, base, scores" in str(exc.value) and "harness run" in str(exc.value)
    listing = tmp_path / "list.json"
    listing.write_text("[1, 2]")
    with pytest.raises(CheckError, match="top level is a JSON array"):
        load_results(listing)
    broken = results()
    broken["scores"]["arith"]["nli"] = {"value": "high"}
    with pytest.raises(CheckError, match=r"scores\.arith\.nli\.value of the baseline should be a number"):
        compare(results(), broken)
    with pytest.raises(CheckError, match="non-negative"):
        compare(results(), results(), tolerance=-0.1)
    with pytest.raises(CheckError, match="non-negative"):
        compare(results(), results(), tolerance=float("nan"))
