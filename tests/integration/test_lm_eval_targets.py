"""Targets from lm-eval, end to end on a tiny random Llama: two task YAML files over JSONL written
here (multiple choice and generation), one of lm-eval's bundled tasks (arc_easy) read from the
local ARC-Easy rows in ../shared/data with its column layout mapped by overrides, and a group of
the two YAML tasks; the offline dataset message at validate and at plan time."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from harness.reporting.results_schema import validate_results
from helpers import SHARED_DATA

ARC = SHARED_DATA / "arc_easy"
pytestmark = pytest.mark.skipif(not (ARC / "test.jsonl").is_file(), reason=f"no ARC-Easy rows at {ARC}")

MC_YAML = """\
task: colour_mc
tag: [colours]
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}
test_split: test
output_type: multiple_choice
doc_to_text: "Is {{{{thing}}}} warm or cold?\\nAnswer:"
doc_to_choice: ["cold", "warm"]
doc_to_target: label
metric_list:
  - metric: acc
    aggregation: mean
    higher_is_better: true
"""

GEN_YAML = """\
task: add_gen
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}
test_split: test
output_type: generate_until
doc_to_text: "{{{{a}}}} plus {{{{b}}}} is"
doc_to_target: "{{{{answer}}}}"
generation_kwargs: {{until: ["\\n"], max_gen_toks: 6, do_sample: false}}
metric_list:
  - metric: exact_match
    aggregation: mean
    higher_is_better: true
"""

# A second prompt over the same rows, so that a group of the two aggregates one metric.
MC2_YAML = MC_YAML.replace("task: colour_mc", "task: colour_mc2").replace("warm or cold", "hot or not")
GROUP_YAML = """\
group: warmth
task: [colour_mc, colour_mc2]
aggregate_metric_list:
  - metric: acc
    weight_by_size: true
"""
MIXED_YAML = """\
group: warm_and_add
task: [colour_mc, add_gen]
"""

REGISTRY = """\
experiment: lmeval
output_dir: out
cache_dir: cache
base_model: {{path: {model}}}
sources:
  - {{task: sentiment, n_train: 16}}
  - {{task: arithmetic, n_train: 16}}
targets:
  - {{task: nli, limit: 6}}
  - {{lm_eval: tasks/colour_mc.yaml, limit: 8}}
  - {{lm_eval: tasks/add_gen.yaml, limit: 5}}
  - lm_eval: arc_easy
    alias: arc
    limit: 7
    overrides:
      dataset_path: json
      dataset_name: null
      dataset_kwargs: {{data_files: {{train: {arc}/train.jsonl, test: {arc}/test.jsonl}}}}
      validation_split: null
      doc_to_text: "Question: {{{{question.stem}}}}\\nAnswer:"
      doc_to_choice: "{{{{question.choices | map(attribute='text') | list}}}}"
      doc_to_target: "{{{{(question.choices | map(attribute='label') | list).index(answerKey)}}}}"
  - {{lm_eval: warmth, include_path: tasks, alias: both, limit: 4}}
  - {{lm_eval: tasks/warm_and_add.yaml, include_path: tasks, expand: true, alias: mix, limit: 3}}
lora: {{steps: 3, batch_size: 4, learning_rate: 0.01, target_modules: [q_proj, v_proj]}}
evaluation: {{batch_size: 8}}
traits: [class_distribution, tfidf_similarity, behaviour]
"""


def harness(*args, cwd, env=None):
    return subprocess.run([sys.executable, "-m", "harness.cli", *args], cwd=cwd, capture_output=True, text=True,
                          env={**os.environ, "HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1", **(env or {})})


def write_tasks(root):
    tasks = root / "tasks"
    tasks.mkdir(parents=True, exist_ok=True)
    things = [("fire", 1), ("ice", 0), ("the sun", 1), ("snow", 0), ("soup", 1), ("a glacier", 0),
              ("an oven", 1), ("a freezer", 0), ("toast", 1), ("frost", 0)]
    (tasks / "colours.jsonl").write_text("".join(json.dumps({"thing": t, "label": y}) + "\n" for t, y in things))
    sums = [(a, b) for a in (2, 3, 5) for b in (1, 4)]
    (tasks / "sums.jsonl").write_text("".join(json.dumps({"a": a, "b": b, "answer": str(a + b)}) + "\n"
                                              for a, b in sums))
    (tasks / "colour_mc.yaml").write_text(MC_YAML.format(data=tasks / "colours.jsonl"))
    (tasks / "add_gen.yaml").write_text(GEN_YAML.format(data=tasks / "sums.jsonl"))
    (tasks / "colour_mc2.yaml").write_text(MC2_YAML.format(data=tasks / "colours.jsonl"))
    (tasks / "warmth.yaml").write_text(GROUP_YAML)
    (tasks / "warm_and_add.yaml").write_text(MIXED_YAML)
    return tasks


@pytest.fixture(scope="module")
def lm_eval_run(tiny_model_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("lmeval-run")
    write_tasks(root)
    (root / "registry.yaml").write_text(REGISTRY.format(model=tiny_model_dir, arc=ARC))
    first = harness("run", "registry.yaml", cwd=root)
    assert first.returncode == 0, first.stderr[-4000:]
    return root, json.loads((root / "out" / "lmeval" / "results.json").read_text())


def test_every_cell_scored_and_results_validate(lm_eval_run):
    root, results = lm_eval_run
    validate_results(results)
    assert results["targets"] == ["nli", "colour_mc", "add_gen", "arc", "both", "mix.colour_mc", "mix.add_gen"]
    assert results["failures"] == []
    assert results["metrics"] == {"nli": "acc,none", "colour_mc": "acc,none", "add_gen": "exact_match,none",
                                  "arc": "acc,none", "both": "acc,none", "mix.colour_mc": "acc,none",
                                  "mix.add_gen": "exact_match,none"}
    for model in ("base", "sentiment", "arithmetic"):
        row = results["base"] if model == "base" else results["scores"][model]
        assert set(row) == set(results["targets"])
    assert results["abilities"]["colour_mc"] == ["colours"] and results["abilities"]["arc"] == ["ai2_arc"]
    assert results["abilities"]["both"] == ["warmth", "colours"]
    # expand: true scored each subtask of the mixed group as a column, each with its own metric;
    # the same task as a column of its own scores the same documents the same way.
    assert results["base"]["mix.colour_mc"]["value"] == pytest.approx(
        sum(json.loads(r)["correct"] for r in (root / "out/lmeval/samples/base/colour_mc.jsonl").read_text().splitlines()[:3]) / 3)
    run = root / "out" / "lmeval"
    html = (run / "report.html").read_text()
    assert "colour_mc" in html and "arc" in html


def test_per_sample_logs_follow_the_task_kind_and_limit(lm_eval_run):
    root, results = lm_eval_run
    samples = root / "out" / "lmeval" / "samples"

    def rows(model, target):
        return [json.loads(r) for r in (samples / model / f"{target}.jsonl").read_text().splitlines()]

    mc, gen, arc = rows("base", "colour_mc"), rows("base", "add_gen"), rows("sentiment", "arc")
    assert len(mc) == 8 and all(len(r["loglikelihoods"]) == 2 for r in mc)
    assert len(gen) == 5 and all("output" in r and "loglikelihoods" not in r for r in gen)
    assert len(arc) == 7 and {len(r["loglikelihoods"]) for r in arc} <= {3, 4, 5}
    # The cell value is the mean of its per-sample scores, as lm-eval aggregates acc.
    assert results["base"]["colour_mc"]["value"] == pytest.approx(sum(r["correct"] for r in mc) / 8)
    # ARC's gold is the index of answerKey among the row's own labels, mapped by the overrides.
    first = json.loads((ARC / "test.jsonl").read_text().splitlines()[0])
    labels = [c["label"] for c in first["question"]["choices"]]
    assert arc[0]["target"] == labels.index(first["answerKey"])
    # A group: one column over both subtasks' documents, ids made unique by the subtask's name.
    group = rows("base", "both")
    assert len(group) == 8 and {r["doc_id"].split(":")[0] for r in group} == {"colour_mc", "colour_mc2"}
    assert len({r["doc_id"] for r in group}) == 8
    assert results["base"]["both"]["value"] == pytest.approx(sum(r["correct"] for r in group) / 8)


def test_traits_for_lm_eval_targets(lm_eval_run):
    _, results = lm_eval_run
    cosine = results["pair_traits"]["tfidf_cosine"]
    assert cosine["sentiment"]["colour_mc"] is not None and cosine["arithmetic"]["arc"] is not None
    behaviour = results["behaviour"]["behaviour"]["targets"]
    # Fixed choices: label shares; choices per document (ARC): n/a, saying why.
    assert behaviour["colour_mc"]["labels"] == ["cold", "warm"]
    assert behaviour["colour_mc"]["models"]["base"]["n"] == 8
    assert "per document" in behaviour["arc"]["skipped"]
    assert behaviour["add_gen"]["models"]["base"]["n"] == 5


def test_rerun_reuses_every_cell_and_a_moved_task_folder_too(lm_eval_run, tmp_path):
    root, results = lm_eval_run
    again = harness("run", "registry.yaml", cwd=root)
    assert again.returncode == 0, again.stderr[-3000:]
    prov = json.loads((root / "out" / "lmeval" / "results.json").read_text())["provenance"]
    assert prov["computed"]["cells"] == 0
    # The same tasks and data in another folder: the cache keys follow content, not paths.
    moved = tmp_path / "elsewhere"
    write_tasks(moved)
    text = (root / "registry.yaml").read_text().replace("cache_dir: cache", f"cache_dir: {root / 'cache'}")
    (moved / "registry.yaml").write_text(text)
    third = harness("run", "registry.yaml", "--dry-run", cwd=moved)
    assert third.returncode == 0, third.stderr[-3000:]
    assert "0 of 21 cells would run" in third.stdout
    # One changed row of one data file: only the cells of the targets that read it are scored again
    # (colour_mc, the group both and mix.colour_mc, for the base model and two adapters).
    rows = (moved / "tasks" / "colours.jsonl").read_text().replace('"fire"', '"a fire"')
    (moved / "tasks" / "colours.jsonl").write_text(rows)
    fourth = harness("run", "registry.yaml", "--dry-run", cwd=moved)
    assert "9 of 21 cells would run" in fourth.stdout, fourth.stdout[-2000:]


def test_offline_hub_dataset_is_refused_at_validate_and_at_plan(tiny_model_dir, tmp_path):
    (tmp_path / "registry.yaml").write_text(f"""\
experiment: offline
base_model: {{path: {tiny_model_dir}}}
sources: [{{task: sentiment, n_train: 8}}]
targets: [{{lm_eval: arc_easy, limit: 4}}]
""")
    for command in ("validate", "run"):
        out = harness(command, "registry.yaml", cwd=tmp_path)
        assert out.returncode == 2, out.stderr[-2000:]
        assert "Traceback" not in out.stderr
        assert "allenai/ai2_arc" in out.stderr and "HF_DATASETS_OFFLINE=0" in out.stderr
        assert "overrides" in out.stderr and "targets[0]" in out.stderr
