"""`harness new-trait`: a scaffolded trait package, pip-installed, shows up in `harness plugins`,
and its values land in traits.csv (`harness traits`) and results.json (`harness run`)."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys

import pytest

from harness.cli import main
from helpers import pip_install

REGISTRY = """\
experiment: with_plugin
output_dir: out
cache_dir: cache
base_model: {{path: {model}}}
sources: [{{task: sentiment, n_train: 16}}, {{task: arithmetic, n_train: 16}}]
targets: [{{task: sentiment, limit: 6}}]
lora: {{steps: 2, batch_size: 4}}
traits: [class_distribution, long_prompts]
"""
OUTPUT = "long_prompts_long_prompt_share"


@pytest.fixture(scope="module")
def installed_trait(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("trait-authoring")
    pkg = tmp / "harness-trait-long_prompts"
    assert main(["new-trait", "long_prompts", "--dir", str(pkg)]) == 0
    pip_install(pkg, tmp / "site")
    env = {**os.environ, "PYTHONPATH": str(tmp / "site"),
           "HARNESS_LOAD_PLUGINS": "transfer-harness,harness-trait-long_prompts"}
    return pkg, env


def cli(*args, env, cwd):
    return subprocess.run([sys.executable, "-m", "harness.cli", *args], capture_output=True, text=True,
                          env=env, cwd=cwd, timeout=600)


def test_installed_trait_is_listed_and_passes_its_own_tests(installed_trait, tmp_path):
    pkg, env = installed_trait
    listed = cli("plugins", "--kind", "trait", "--json", env=env, cwd=tmp_path)
    rows = {r["name"]: r for r in json.loads(listed.stdout)}
    assert rows["long_prompts"]["distribution"] == "harness-trait-long_prompts"
    assert "class_distribution" in rows
    own = subprocess.run([sys.executable, "-m", "pytest", str(pkg / "tests"), "-q", "-p", "no:cacheprovider"],
                         capture_output=True, text=True, env=env, cwd=pkg, timeout=300)
    assert own.returncode == 0 and "2 passed" in own.stdout, own.stdout[-2000:]


def test_values_land_in_traits_csv_and_results_json(installed_trait, tiny_model_dir, tmp_path):
    _, env = installed_trait
    (tmp_path / "registry.yaml").write_text(REGISTRY.format(model=tiny_model_dir))
    triage = cli("traits", "registry.yaml", env=env, cwd=tmp_path)
    assert triage.returncode == 0, triage.stderr[-2000:]
    with open(tmp_path / "out" / "with_plugin" / "traits.csv") as fh:
        rows = {r["source"]: r for r in csv.DictReader(fh)}
    assert float(rows["sentiment"][OUTPUT]) == 0.0 and rows["sentiment"]["class_count"] == "2.0"
    assert not (tmp_path / "cache" / "adapters").exists()  # `harness traits` fine-tunes nothing

    run = cli("run", "registry.yaml", "--quiet", env=env, cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-2000:]
    results = json.loads((tmp_path / "out" / "with_plugin" / "results.json").read_text())
    assert results["traits"]["arithmetic"][OUTPUT] == 0.0
    assert results["traits"]["arithmetic"]["class_count"] is None  # does not apply: null, not NaN


def test_new_trait_refuses_a_taken_name(tmp_path, capsys):
    assert main(["new-trait", "class_distribution", "--dir", str(tmp_path / "x")]) == 2
    assert "already registered" in capsys.readouterr().err
