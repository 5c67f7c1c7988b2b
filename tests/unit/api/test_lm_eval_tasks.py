"""lm_eval targets without a model: what the registry refuses (field, reason, fix), what a target
resolves to, and cache fingerprints that follow content, never paths or function ids."""

from __future__ import annotations

import json
import shutil

import pytest

from harness.api.lm_eval_tasks import LmEvalTaskError, lm_eval_targets
from harness.config.registry import Registry, parse_registry
from harness.errors import DataError, RegistryError

TASK = """\
task: {name}
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}
test_split: test
output_type: multiple_choice
doc_to_text: !function utils.prompt
doc_to_choice: ["no", "yes"]
doc_to_target: label
metric_list:
  - metric: acc
  - metric: acc_norm
"""


def folder(tmp_path, name="yn", body="def prompt(doc):\n    return doc['q'] + '?'\n"):
    tmp_path.mkdir(parents=True, exist_ok=True)
    (tmp_path / "rows.jsonl").write_text("".join(json.dumps({"q": f"q{i}", "label": i % 2}) + "\n" for i in range(4)))
    (tmp_path / "utils.py").write_text(body)
    (tmp_path / f"{name}.yaml").write_text(TASK.format(name=name, data="rows.jsonl"))
    # lm-eval reads data_files as given: the YAML names the rows by absolute path.
    (tmp_path / f"{name}.yaml").write_text(TASK.format(name=name, data=tmp_path / "rows.jsonl"))
    return tmp_path


def registry(tmp_path, targets: str) -> str:
    return (f"experiment: x\nbase_model: {{path: /nowhere}}\nsources: [{{task: sentiment}}]\n"
            f"targets:\n{targets}")


def problems(tmp_path, targets: str) -> list[str]:
    with pytest.raises(RegistryError) as err:
        parse_registry(registry(tmp_path, targets), base_dir=tmp_path)
    return [f"{p.path}: {p.message}" for p in err.value.problems]


def test_a_yaml_target_resolves_with_its_name_metric_and_labels(tmp_path):
    folder(tmp_path)
    reg = parse_registry(registry(tmp_path, "  - {lm_eval: yn.yaml, limit: 3}\n"), base_dir=tmp_path)
    assert reg.targets[0].key == "yn"
    [(name, task, config)] = lm_eval_targets(str(tmp_path / "yn.yaml"), is_path=True, limit=3)
    assert name == "yn" and task.metric() == "acc,none" and task.kind == "multiple_choice"
    assert task.labels == ("no", "yes") and config["harness_run_args"] == {"limit": 3, "num_fewshot": 0}
    examples = task.test_examples()
    assert [e.prompt for e in examples] == ["q0?", "q1?", "q2?"] and [e.label for e in examples] == [0, 1, 0]
    assert examples[1].completion == " yes"


@pytest.mark.parametrize("entry, field, words", [
    ("{task: nli, lm_eval: yn.yaml}", "targets[0]", "not both"),
    ("{limit: 3}", "targets[0]", "give either task"),
    ("{lm_eval: yn.yaml, options: {seed: 1}}", "targets[0]", "takes overrides"),
    ("{task: nli, overrides: {num_fewshot: 1}}", "targets[0]", "only for lm_eval targets"),
    ("{lm_eval: nope.yaml}", "targets[0].lm_eval", "no such file"),
    ("{lm_eval: yn.yaml, metric: exact_match}", "targets[0].metric", "reports no 'exact_match,none'"),
    ("{lm_eval: yn.yaml, metric: 'acc,,x'}", "targets[0]", "'acc' or 'acc,none'"),
    ("{lm_eval: nothere, include_path: .}", "targets[0].lm_eval", "has no task, group or tag 'nothere'"),
    ("{lm_eval: yn, include_path: missing_dir}", "targets[0].include_path", "no such folder"),
    ("{lm_eval: yn.yaml, overrides: {dataset_kwargs: {data_files: {test: gone.jsonl}}}}", "targets[0].overrides",
     "does not exist"),
    ("{lm_eval: yn.yaml, overrides: {training_split: train}}", "targets[0].overrides",
     "add data_files.train, or set overrides.training_split: null"),
])
def test_refusals_name_the_field_and_the_fix(tmp_path, entry, field, words):
    folder(tmp_path)
    found = problems(tmp_path, f"  - {entry}\n")
    assert any(p.startswith(field + ":") and words in p for p in found), found


def test_two_targets_of_one_name_are_refused_and_an_alias_fixes_it(tmp_path):
    folder(tmp_path)
    found = problems(tmp_path, "  - {lm_eval: yn.yaml}\n  - {lm_eval: yn, include_path: .}\n")
    assert any("alias" in p for p in found), found
    parse_registry(registry(tmp_path, "  - {lm_eval: yn.yaml}\n  - {lm_eval: yn, include_path: ., alias: yn2}\n"),
                   base_dir=tmp_path)


def test_relative_data_files_are_read_from_the_registry_folder(tmp_path):
    folder(tmp_path)
    reg = parse_registry(registry(tmp_path, "  - {lm_eval: yn.yaml, overrides: {dataset_kwargs: {data_files: "
                                            "{test: rows.jsonl}}}}\n"), base_dir=tmp_path)
    assert reg.targets[0].overrides["dataset_kwargs"]["data_files"]["test"] == str(tmp_path / "rows.jsonl")


def test_fingerprint_follows_content_not_place_nor_function_ids(tmp_path):
    def fingerprint(where):
        return lm_eval_targets(str(where / "yn.yaml"), is_path=True)[0][1].fingerprint()

    first = fingerprint(folder(tmp_path / "a"))
    moved = tmp_path / "b"
    shutil.copytree(tmp_path / "a", moved)
    (moved / "yn.yaml").write_text(TASK.format(name="yn", data=moved / "rows.jsonl"))
    assert fingerprint(moved) == first  # same YAML, function and rows elsewhere: same key
    (moved / "utils.py").write_text("def prompt(doc):\n    return doc['q'] + ' ?'\n")
    assert fingerprint(moved) != first  # the function's source changed
    folder(tmp_path / "c")
    (tmp_path / "c" / "rows.jsonl").write_text('{"q": "other", "label": 1}\n')
    assert fingerprint(tmp_path / "c") != first  # the data changed


def test_offline_hub_dataset_is_refused_at_plan_time_and_noted_in_a_dry_run(tmp_path, monkeypatch):
    """A registry that skipped validation (built in Python) still stops at plan time."""
    from harness.api.plugins import catalog
    from harness.cache.store import Cache
    from harness.model.loading import ModelLocation
    from harness.stages.plan import make_plan

    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "empty-cache"))
    yaml_text = TASK.replace("dataset_path: json", "dataset_path: someone/not-here").replace(
        "dataset_kwargs:\n  data_files:\n    test: {data}\n", "")
    (tmp_path / "hub.yaml").write_text(yaml_text.format(name="hub"))
    (tmp_path / "utils.py").write_text("def prompt(doc):\n    return doc['q']\n")
    reg = Registry.model_validate({"experiment": "x", "base_model": {"path": "/nowhere"},
                                   "sources": [{"task": "sentiment", "n_train": 4}],
                                   "targets": [{"lm_eval": str(tmp_path / "hub.yaml"), "limit": 2}]})
    location = ModelLocation(key="k", how="test")
    with pytest.raises(DataError) as err:
        make_plan(reg, catalog(), Cache(tmp_path / "cache"), location)
    assert isinstance(err.value, LmEvalTaskError)
    message = str(err.value)
    assert "someone/not-here" in message and "HF_DATASETS_OFFLINE=0" in message and "overrides" in message
    plan = make_plan(reg, catalog(), Cache(tmp_path / "cache"), location, dry_run=True)
    assert any("someone/not-here" in m for m in plan.missing) and "hub" in plan.target_configs
