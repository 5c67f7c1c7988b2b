"""What a cell reports is what lm-eval scored, once per document: multi-filter tasks, few-shot
examples kept away from the scored rows, metrics that are not means, and cache keys that follow the
scoring code (issue 14, items 1, 2, 11 and 12)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from harness.api.filetasks import FileTask
from harness.config.registry import EvaluationSettings
from harness.stages.evaluate import Evaluator
from harness_plugins.tasks.gsm8k import GSM8K
from harness_plugins.tasks.sentiment import Sentiment


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


GSM_ROWS = [{"question": f"Sam has {a} apples and buys {b} more. How many apples does he have?",
             "answer": f"Sam has {a} + {b} = <<{a}+{b}={a + b}>>{a + b} apples.\n#### {a + b}"}
            for a, b in [(3, 4), (10, 5), (7, 8), (2, 9), (6, 6)]]


def score(evaluator, task, tmp_path, n):
    config = task.lm_eval_config(tmp_path / "data", n)
    return evaluator.evaluate({task.name: config}, {task.name: task.metric()})[task.name]


# --- item 1: one record per document, of the metric's own filter ------------------------------------

def test_a_multi_filter_task_keeps_one_record_per_document_of_the_metrics_filter(tiny_model, tmp_path):
    """gsm8k has strict-match and flexible-extract: lm-eval logs every document under both."""
    model, tok = tiny_model
    task = GSM8K(data_files={"test": str(write_jsonl(tmp_path / "gsm.jsonl", GSM_ROWS))})
    cell = score(Evaluator(model, tok, EvaluationSettings(batch_size=8)), task, tmp_path, 4)
    assert cell.metric == "exact_match,flexible-extract"
    assert cell.n == 4 and len(cell.samples) == 4
    assert sorted(s["doc_id"] for s in cell.samples) == [0, 1, 2, 3]
    # value, stderr and n agree with the records kept
    scores = [s["correct"] for s in cell.samples]
    assert cell.value == pytest.approx(sum(scores) / 4)
    mean = sum(scores) / 4
    expected_se = math.sqrt(sum((x - mean) ** 2 for x in scores) / 3 / 4)
    assert cell.stderr == pytest.approx(expected_se)


def test_records_follow_the_filter_the_metric_names(tiny_model, tmp_path):
    """The strict-match records (the '####' regex, '[invalid]' without it) are another view of the
    same documents: asking for that metric keeps those, not the flexible ones."""
    model, tok = tiny_model
    task = GSM8K(data_files={"test": str(write_jsonl(tmp_path / "gsm.jsonl", GSM_ROWS))})
    config = task.lm_eval_config(tmp_path / "data", 3)
    evaluator = Evaluator(model, tok, EvaluationSettings(batch_size=8))
    strict = evaluator.evaluate({"gsm8k": config}, {"gsm8k": "exact_match,strict-match"})["gsm8k"]
    assert strict.n == 3
    # A random tiny model never writes '#### <number>': strict-match finds nothing in every output.
    assert all(s["prediction"] == "[invalid]" for s in strict.samples)


def test_a_metric_lm_eval_did_not_report_is_refused_with_the_ones_it_did(tiny_model, tmp_path):
    model, tok = tiny_model
    task = Sentiment()
    config = task.lm_eval_config(tmp_path / "data", 4)
    with pytest.raises(ValueError, match=r"reported no 'f1,none'.*acc,none"):
        Evaluator(model, tok, EvaluationSettings(batch_size=8)).evaluate({"sentiment": config},
                                                                          {"sentiment": "f1,none"})


# --- item 2: few-shot examples never from the scored rows ------------------------------------------

def shots_of(config: dict, k: int) -> list[tuple[dict, str]]:
    """(document, its few-shot context) for every test document, built by lm-eval itself."""
    from harness.authoring.conformance import build_lm_eval_task

    lm_task = build_lm_eval_task(config)
    lm_task.set_fewshot_seed(1234)
    return [(dict(doc), lm_task.fewshot_context(doc, k)) for doc in lm_task.test_docs()]


def test_generated_task_shots_come_from_training_rows(tmp_path):
    task = Sentiment()
    config = task.lm_eval_config(tmp_path, 20, num_fewshot=5)
    assert config["fewshot_split"] == "train"
    test_prompts = {ex.prompt for ex in task.examples("test", 20)}
    for doc, context in shots_of(config, 5):
        shots = context[: -len(doc["prompt"])]
        assert context.endswith(doc["prompt"])
        assert not any(p in shots for p in test_prompts), "a scored row was used as a shot"
    # zero shots: the config is as before (no training file written)
    assert "fewshot_split" not in task.lm_eval_config(tmp_path, 20)


def test_file_task_shots_come_from_its_training_file(tmp_path):
    train = write_jsonl(tmp_path / "train.jsonl", GSM_ROWS[2:])
    test = write_jsonl(tmp_path / "test.jsonl", GSM_ROWS[:2])
    task = GSM8K(data_files={"train": str(train), "test": str(test)})
    config = task.lm_eval_config(tmp_path / "data", 2, num_fewshot=2)
    assert config["fewshot_split"] == "train"
    for doc, context in shots_of(config, 2):
        assert context.count("Question:") == 3
        assert doc["question"] not in context[: context.rindex("Question:")]


def test_without_training_rows_lm_eval_leaves_the_current_document_out(tmp_path):
    test = write_jsonl(tmp_path / "test.jsonl", GSM_ROWS)
    task = GSM8K(data_files={"test": str(test)})
    config = task.lm_eval_config(tmp_path / "data", 5, num_fewshot=3)
    assert config["fewshot_split"] == "test"  # recorded: shots from the test split, minus the document
    for doc, context in shots_of(config, 3):
        own = f"Question: {doc['question']}"
        assert context.count("Question:") == 4 and context.count(own) == 1 and context.endswith(own + "\nAnswer:")


# --- item 12: metrics that are not means -------------------------------------------------------------

class Cola(FileTask):
    """A reused lm-eval config whose metric is Matthews' correlation (aggregated over the set)."""

    name = "cola_test"
    kind = "multiple_choice"
    labels = ("no", "yes")
    text_columns, target_column = ("sentence",), "label"
    lm_eval_yaml = "glue/cola/default.yaml"


def test_a_reused_config_with_a_non_mean_metric_is_scored_with_its_own_aggregation(tiny_model, tmp_path):
    from sklearn.metrics import matthews_corrcoef

    rows = [{"sentence": f"The {w} sat on the mat number {i}.", "label": i % 2}
            for i, w in enumerate(["cat", "dog", "bird", "cow", "fox", "hen", "pig", "owl", "rat", "elk"] * 2)]
    task = Cola(data_files={"test": str(write_jsonl(tmp_path / "cola.jsonl", rows))})
    assert task.metric() == "mcc,none"
    model, tok = tiny_model
    cell = score(Evaluator(model, tok, EvaluationSettings(batch_size=8)), task, tmp_path, 20)
    assert cell.metric == "mcc,none" and cell.aggregation == "matthews_corrcoef" and cell.n == 20
    gold = [s["item"][0] for s in cell.samples]
    pred = [s["item"][1] for s in cell.samples]
    assert cell.value == pytest.approx(matthews_corrcoef(gold, pred))
    assert [s["correct"] for s in cell.samples] == [float(g == p) for g, p in zip(gold, pred)]
    assert cell.stderr is not None and cell.stderr >= 0


def test_cell_tests_bootstrap_the_aggregate_of_a_non_mean_metric():
    from sklearn.metrics import f1_score

    from harness.analysis.outcomes import collect
    from harness.config.registry import AnalysisSettings
    from harness.stages.analyse import cell_tests

    rng = np.random.default_rng(0)
    gold = rng.integers(0, 2, 60)
    base_pred = np.where(rng.random(60) < 0.6, gold, 1 - gold)
    good_pred = np.where(rng.random(60) < 0.95, gold, 1 - gold)
    log = lambda pred: [{"doc_id": i, "correct": float(g == p), "item": [int(g), int(p)]}  # noqa: E731
                        for i, (g, p) in enumerate(zip(gold, pred))]
    samples = {"base": {"t": log(base_pred)}, "s": {"t": log(good_pred)}}
    cells = {"base": {"t": {"value": f1_score(gold, base_pred), "aggregation": "f1"}},
             "s": {"t": {"value": f1_score(gold, good_pred), "aggregation": "f1"}}}
    outcomes = collect(samples, ["s"], ["t"], cells)
    assert "t" in outcomes.not_mean and outcomes.aggregations["t"] == "f1"
    test = cell_tests(outcomes, AnalysisSettings())["s"]["t"]
    assert test["method"] == "paired_bootstrap_aggregate"
    assert test["delta"] == pytest.approx(f1_score(gold, good_pred) - f1_score(gold, base_pred))
    assert test["ci"][0] < test["delta"] < test["ci"][1] and test["p"] < 0.05 and test["significant"]

    # Without the items (an old log), no paired test applies, and the cell says why.
    for model in samples.values():
        for rec in model["t"]:
            del rec["item"]
    skipped = cell_tests(collect(samples, ["s"], ["t"], cells), AnalysisSettings())["s"]["t"]
    assert skipped["method"] == "none" and "not a mean" in skipped["skipped"] and not skipped["significant"]


# --- item 11: cache keys follow the scoring and training code ---------------------------------------

def test_cell_and_adapter_keys_carry_the_scoring_and_training_code_versions(tmp_path, monkeypatch):
    from harness.api.plugins import catalog
    from harness.cache.store import Cache
    from harness.config.registry import Registry
    from harness.model.loading import ModelLocation
    from harness.stages import plan as plan_mod

    registry = Registry.model_validate({
        "experiment": "keys", "base_model": {"path": str(tmp_path)}, "sources": [{"task": "sentiment", "n_train": 8}],
        "targets": [{"task": "nli", "limit": 4}]})
    location = ModelLocation(key="m", how="test")

    def keys():
        p = plan_mod.make_plan(registry, catalog(), Cache(tmp_path / "cache"), location, compute={"device": "cpu"})
        return [a.key for a in p.adapters], [c.key for c in p.cells]

    adapters, cells = keys()
    monkeypatch.setattr(plan_mod, "EVALUATION_VERSION", plan_mod.EVALUATION_VERSION + 1)
    adapters2, cells2 = keys()
    assert adapters2 == adapters and not set(cells2) & set(cells)
    monkeypatch.setattr(plan_mod, "TRAINING_VERSION", plan_mod.TRAINING_VERSION + 1)
    adapters3, cells3 = keys()
    assert not set(adapters3) & set(adapters)
    assert cells3[0] == cells2[0]  # the base model's cells do not depend on training
    # Few-shot settings reach the target config, and so the cell keys.
    registry = registry.model_copy(update={"evaluation": registry.evaluation.model_copy(update={"num_fewshot": 2})})
    _, cells4 = keys()
    assert not set(cells4) & set(cells3)


def test_an_exported_task_run_with_shots_leaves_the_scored_document_out(tmp_path):
    """gsm8k's own YAML sets num_fewshot: 5; its export holds test rows only, so shots must come
    from the test split with the current document left out."""
    import yaml

    from harness.authoring.export import export_task

    test = write_jsonl(tmp_path / "test.jsonl", GSM_ROWS)
    path = export_task(GSM8K(data_files={"test": str(test)}), tmp_path / "export" / "gsm8k.yaml", limit=5)
    assert yaml.safe_load(path.read_text())["fewshot_split"] == "test"
    for doc, context in shots_of(str(path), 3):
        own = f"Question: {doc['question']}"
        assert context.count("Question:") == 4 and context.count(own) == 1


def test_few_shots_from_the_test_split_need_more_rows_than_shots(tmp_path):
    from harness.errors import DataError

    task = GSM8K(data_files={"test": str(write_jsonl(tmp_path / "test.jsonl", GSM_ROWS))})
    with pytest.raises(DataError, match=r"limit above 3, not 3"):
        task.lm_eval_config(tmp_path / "data", 3, num_fewshot=3)


def test_a_mean_metric_whose_cell_differs_from_its_records_keeps_its_paired_test():
    """Only a metric that is not a mean loses McNemar; a 0/1 target flagged because its cell does
    not equal the mean of its records is still compared document by document."""
    from harness.analysis.outcomes import collect
    from harness.config.registry import AnalysisSettings
    from harness.stages.analyse import cell_tests

    log = lambda bits: [{"doc_id": i, "correct": float(b)} for i, b in enumerate(bits)]  # noqa: E731
    samples = {"base": {"t": log([0, 1] * 10)}, "s": {"t": log([1] * 20)}}
    cells = {"base": {"t": {"value": 0.6, "aggregation": "mean"}}, "s": {"t": {"value": 1.0, "aggregation": "mean"}}}
    outcomes = collect(samples, ["s"], ["t"], cells)
    assert "t" in outcomes.not_mean and "t" not in outcomes.aggregations
    assert cell_tests(outcomes, AnalysisSettings())["s"]["t"]["method"] == "mcnemar"


def test_a_file_defined_task_without_a_training_file_takes_shots_from_its_test_split(tmp_path):
    from harness_plugins.tasks.file import FileDefinedTask

    rows = [{"review": f"review number {i} was {'good' if i % 2 else 'bad'}", "stars": "5" if i % 2 else "1"}
            for i in range(8)]
    task = FileDefinedTask(data_files={"test": str(write_jsonl(tmp_path / "r.jsonl", rows))},
                           text_columns=["review"], label_column="stars", labels=["negative", "positive"],
                           label_values=["1", "5"], template="Review: {{review}}\nSentiment:")
    assert task.metric() == "acc,none"
    config = task.lm_eval_config(tmp_path / "data", 8, num_fewshot=2)
    assert config["fewshot_split"] == "test"
    for doc, context in shots_of(config, 2):
        assert context.count(doc["prompt"]) == 1
