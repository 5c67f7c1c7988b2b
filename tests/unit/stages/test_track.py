"""The tracking stage: every cell as a metric and the run folder as artifacts, in a local MLflow file
store (read back with MLflow's client) and in an offline W&B run (read back from its record file);
a tracker that fails is a failure record that keeps the run folder; a missing extra is refused at
validate time with the field, and how to install it."""

from __future__ import annotations

import importlib.util
import json
import math
import struct
import time
from pathlib import Path

import pytest
from rich.console import Console

from harness.config.registry import MlflowSettings, Registry, WandbSettings, parse_registry
from harness.errors import RegistryError
from harness.stages import track
from harness.stages.report import write_reports
from helpers import make_results

mlflow = pytest.importorskip("mlflow", reason='the tracking extra is not installed (pip install "transfer-harness[tracking]")')

REGISTRY = """\
experiment: synthetic
base_model: {path: /nowhere}
targets: [{task: sentiment}]
"""


@pytest.fixture(scope="module")
def results():
    return make_results()


@pytest.fixture
def run_dir(tmp_path, results):
    """A finished run folder: results.json and the reports written from it."""
    folder = tmp_path / "runs" / "synthetic"
    write_reports(folder, results)
    (folder / "results.json").write_text(json.dumps(results))
    return folder


def registry(tracking: dict) -> Registry:
    return Registry.model_validate({"experiment": "synthetic", "base_model": {"path": "/nowhere"},
                                   "targets": [{"task": "sentiment"}], "tracking": tracking})


def test_every_scored_cell_becomes_a_score_stderr_and_delta_metric(results):
    metrics = track.cell_metrics(results)
    n_sources, n_targets = len(results["sources"]), len(results["targets"])
    assert len(metrics) == 2 * n_targets + 3 * n_sources * n_targets  # base: no delta against itself
    assert metrics["score/base/add"] == results["base"]["add"]["value"]
    assert metrics["stderr/src1/nli"] == results["scores"]["src1"]["nli"]["stderr"]
    assert metrics["delta/src1/nli"] == pytest.approx(results["transfer"]["src1"]["nli"])
    # No name is a prefix of another: MLflow's file store keeps each metric in a file at that path.
    assert not any(b.startswith(a + "/") for a in metrics for b in metrics)

    broken = json.loads(json.dumps(results))
    broken["scores"]["src0"]["add"] = None  # failed: left out, not logged as 0
    broken["scores"]["src1"]["add"]["value"] = math.nan
    broken["transfer"]["src0"]["add"] = None
    broken["targets"].append("lm/eval task")
    broken["base"]["lm/eval task"] = {"value": 0.5, "stderr": None}
    metrics = track.cell_metrics(broken)
    assert not {"score/src0/add", "delta/src0/add", "score/src1/add"} & set(metrics)
    assert metrics["score/base/lm_eval task"] == 0.5 and "stderr/base/lm_eval task" not in metrics


def test_mlflow_file_store_holds_every_cell_and_the_run_folder(results, run_dir, tmp_path, monkeypatch):
    from mlflow.tracking import MlflowClient

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    settings = MlflowSettings(tracking_uri="file:./mlruns", run_name="nightly", tags={"commit": "abc123"})
    logged = track.log_mlflow(settings, results, run_dir, here=tmp_path)  # relative to the registry's folder
    assert logged["tracking_uri"] == (tmp_path / "mlruns").as_uri() and (tmp_path / "mlruns").is_dir()

    client = MlflowClient(tracking_uri=logged["tracking_uri"])
    run = client.get_run(logged["run_id"])
    assert run.info.status == "FINISHED" and run.info.run_name == "nightly"
    assert run.info.experiment_id == client.get_experiment_by_name("synthetic").experiment_id
    expected = {**track.cell_metrics(results), "failures": 0.0}
    assert run.data.metrics == pytest.approx(expected)
    assert run.data.params["targets"] == ",".join(results["targets"])
    assert run.data.params["metric/add"] == "acc,none" and run.data.params["version/lm_eval"] == "0"
    assert run.data.tags["commit"] == "abc123" and run.data.tags["harness.run_dir"] == str(run_dir)
    artifacts = {f.path for f in client.list_artifacts(logged["run_id"])}
    assert {"results.json", "report.html", "report.md", "plots"} <= artifacts
    local = Path(client.download_artifacts(logged["run_id"], "results.json", str(tmp_path)))
    assert json.loads(local.read_text()) == results

    again = track.log_mlflow(settings, results, run_dir, here=tmp_path)  # the same experiment, a second run
    assert again["experiment_id"] == logged["experiment_id"] and again["run_id"] != logged["run_id"]


def test_a_failing_tracker_is_recorded_and_the_run_folder_kept(results, run_dir, tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the store's folder should be")
    reg = registry({"mlflow": {"tracking_uri": f"file:{blocker}/mlruns"}})
    before = {p.name for p in run_dir.iterdir()}
    failures = track.track_stage(reg, json.loads(json.dumps(results)), run_dir, tmp_path / "registry.yaml",
                                 Console(quiet=True))
    assert [(f["stage"], f["tracker"]) for f in failures] == [("tracking", "mlflow")]
    written = json.loads((run_dir / "results.json").read_text())
    assert written["failures"] == [{k: v for k, v in failures[0].items() if k != "traceback"}]
    assert written["provenance"]["tracking"] == {} and written["scores"] == results["scores"]
    assert "- tracking: tracker=mlflow" in (run_dir / "report.md").read_text()  # the report says so too
    assert {p.name for p in run_dir.iterdir()} == before  # nothing lost


def test_no_tracking_section_does_nothing(results, run_dir):
    mtime = (run_dir / "results.json").stat().st_mtime_ns
    assert track.track_stage(registry({}), results, run_dir, None, Console(quiet=True)) == []
    assert (run_dir / "results.json").stat().st_mtime_ns == mtime


def wandb_records(run_file: Path) -> list:
    """The protobuf records of an offline W&B run file (LevelDB log format: 32 KiB blocks, records
    of crc32, length, type; after a 7-byte ':W&B' header). wandb reads these in Go now."""
    from wandb.proto import wandb_internal_pb2 as pb

    data, records, chunks, pos = run_file.read_bytes(), [], b"", 7
    assert data[:4] == b":W&B"
    while pos + 7 <= len(data):
        if 32768 - pos % 32768 < 7:  # a block's tail too short for a header is padding
            pos += 32768 - pos % 32768
            continue
        _, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
        if kind == 0 or pos + 7 + length > len(data):  # zeros, or a record still being written
            break
        chunks += data[pos + 7:pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):  # full, or the last piece of a record split over blocks
            record = pb.Record()
            record.ParseFromString(chunks)
            records.append(record)
            chunks = b""
    return records


def test_wandb_offline_run_holds_every_cell_and_the_run_folder(results, run_dir, tmp_path):
    if importlib.util.find_spec("wandb") is None:
        pytest.skip('wandb is not installed (pip install "transfer-harness[tracking]")')
    logged = track.log_wandb(WandbSettings(mode="offline", dir="wb", tags=["ci"]), results, run_dir, here=tmp_path)
    run_files = list((tmp_path / "wb" / "wandb").glob(f"offline-run-*-{logged['run_id']}/run-{logged['run_id']}.wandb"))
    assert logged["mode"] == "offline" and len(run_files) == 1
    records = wandb_records(run_files[0])
    deadline = time.monotonic() + 60
    # wandb's service process writes the file after the run returns: wait for its last record.
    while not any(r.WhichOneof("record_type") == "exit" for r in records) and time.monotonic() < deadline:
        time.sleep(0.5)
        records = wandb_records(run_files[0])
    history = {}
    for r in records:
        if r.WhichOneof("record_type") == "history":
            history.update({item.key or "/".join(item.nested_key): json.loads(item.value_json) for item in r.history.item})
    expected = track.cell_metrics(results)
    assert {k: history[k] for k in expected} == pytest.approx(expected) and history["failures"] == 0
    run = next(r.run for r in records if r.WhichOneof("record_type") == "run")
    assert run.project == "synthetic" and list(run.tags) == ["ci"]
    config = {item.key: json.loads(item.value_json) for item in run.config.update}
    assert config["targets"] == ",".join(results["targets"])
    artifact = next(r.artifact for r in records if r.WhichOneof("record_type") == "artifact")
    assert artifact.type == "harness-run" and artifact.name == "synthetic-run"
    assert {"results.json", "report.html", "report.md"} <= {entry.path for entry in artifact.manifest.contents}


@pytest.mark.parametrize("section, module", [("mlflow", "mlflow"), ("wandb", "wandb")])
def test_a_missing_extra_is_refused_at_validate_time(section, module, monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == module else real(name, *a))
    text = REGISTRY + f"tracking:\n  {section}: {{}}\n"
    with pytest.raises(RegistryError) as caught:
        parse_registry(text, "suite.yaml")
    [problem] = caught.value.problems
    assert problem.path == f"tracking.{section}" and problem.line == 5
    assert f"needs the {module} package" in problem.message
    assert 'pip install "transfer-harness[tracking]"' in problem.message
