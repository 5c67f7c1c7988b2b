"""`harness export-task --registry REG --target NAME`: an lm-eval YAML target with overrides
exports as its own YAML included by absolute path with the overrides on top, and the lm_eval
command the export prints scores exactly the harness's cell; a group target is refused with what
to pass to lm_eval instead; a task plugin target exports as `export-task NAME` does."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import yaml

from helpers import SHARED_DATA

TASK_YAML = """\
task: warmth
dataset_path: json
dataset_kwargs: {data_files: {test: nowhere.jsonl}}
test_split: test
output_type: multiple_choice
doc_to_text: "Is {{thing}} warm?\\nAnswer:"
doc_to_choice: ["no", "yes"]
doc_to_target: label
metric_list: [{metric: acc}]
"""
GROUP_YAML = "group: both\ntask: [warmth, warmth_b]\naggregate_metric_list: [{metric: acc}]\n"

REGISTRY = """\
experiment: export_lm_eval
output_dir: out
base_model: {{path: {model}}}
sources: []
targets:
  - lm_eval: tasks/warmth.yaml
    alias: warm_local
    limit: 7
    overrides:
      dataset_kwargs: {{data_files: {{test: data/things.jsonl}}}}
      doc_to_text: "Q: is {{{{thing}}}} hot or cold?\\nA:"
      doc_to_choice: ["cold", "hot"]
  - {{lm_eval: both, include_path: tasks, limit: 3, overrides: {{dataset_kwargs: {{data_files: {{test: data/things.jsonl}}}}}}}}
  - {{task: sentiment, limit: 6}}
{arc}evaluation: {{batch_size: 4, seed: 7}}
traits: []
analysis: {{bootstrap: 0, permutations: 100}}
"""


def harness(*args, cwd):
    env = {**os.environ, "HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1", "HARNESS_CACHE_DIR": str(cwd / "cache")}
    return subprocess.run([sys.executable, "-m", "harness.cli", *args], cwd=cwd, env=env, capture_output=True, text=True)


def setup(root, model, arc=""):
    (root / "tasks").mkdir()
    (root / "data").mkdir()
    things = ["fire", "ice", "the sun", "snow", "soup", "a glacier", "an oven", "a freezer", "toast", "frost"]
    (root / "data" / "things.jsonl").write_text("".join(json.dumps({"thing": t, "label": i % 2}) + "\n"
                                                        for i, t in enumerate(things)))
    (root / "tasks" / "warmth.yaml").write_text(TASK_YAML)
    (root / "tasks" / "warmth_b.yaml").write_text(TASK_YAML.replace("task: warmth", "task: warmth_b"))
    (root / "tasks" / "both.yaml").write_text(GROUP_YAML)
    (root / "registry.yaml").write_text(REGISTRY.format(model=model, arc=arc))


def test_exported_lm_eval_target_scores_what_the_harness_scores(tiny_model_dir, tmp_path):
    setup(tmp_path, tiny_model_dir)
    run = harness("run", "registry.yaml", cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    results = json.loads((tmp_path / "out" / "export_lm_eval" / "results.json").read_text())
    ours = results["base"]["warm_local"]["value"]

    out = tmp_path / "export" / "warm_local.yaml"
    export = harness("export-task", "--registry", "registry.yaml", "--target", "warm_local", "-o", str(out),
                     cwd=tmp_path)
    assert export.returncode == 0, export.stderr
    assert export.stdout.strip() == str(out)
    written = yaml.safe_load(out.read_text())
    assert written["include"] == str(tmp_path / "tasks" / "warmth.yaml") and written["task"] == "warm_local"
    assert written["dataset_kwargs"] == {"data_files": {"test": str(tmp_path / "data" / "things.jsonl")}}
    command = export.stderr.split("Run it with:", 1)[1].strip()
    assert "--limit 7" in command and "--num_fewshot 0" in command and "--seed 7" in command, command
    assert command in out.read_text()  # the YAML says how to run it too

    # The printed command, run as printed (from another folder: every path in the export is absolute).
    args = shlex.split(command)
    assert args[0] == "lm_eval"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    direct = subprocess.run([sys.executable, "-m", "lm_eval", *args[1:], "--output_path", str(elsewhere / "res"),
                             "--log_samples"],
                            cwd=elsewhere, capture_output=True, text=True,
                            env={**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"})
    assert direct.returncode == 0, direct.stderr[-3000:]
    (result_file,) = (elsewhere / "res").rglob("results_*.json")
    theirs = json.loads(result_file.read_text())
    assert theirs["results"]["warm_local"]["acc,none"] == ours or abs(theirs["results"]["warm_local"]["acc,none"] - ours) < 1e-9
    assert theirs["n-samples"]["warm_local"]["effective"] == 7
    # Document by document, the same loglikelihoods: the same prompts and choices were scored.
    (samples_file,) = (elsewhere / "res").rglob("samples_warm_local_*.jsonl")
    lm_eval_samples = {s["doc_id"]: [r[0] for r in s["filtered_resps"]]
                       for s in map(json.loads, samples_file.read_text().splitlines())}
    harness_samples = [json.loads(line) for line in
                       (tmp_path / "out" / "export_lm_eval" / "samples" / "base" / "warm_local.jsonl").open()]
    assert len(harness_samples) == len(lm_eval_samples) == 7
    for record in harness_samples:
        theirs_ll = [float(x) for x in lm_eval_samples[record["doc_id"]]]
        assert max(abs(a - b) for a, b in zip(record["loglikelihoods"], theirs_ll, strict=True)) < 1e-9


ARC_TARGET = """\
  - lm_eval: arc_easy
    limit: 5
    overrides:
      dataset_path: json
      dataset_name: null
      dataset_kwargs: {{data_files: {{test: {arc}/test.jsonl}}}}
      validation_split: null
      training_split: null
      doc_to_text: "Question: {{{{question.stem}}}}\\nAnswer:"
      doc_to_choice: "{{{{question.choices | map(attribute='text') | list}}}}"
      doc_to_target: "{{{{(question.choices | map(attribute='label') | list).index(answerKey)}}}}"
"""


def test_group_refused_library_and_plugin_targets_exported(tiny_model_dir, tmp_path):
    arc = SHARED_DATA / "arc_easy"
    setup(tmp_path, tiny_model_dir, ARC_TARGET.format(arc=arc) if (arc / "test.jsonl").is_file() else "")
    group = harness("export-task", "--registry", "registry.yaml", "--target", "both", cwd=tmp_path)
    assert group.returncode == 2 and "Traceback" not in group.stderr
    assert "lm-eval's group 'both'" in group.stderr and "expand: true" in group.stderr
    assert f"lm_eval --tasks both --include_path {tmp_path / 'tasks'} --limit 3" in group.stderr, group.stderr

    plugin = harness("export-task", "--registry", "registry.yaml", "--target", "sentiment", "-o", "s.yaml",
                     cwd=tmp_path)
    assert plugin.returncode == 0, plugin.stderr
    config = yaml.safe_load((tmp_path / "s.yaml").read_text())
    test_file = config["dataset_kwargs"]["data_files"]["test"]
    assert sum(1 for _ in open(test_file)) == 6  # the target's limit

    if (arc / "test.jsonl").is_file():  # a library task: its own YAML, found through lm-eval's index
        library = harness("export-task", "--registry", "registry.yaml", "--target", "arc_easy", cwd=tmp_path)
        assert library.returncode == 0, library.stderr
        written = yaml.safe_load((tmp_path / "arc_easy.yaml").read_text())
        import lm_eval

        assert written["include"] == str(Path(lm_eval.__file__).parent / "tasks" / "arc" / "arc_easy.yaml")
        assert written["dataset_path"] == "json" and "--limit 5" in library.stderr

    unknown = harness("export-task", "--registry", "registry.yaml", "--target", "warm_locl", cwd=tmp_path)
    assert unknown.returncode == 2 and "did you mean" in unknown.stderr and "warm_local" in unknown.stderr
    both = harness("export-task", "sentiment", "--registry", "registry.yaml", "--target", "x", cwd=tmp_path)
    assert both.returncode == 2 and "not both" in both.stderr
