"""lm-eval targets on the Ray executor: a task YAML whose `process_docs` is an `!function` of a
utils.py written here (a function lm-eval imports by file path, under a name no other process can
import) and a generation task, scored in Ray workers with the local executor's joint calls, give
exactly the local executor's cells; a function no worker can load is refused before any work."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from helpers import save_adapter

UTILS = '''\
import pathlib
import sys


def process_docs(dataset):
    # Which process ran it (a Ray worker's argv[0] is Ray's default_worker.py), then a rewrite of
    # the documents lm-eval applies before scoring.
    with open(pathlib.Path(__file__).with_name("calls.txt"), "a") as log:
        log.write(sys.argv[0] + "\\n")
    return dataset.map(lambda doc: {"thing": doc["thing"].split()[-1].upper()})
'''

MC_YAML = """\
task: warm_fn
dataset_path: json
dataset_kwargs: {{data_files: {{test: {data}}}}}
test_split: test
process_docs: !function utils.process_docs
output_type: multiple_choice
doc_to_text: "Is {{{{thing}}}} warm or cold?\\nAnswer:"
doc_to_choice: ["cold", "warm"]
doc_to_target: label
metric_list: [{{metric: acc}}]
"""

GEN_YAML = """\
task: add_gen
dataset_path: json
dataset_kwargs: {{data_files: {{test: {data}}}}}
test_split: test
output_type: generate_until
doc_to_text: "{{{{a}}}} plus {{{{b}}}} is"
doc_to_target: "{{{{answer}}}}"
generation_kwargs: {{until: ["\\n"], max_gen_toks: 4, do_sample: false}}
metric_list: [{{metric: exact_match}}]
"""

REGISTRY = """\
experiment: lm_eval_ray
output_dir: out
base_model: {{path: {model}}}
sources:
  - {{adapter: {adapter}, alias: theirs}}
targets:
  - {{lm_eval: tasks/warm_fn.yaml, limit: 6}}
  - {{lm_eval: tasks/add_gen.yaml, limit: 6}}
evaluation: {{batch_size: 4}}
traits: [behaviour]
analysis: {{bootstrap: 0, permutations: 100}}
executor: {{cpus_per_job: 1}}
"""


def write_tasks(root, utils: str = UTILS):
    tasks = root / "tasks"
    tasks.mkdir(parents=True, exist_ok=True)
    things = [("hot fire", 1), ("cold ice", 0), ("the sun", 1), ("white snow", 0), ("hot soup", 1), ("a glacier", 0),
              ("an oven", 1), ("a freezer", 0)]
    (tasks / "things.jsonl").write_text("".join(json.dumps({"thing": t, "label": y}) + "\n" for t, y in things))
    (tasks / "sums.jsonl").write_text("".join(json.dumps({"a": a, "b": b, "answer": str(a + b)}) + "\n"
                                              for a in (2, 3, 5) for b in (1, 4)))
    (tasks / "utils.py").write_text(utils)
    (tasks / "warm_fn.yaml").write_text(MC_YAML.format(data=tasks / "things.jsonl"))
    (tasks / "add_gen.yaml").write_text(GEN_YAML.format(data=tasks / "sums.jsonl"))


def harness_run(root, kind):
    env = {**os.environ, "HARNESS_CACHE_DIR": str(root / f"cache-{kind}"), "HF_DATASETS_OFFLINE": "1",
           "HF_HUB_OFFLINE": "1"}
    return subprocess.run([sys.executable, "-m", "harness.cli", "run", "registry.yaml", "--out", f"out-{kind}",
                           "--executor", kind, "--json"], cwd=root, env=env, capture_output=True, text=True)


def test_lm_eval_targets_with_functions_on_ray_equal_local(tiny_model_dir, tmp_path):
    pytest.importorskip("ray", reason='Ray is not installed; pip install "transfer-harness[ray]"')
    from peft import LoraConfig

    write_tasks(tmp_path)
    adapter = save_adapter(tiny_model_dir, tmp_path / "adapter", LoraConfig(r=4, target_modules=["q_proj", "v_proj"]))
    (tmp_path / "registry.yaml").write_text(REGISTRY.format(model=tiny_model_dir, adapter=adapter))
    results = {}
    for kind in ("local", "ray"):
        out = harness_run(tmp_path, kind)
        assert out.returncode == 0, out.stderr[-3000:]
        assert json.loads(out.stdout)["computed"] == {"adapters": 0, "cells": 4}
        assert "one by one" not in out.stderr  # each model's two targets scored in one joint call
        results[kind] = json.loads((tmp_path / f"out-{kind}" / "lm_eval_ray" / "results.json").read_text())
    local, ray = results["local"], results["ray"]
    assert ray["provenance"]["executor"]["kind"] == "ray" and ray["failures"] == []
    assert local["scores"] == ray["scores"] and local["base"] == ray["base"]
    assert local["provenance"]["config_hashes"]["cells"] == ray["provenance"]["config_hashes"]["cells"]
    for model in ("base", "theirs"):
        for target in ("warm_fn", "add_gen"):
            name = os.path.join("samples", model, f"{target}.jsonl")
            mine = (tmp_path / "out-local" / "lm_eval_ray" / name).read_text()
            assert mine == (tmp_path / "out-ray" / "lm_eval_ray" / name).read_text()
    # process_docs ran in the Ray workers (loaded there from utils.py), once per model.
    calls = (tmp_path / "tasks" / "calls.txt").read_text().splitlines()
    in_workers = sum("default_worker" in c for c in calls)
    assert in_workers and in_workers == len(calls) - in_workers, calls  # as often as in the local run


def test_a_function_no_worker_can_load_is_refused_before_any_work(tiny_model_dir, tmp_path):
    pytest.importorskip("ray", reason='Ray is not installed; pip install "transfer-harness[ray]"')
    nested = "def make():\n    def process_docs(dataset):\n        return dataset\n    return process_docs\n\n" \
             "process_docs = make()\n"
    write_tasks(tmp_path, nested)
    (tmp_path / "registry.yaml").write_text(
        REGISTRY.format(model=tiny_model_dir, adapter="x").replace("  - {adapter: x, alias: theirs}\n", "")
        .replace("sources:\n", "sources: []\n"))
    out = harness_run(tmp_path, "ray")
    assert out.returncode == 2, out.stderr[-3000:]
    assert "target warm_fn cannot be scored on Ray workers" in out.stderr
    assert "make.<locals>.process_docs" in out.stderr and "local executor" in out.stderr
    assert "Traceback" not in out.stderr
    assert not (tmp_path / "cache-ray" / "cells").exists() or not any((tmp_path / "cache-ray" / "cells").iterdir())
