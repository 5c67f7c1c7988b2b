"""The CI benchmarking flow of examples/ci/ end to end, on a tiny random Llama: the suite (no
sources) scores the base model alone and skips the analyses with a reason; `harness check` passes a
model equal to the baseline's (exit 0) and fails a collapsed one (exit 1), with the JUnit file and
the $GITHUB_STEP_SUMMARY diff saying which cell; the workflow parses and names its steps.

The suite gets one target of its own here, `probe`: a one-token answer against a six-token one,
the short one gold in three rows of four. Any ordinary model puts a far higher loglikelihood on one
token than on six, so the random base scores exactly 0.75; the collapsed candidate (every position
predicts " the") puts probability ~1 on "the the the the the the" and scores 0.25: a drop no
stderr explains, whatever the random weights.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml

from harness.analysis.applicability import NO_SOURCES
from harness.reporting.results_schema import validate_results
from helpers import ROOT

SUITE = ROOT / "examples" / "ci" / "suite.yaml"
WORKFLOW = ROOT / "examples" / "ci" / "benchmark.yml"
OFFLINE = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
OFFLINE.pop("GITHUB_STEP_SUMMARY", None)  # a test sets its own; never the real job's page
PROBE = {"task": "file", "alias": "probe", "limit": 32, "options": {
    "text_columns": ["question"], "label_column": "label", "labels": ["yes", "the the the the the the"],
    "template": "{{question}}\nAnswer:"}}


def harness(*args, cwd, summary: Path | None = None):
    env = {**OFFLINE, **({"GITHUB_STEP_SUMMARY": str(summary)} if summary else {})}
    return subprocess.run([sys.executable, "-m", "harness.cli", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=600)


def write_suite(folder: Path, model_dir: Path, name: str, tracking: dict | None = None) -> Path:
    """examples/ci/suite.yaml on the tiny model, smaller, with the probe target; runs in ``folder``."""
    registry = yaml.safe_load(SUITE.read_text())
    registry.update(experiment=name, base_model={"path": str(model_dir)}, output_dir=str(folder / "runs"),
                    cache_dir=str(folder / "cache"), evaluation={"batch_size": 8})
    for use in registry["targets"]:
        use["limit"] = 4 if use["task"] == "arithmetic" else 12
    rows = folder / "probe.jsonl"
    if not rows.exists():
        rows.write_text("".join(json.dumps({"question": f"Is {i} a number?", "label": int(i % 4 == 3)}) + "\n"
                                for i in range(32)))
    registry["targets"].append({**PROBE, "options": {**PROBE["options"], "data_files": {"test": str(rows)}}})
    if tracking:
        registry["tracking"] = tracking
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(registry, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def models(tiny_model_dir, tmp_path_factory):
    """Candidate checkpoints: ``equal`` (the base's files, another folder) and ``collapsed``."""
    import torch
    from transformers import AutoTokenizer, LlamaForCausalLM

    root = tmp_path_factory.mktemp("checkpoints")
    equal = root / "equal"
    shutil.copytree(tiny_model_dir, equal)
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    config = LlamaForCausalLM.from_pretrained(tiny_model_dir).config
    config.tie_word_embeddings = False  # its own output head: one row, for " the", is all it has
    collapsed = LlamaForCausalLM(config)
    with torch.no_grad():
        # Every token embeds to the same vector and every layer adds nothing, so each position's
        # hidden state is that vector; the head maps it onto " the" alone.
        for param in collapsed.parameters():
            param.zero_()
        collapsed.model.embed_tokens.weight.fill_(1.0)
        for norm in [collapsed.model.norm, *(n for layer in collapsed.model.layers
                                             for n in (layer.input_layernorm, layer.post_attention_layernorm))]:
            norm.weight.fill_(1.0)
        collapsed.lm_head.weight[tok(" the")["input_ids"][-1]] = 1.0
    collapsed.save_pretrained(root / "collapsed")
    tok.save_pretrained(root / "collapsed")
    return {"base": tiny_model_dir, "equal": equal, "collapsed": root / "collapsed"}


@pytest.fixture(scope="module")
def baseline(models, tmp_path_factory):
    """The suite run on the base model alone, tracked in a local MLflow file store."""
    folder = tmp_path_factory.mktemp("ci")
    path = write_suite(folder, models["base"], "baseline", tracking={"mlflow": {"tracking_uri": "file:./mlruns"}}
                       if _has("mlflow") else None)
    out = harness("run", str(path), "--quiet", cwd=folder)
    assert out.returncode == 0, out.stderr[-3000:]
    return folder, folder / "runs" / "baseline"


def _has(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def junit_cases(path: Path) -> dict[tuple[str, str], ET.Element]:
    return {(case.get("classname"), case.get("name")): case for case in ET.parse(path).getroot().iter("testcase")}


def test_the_example_suite_validates_and_plans_the_base_model_alone():
    assert yaml.safe_load(SUITE.read_text())["sources"] == []
    out = harness("validate", str(SUITE), cwd=ROOT)
    assert out.returncode == 0 and "0 sources, 4 targets" in out.stdout + out.stderr, out.stderr
    dry = harness("run", str(SUITE), "--dry-run", cwd=ROOT)
    assert dry.returncode == 0, dry.stderr
    assert "0 of 0 adapters and 4 of 4 cells would run" in dry.stdout


def test_a_suite_without_sources_scores_the_base_and_skips_the_analyses(baseline, monkeypatch):
    folder, run_dir = baseline
    results = json.loads((run_dir / "results.json").read_text())
    validate_results(results)
    assert results["sources"] == [] and results["scores"] == {} and results["failures"] == []
    assert results["targets"] == ["arithmetic", "sentiment", "nli", "topic", "probe"]
    assert all(results["base"][t] is not None for t in results["targets"])
    assert results["base"]["probe"]["value"] == 0.75  # one token beats six: right wherever the short one is gold
    assert results["decompositions"] == {} and results["cell_tests"] is None and results["prediction"] is None
    skipped = {item["analysis"]: item["reason"] for item in results["skipped"]}
    assert set(skipped) >= {"decompose", "cell_tests", "prediction", "target_trait_tests"}
    assert set(skipped.values()) == {NO_SOURCES}
    assert "No transfer to show: no sources" in (run_dir / "report.md").read_text()
    assert "No transfer to show: no sources" in (run_dir / "report.html").read_text()
    assert (run_dir / "samples" / "base" / "probe.jsonl").is_file()
    if not _has("mlflow"):
        pytest.skip('the tracking extra is not installed (pip install "transfer-harness[tracking]"): '
                    "MLflow logging of the suite not checked")
    from mlflow.tracking import MlflowClient

    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # MLflow 3 reads its file store only when asked to
    tracked = results["provenance"]["tracking"]["mlflow"]
    client = MlflowClient(tracking_uri=tracked["tracking_uri"])
    assert tracked["tracking_uri"] == (folder / "mlruns").as_uri()  # relative to the registry file
    metrics = client.get_run(tracked["run_id"]).data.metrics
    assert {t: metrics[f"score/base/{t}"] for t in results["targets"]} == {
        t: results["base"][t]["value"] for t in results["targets"]}
    assert "report.html" in {f.path for f in client.list_artifacts(tracked["run_id"])}


def test_the_gate_passes_an_equal_model_and_fails_a_collapsed_one(baseline, models):
    """Works without --checkpoint: the candidate is the suite's base model, checked against the
    baseline's base row (how a suite gates a base model that changes each commit)."""
    folder, run_dir = baseline
    summary = folder / "step_summary.md"
    summary.write_text("## Earlier step\n")
    for name, expected in (("equal", 0), ("collapsed", 1)):
        path = write_suite(folder, models[name], name)
        run = harness("run", str(path), "--quiet", cwd=folder)
        assert run.returncode == 0, run.stderr[-3000:]
        junit = folder / f"{name}.xml"
        check = harness("check", str(folder / "runs" / name), "--baseline", str(run_dir / "results.json"),
                        "--junit", str(junit), cwd=folder, summary=summary)
        assert check.returncode == expected, check.stdout + check.stderr
        cases = junit_cases(junit)
        assert set(cases) == {("base", t) for t in ("arithmetic", "sentiment", "nli", "topic", "probe")}
        failed = {key for key, case in cases.items() if case.find("failure") is not None}
        if name == "equal":
            assert failed == set() and "**PASS**: 5 cell(s) checked" in check.stdout
        else:
            assert ("base", "probe") in failed and cases["base", "probe"].find("failure").get("type") == "regression"
            assert "base / probe regressed: current 0.250 vs baseline 0.750" in cases["base", "probe"].find(
                "failure").get("message")
    text = summary.read_text()
    assert text.startswith("## Earlier step\n") and text.count("### harness check: ") == 2
    passed, failed_part = text.split("### harness check: ")[1:]
    assert "**PASS**" in passed and "**FAIL**" in failed_part and "| base | probe |" in failed_part


def test_the_documented_flow_with_a_candidate_checkpoint(baseline, models):
    """`harness run SUITE --checkpoint candidate=DIR` for the baseline (a checkpoint equal to the
    base) and for each candidate, then `harness check`: the candidate's row is what is gated."""
    folder, _ = baseline
    path = write_suite(folder, models["base"], "suite")
    base_run = harness("run", str(path), "--checkpoint", f"candidate={models['equal']}", "--out",
                       str(folder / "flow" / "baseline"), "--quiet", cwd=folder)
    assert base_run.returncode == 0, base_run.stderr[-3000:]
    reference = folder / "flow" / "baseline" / "suite" / "results.json"
    for name, expected in (("equal", 0), ("collapsed", 1)):
        out_dir = folder / "flow" / name
        run = harness("run", str(path), "--checkpoint", f"candidate={models[name]}", "--out", str(out_dir),
                      "--quiet", cwd=folder)
        assert run.returncode == 0, run.stderr[-3000:]
        junit = out_dir / "junit.xml"
        check = harness("check", str(out_dir / "suite"), "--baseline", str(reference), "--junit", str(junit),
                        cwd=folder, summary=out_dir / "summary.md")
        assert check.returncode == expected, check.stdout + check.stderr
        cases = junit_cases(junit)
        assert ("candidate", "probe") in cases and ("base", "probe") in cases
        failed = {key for key, case in cases.items() if case.find("failure") is not None}
        assert not {key for key in failed if key[0] == "base"}  # the base row is the same model each time
        assert (("candidate", "probe") in failed) == (name == "collapsed")
        assert ("**FAIL**" if expected else "**PASS**") in (out_dir / "summary.md").read_text()


def test_the_workflow_runs_the_documented_flow():
    workflow = yaml.safe_load(WORKFLOW.read_text())
    triggers = workflow.get("on", workflow.get(True))  # YAML 1.1 reads a bare `on` key as true
    assert {"workflow_dispatch", "workflow_call"} <= set(triggers)
    assert {"checkpoint", "baseline"} <= set(triggers["workflow_dispatch"]["inputs"])
    assert (ROOT / workflow["env"]["SUITE"]).resolve() == SUITE.resolve()
    steps = workflow["jobs"]["benchmark"]["steps"]
    by_name = {step["name"]: step for step in steps}
    assert list(by_name) == ["Check out", "Set up Python", "Install the harness", "Restore the harness cache",
                             "Fetch the checkpoints", "Score the baseline", "Score the candidate",
                             "Gate against the baseline", "Upload the JUnit file and the report",
                             "Publish the JUnit result"]
    assert '--checkpoint candidate="$BASELINE_DIR"' in by_name["Score the baseline"]["run"]
    assert '--checkpoint candidate="$CANDIDATE_DIR"' in by_name["Score the candidate"]["run"]
    gate = by_name["Gate against the baseline"]
    assert gate["run"].startswith("harness check runs/candidate/ci-suite --baseline runs/baseline/ci-suite/results.json")
    assert "--junit junit.xml" in gate["run"] and gate["if"] == "${{ !cancelled() }}"
    upload = by_name["Upload the JUnit file and the report"]
    assert upload["uses"].startswith("actions/upload-artifact@")
    assert {"junit.xml", "runs/candidate/ci-suite/report.html"} <= set(upload["with"]["path"].split())
    assert by_name["Publish the JUnit result"]["with"]["report_paths"] == "junit.xml"
    assert by_name["Restore the harness cache"]["with"]["path"] == "~/.cache/transfer-harness"
    assert yaml.safe_load(SUITE.read_text())["experiment"] == "ci-suite"  # the folder the steps name
