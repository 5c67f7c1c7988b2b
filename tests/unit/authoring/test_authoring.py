"""Authoring tools: `harness new-task` scaffolds an installable plugin, `harness export-task`
writes an lm-eval YAML that lm-eval loads with the task's own docs and prompts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from harness.api import plugins
from harness.authoring.conformance import build_lm_eval_task
from harness.cli import main
from helpers import ROOT, SHARED_DATA, pip_install

SST2_TEST = SHARED_DATA / "sst2" / "test.tsv"


def _cli(*args: str, env: dict | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "harness.cli", *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, cwd=cwd or ROOT, timeout=300)


# --- new-task -------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def installed_scaffold(tmp_path_factory):
    """`harness new-task demo_parity`, pip-installed (no deps) into a private target folder."""
    tmp = tmp_path_factory.mktemp("authoring")
    pkg = tmp / "harness-task-demo_parity"
    assert main(["new-task", "demo_parity", "--dir", str(pkg)]) == 0
    site = tmp / "site"
    pip_install(pkg, site)
    return pkg, site


def test_scaffold_layout(installed_scaffold):
    pkg, _ = installed_scaffold
    for rel in ("pyproject.toml", "README.md", "harness_task_demo_parity/__init__.py",
                "harness_task_demo_parity/task.py", "tests/test_task.py"):
        assert (pkg / rel).is_file(), rel
    pyproject = (pkg / "pyproject.toml").read_text()
    assert 'name = "harness-task-demo_parity"' in pyproject
    assert '"transfer-harness"' in pyproject and "setuptools" in pyproject
    assert '[project.entry-points.harness]\ndemo_parity = "harness_task_demo_parity.task"' in pyproject
    assert "check_task" in (pkg / "tests/test_task.py").read_text()


def test_installed_scaffold_is_listed_with_its_distribution(installed_scaffold):
    _, site = installed_scaffold
    env = {"PYTHONPATH": str(site), "HARNESS_LOAD_PLUGINS": "transfer-harness,harness-task-demo_parity"}
    done = _cli("plugins", "--kind", "task", "--json", env=env)
    assert done.returncode == 0, done.stderr
    rows = {r["name"]: r for r in json.loads(done.stdout)}
    assert rows["demo_parity"]["distribution"] == "harness-task-demo_parity"
    assert rows["demo_parity"]["module"] == "harness_task_demo_parity.task"
    assert rows["demo_parity"]["task_kind"] == "multiple_choice" and rows["demo_parity"]["abilities"]
    assert "sentiment" in rows  # the built-ins still load beside it


def test_installed_scaffold_passes_its_own_tests(installed_scaffold):
    pkg, site = installed_scaffold
    env = {**os.environ, "PYTHONPATH": str(site)}
    env.pop("HARNESS_LOAD_PLUGINS", None)
    done = subprocess.run([sys.executable, "-m", "pytest", str(pkg / "tests"), "-q", "-p", "no:cacheprovider"],
                          capture_output=True, text=True, env=env, cwd=pkg, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "3 passed" in done.stdout


def test_new_task_refuses_bad_names_existing_dirs_and_taken_names(tmp_path, capsys):
    assert main(["new-task", "not-an-identifier", "--dir", str(tmp_path / "a")]) == 2
    assert "Python identifier" in capsys.readouterr().err
    assert not (tmp_path / "a").exists()
    (tmp_path / "b").mkdir()
    assert main(["new-task", "fresh_task", "--dir", str(tmp_path / "b")]) == 2
    assert "already exists" in capsys.readouterr().err
    assert list((tmp_path / "b").iterdir()) == []
    assert main(["new-task", "sentiment", "--dir", str(tmp_path / "c")]) == 2
    assert "already registered" in capsys.readouterr().err


def test_new_task_default_directory(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["new-task", "keyword_demo"]) == 0
    assert capsys.readouterr().out.strip() == str(tmp_path / "harness-task-keyword_demo")
    assert (tmp_path / "harness-task-keyword_demo" / "harness_task_keyword_demo" / "task.py").is_file()


# --- export-task ----------------------------------------------------------------------------

def _load_export(path: Path):
    task = build_lm_eval_task(path)
    return task, [dict(d) for d in task.test_docs()]


@pytest.mark.parametrize("name, options", [("sentiment", ["class_balance=0.25"]),
                                           ("arithmetic", ["digits=3", "operators=['*']"])])
def test_export_generated_task_loads_in_lm_eval(tmp_path, capsys, name, options):
    out = tmp_path / "exports" / f"{name}.yaml"
    args = ["export-task", name, "-o", str(out), "--limit", "12"]
    for option in options:
        args += ["--option", option]
    assert main(args) == 0
    captured = capsys.readouterr()
    assert captured.out.strip() == str(out)
    assert "lm_eval --model hf" in captured.err and f"--tasks {out}" in captured.err

    config = yaml.safe_load(out.read_text())
    data = Path(config["dataset_kwargs"]["data_files"]["test"])
    assert data.is_absolute() and data.parent == out.parent and data.suffix == ".jsonl"

    cls = plugins.catalog().get("task", name).obj
    task = cls(**{k: yaml.safe_load(v) for k, v in (o.split("=", 1) for o in options)})
    expected = task.examples("test", 12)
    lm_task, docs = _load_export(out)
    assert lm_task.config.task == name
    assert len(docs) == 12
    assert lm_task.doc_to_text(docs[0]) == expected[0].prompt
    assert [lm_task.doc_to_text(d) for d in docs] == [ex.prompt for ex in expected]
    # The same config the harness evaluates with, written out.
    # The harness's config, plus the one key that keeps shots (should anyone ask for them) off the
    # scored document: the export holds test rows only.
    assert config == task.lm_eval_config(tmp_path / "scratch", 12) | {
        "dataset_kwargs": config["dataset_kwargs"], "fewshot_split": "test"}


def test_export_defaults_to_name_yaml_in_cwd_and_100_rows(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["export-task", "nli"]) == 0
    out = tmp_path / "nli.yaml"
    assert capsys.readouterr().out.strip() == str(out)
    _, docs = _load_export(out)
    assert len(docs) == 100


@pytest.mark.skipif(not SST2_TEST.is_file(), reason=f"{SST2_TEST} is absent (../shared/data beside the checkout)")
def test_export_sst2_includes_lm_evals_yaml_and_builds(tmp_path, capsys):
    out = tmp_path / "sst2.yaml"
    assert main(["export-task", "sst2", "--data", str(SST2_TEST), "-o", str(out), "--limit", "25"]) == 0
    capsys.readouterr()
    config = yaml.safe_load(out.read_text())
    assert Path(config["include"]).is_absolute() and config["include"].endswith("glue/sst2/default.yaml")
    assert config["dataset_path"] == "json" and config["test_split"] == "test"
    assert config["validation_split"] is None and config["dataset_name"] is None
    assert "doc_to_text" not in config  # lm-eval's own prompt, by inclusion

    lm_task, docs = _load_export(out)
    assert len(docs) == 25
    task = plugins.catalog().get("task", "sst2").obj(data_files={"test": str(SST2_TEST)})
    first = task.examples("test", 1)[0]
    assert lm_task.doc_to_text(docs[0]) == first.prompt
    assert lm_task.doc_to_choice(docs[0]) == ["negative", "positive"]
    reference = build_lm_eval_task(task.lm_eval_config(tmp_path / "ref", 25))
    assert [dict(d) for d in reference.test_docs()] == docs
    assert lm_task.config.validation_split is None and lm_task.config.training_split is None


@pytest.mark.parametrize("args, message", [
    (["export-task", "sentimnet"], "did you mean 'sentiment'?"),
    (["export-task", "arithmetic", "--option", "digits=99"], "digits"),
    (["export-task", "arithmetic", "--option", "no_such_option=1"], "no_such_option"),
    (["export-task", "arithmetic", "--option", "digits"], "KEY=VALUE"),
    (["export-task", "arithmetic", "--data", "x.tsv"], "only for tasks read from local files"),
    (["export-task", "arithmetic", "--limit", "0"], "--limit"),
    (["export-task", "sst2"], "--data"),
    (["export-task", "sst2", "--data", "/no/such/file.tsv"], "no such file"),
])
def test_export_errors_exit_2(tmp_path, capsys, args, message):
    assert main([*args, "-o", str(tmp_path / "out.yaml")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err, err
    assert not (tmp_path / "out.yaml").exists()


def test_export_bad_data_rows_exit_2(tmp_path, capsys):
    bad = tmp_path / "bad.tsv"
    bad.write_text("sentence\tlabel\ngood film\t1\nbad film\t7\n")
    assert main(["export-task", "sst2", "--data", str(bad), "-o", str(tmp_path / "o.yaml")]) == 2
    assert "not in the label set" in capsys.readouterr().err


def test_cli_entry_point_runs_export(tmp_path):
    done = _cli("export-task", "topic", "--limit", "5", "-o", str(tmp_path / "t.yaml"))
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(tmp_path / "t.yaml")
    assert "--num_fewshot 0" in done.stderr
