"""A model's cells scored in one lm-eval call (issue 16, item 5): the same scores as one call per
cell, one cache entry per cell with its share of the call's time, and a broken target costing only
its own cell."""

from __future__ import annotations

import contextlib
import io

import pytest
from rich.console import Console

from harness.api.plugins import catalog
from harness.cache import entries
from harness.cache.locks import claimed_now
from harness.cache.store import Cache
from harness.config.registry import BASE, Registry
from harness.model.adapters import AdapterHost
from harness.model.loading import ModelLocation
from harness.stages import evaluate
from harness.stages.plan import adapter_name, make_plan

TARGETS = {"sentiment": 8, "nli": 6, "arithmetic": 4}  # multiple choice (2 and 3 choices) and generation


def make(tmp_path, model_dir):
    registry = Registry.model_validate({
        "experiment": "joint", "base_model": {"path": str(model_dir)}, "sources": [{"task": "sentiment", "n_train": 8}],
        "targets": [{"task": t, "limit": n} for t, n in TARGETS.items()], "evaluation": {"batch_size": 4},
        "lora": {"steps": 1, "batch_size": 4, "rank": 2, "target_modules": ["q_proj", "v_proj"]}, "traits": []})
    cache = Cache(tmp_path / "cache")
    return registry, cache, make_plan(registry, catalog(), cache, ModelLocation(key="tiny", how="test"),
                                      compute={"device": "cpu"})


def base_plan(tmp_path, model_dir):
    """A plan of the base model's cells only."""
    registry, cache, plan = make(tmp_path, model_dir)
    plan.cells = [c for c in plan.cells if c.model == BASE]
    return registry, cache, plan


def count_calls(monkeypatch) -> list[list[str]]:
    """The targets of every lm-eval call the Evaluator makes, in order."""
    calls = []
    call = evaluate.Evaluator.call

    def counted(self, configs, limit, num_fewshot):
        calls.append(list(configs))
        return call(self, configs, limit, num_fewshot)

    monkeypatch.setattr(evaluate.Evaluator, "call", counted)
    return calls


def score_all(plan, registry, cache, tiny_model, host=None):
    model, tok = tiny_model
    failures = []
    evaluate.evaluate_cells(plan, registry, cache, host or AdapterHost(model), model, tok,
                            Console(file=io.StringIO()), failures)
    return failures


def train(plan, registry, cache, tiny_model) -> AdapterHost:
    """The plan's adapters trained (one step) and filed, as the finetune stage does."""
    from harness.stages.finetune import train_adapter

    model, tok = tiny_model
    host = AdapterHost(model)
    for job in plan.adapters:
        with cache.entry("adapters", job.key) as tmp:
            train_adapter(host, adapter_name(job), tok, job.task.train_pairs(job.n_train), registry.lora, tmp,
                          kind=job.task.kind)
        job.cached = True
    host.clear()  # scoring loads the saved adapter, as a run that trained nothing does
    return host


def test_a_models_cells_are_one_lm_eval_call_with_the_scores_of_one_call_each(tiny_model, tiny_model_dir,
                                                                              tmp_path, monkeypatch):
    registry, cache, plan = make(tmp_path, tiny_model_dir)
    host = train(plan, registry, cache, tiny_model)
    calls = count_calls(monkeypatch)
    assert score_all(plan, registry, cache, tiny_model, host) == []
    assert calls == [list(TARGETS), list(TARGETS)]  # base, then the adapter
    assert all(c.cached and c.done_here for c in plan.cells)

    # The same cells, one call each (what the stage did before): identical values and outcomes;
    # loglikelihoods equal up to float32 rounding (batches mix the tasks' requests, as lm_eval's
    # own multi-task command does).
    model, tok = tiny_model
    single = evaluate.Evaluator(model, tok, registry.evaluation)
    for cell in plan.cells:
        if cell.model == BASE:
            context = host.base_only()
        else:
            job = plan.adapters[0]
            host.load(adapter_name(job), cache.path("adapters", job.key))
            context = contextlib.nullcontext()
        with context:
            alone = evaluate.score_cell(single, plan, cell.target)
        stored = entries.read_cell(cache, cell.key)
        samples = entries.read_samples(cache, cell.key)
        assert (stored["value"], stored["n"], stored["metric"]) == (alone.value, alone.n, alone.metric)
        assert stored["n"] == TARGETS[cell.target] == len(samples)
        assert [s["prediction"] for s in samples] == [s["prediction"] for s in alone.samples]
        assert [s["correct"] for s in samples] == [s["correct"] for s in alone.samples]
        for ours, theirs in zip(samples, alone.samples):
            assert ours.get("loglikelihoods", []) == pytest.approx(theirs.get("loglikelihoods", []), abs=1e-4)
        assert stored["seconds"] > 0
    lls = {c.model: [ll for s in entries.read_samples(cache, c.key) for ll in s["loglikelihoods"]]
           for c in plan.cells if c.target == "sentiment"}
    assert lls[BASE] != lls["sentiment"]  # the adapter's call really scored the adapter
    # The call's time is split over its cells by requests: the generation cell (4 rows, one
    # request each) gets less than the 8-row, 2-choice sentiment cell (16 requests).
    seconds = {c.target: entries.read_cell(cache, c.key)["seconds"] for c in plan.cells if c.model == BASE}
    assert seconds["arithmetic"] < seconds["sentiment"]
    assert seconds["sentiment"] / seconds["nli"] == pytest.approx(16 / 18, rel=0.05)


def test_a_target_that_breaks_the_joint_call_costs_only_its_cell(tiny_model, tiny_model_dir, tmp_path, monkeypatch):
    registry, cache, plan = base_plan(tmp_path, tiny_model_dir)
    plan.target_configs["nli"]["dataset_kwargs"]["data_files"]["test"] = str(tmp_path / "gone.jsonl")
    calls = count_calls(monkeypatch)
    failures = score_all(plan, registry, cache, tiny_model)
    assert calls == [list(TARGETS), ["sentiment"], ["nli"], ["arithmetic"]]  # joint, then one by one
    assert [(f["source"], f["target"]) for f in failures] == [(BASE, "nli")]
    assert "gone.jsonl" in failures[0]["error"]
    filed = {c.target for c in plan.cells if cache.has("cells", c.key)}
    assert filed == {"sentiment", "arithmetic"}


def test_a_cell_lm_eval_did_not_report_fails_alone_after_the_joint_call(tiny_model, tiny_model_dir, tmp_path,
                                                                        monkeypatch):
    registry, cache, plan = base_plan(tmp_path, tiny_model_dir)
    monkeypatch.setattr(plan.tasks["nli"], "metric", lambda: "f1,none")  # nli reports acc only
    calls = count_calls(monkeypatch)
    failures = score_all(plan, registry, cache, tiny_model)
    assert calls == [list(TARGETS)]  # the call itself succeeded: nothing is scored twice
    assert [(f["source"], f["target"]) for f in failures] == [(BASE, "nli")]
    assert "reported no 'f1,none'" in failures[0]["error"]
    assert {c.target for c in plan.cells if c.done_here} == {"sentiment", "arithmetic"}


class Job:
    def __init__(self, key):
        self.key, self.cached = key, False


def test_claimed_now_holds_every_free_lock_and_defers_the_held_ones(tmp_path):
    cache, other = Cache(tmp_path), Cache(tmp_path)  # two runs sharing one cache
    jobs = [Job("a"), Job("b"), Job("c"), Job("d")]
    with cache.entry("cells", "d") as tmp:
        (tmp / "cell.json").write_text("{}")
    with other.lock("cells", "b") as held:
        assert held
        with claimed_now(cache, "cells", jobs) as (mine, later):
            assert [j.key for j in mine] == ["a", "c"] and [j.key for j in later] == ["b"]
            assert jobs[3].cached  # finished already: in neither list
            for key in ("a", "c"):  # held for the whole block, so the other run cannot take them
                with other.lock("cells", key, blocking=False) as got:
                    assert not got
    with other.lock("cells", "a", blocking=False) as got:
        assert got  # released when the block ends


MC_YAML = """\
task: colour_mc
dataset_path: json
dataset_kwargs: {{data_files: {{test: {data}}}}}
test_split: test
output_type: multiple_choice
doc_to_text: "Is {{{{thing}}}} warm or cold?\\nAnswer:"
doc_to_choice: ["cold", "warm"]
doc_to_target: label
metric_list: [{{metric: acc, aggregation: mean, higher_is_better: true}}]
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
metric_list: [{{metric: exact_match, aggregation: mean, higher_is_better: true}}]
"""


def test_lm_eval_targets_share_a_call_only_with_targets_of_their_limit(tiny_model, tiny_model_dir, tmp_path,
                                                                       monkeypatch):
    """lm-eval's ``limit`` is call-wide: built-in targets (their files hold their rows) share one
    call, each lm-eval target goes with the targets of its own limit; every cell as scored alone."""
    import json

    things = [("fire", 1), ("ice", 0), ("sun", 1), ("snow", 0), ("tea", 1), ("frost", 0)]
    (tmp_path / "colours.jsonl").write_text("".join(json.dumps({"thing": t, "label": y}) + "\n" for t, y in things))
    sums = [(a, b) for a in range(1, 4) for b in range(1, 3)]
    (tmp_path / "sums.jsonl").write_text("".join(json.dumps({"a": a, "b": b, "answer": str(a + b)}) + "\n"
                                                 for a, b in sums))
    (tmp_path / "mc.yaml").write_text(MC_YAML.format(data=tmp_path / "colours.jsonl"))
    (tmp_path / "gen.yaml").write_text(GEN_YAML.format(data=tmp_path / "sums.jsonl"))
    registry = Registry.model_validate({
        "experiment": "limits", "base_model": {"path": str(tiny_model_dir)},
        "sources": [{"task": "sentiment", "n_train": 8}],
        "targets": [{"task": "sentiment", "limit": 6}, {"lm_eval": str(tmp_path / "mc.yaml"), "limit": 5},
                    {"task": "nli", "limit": 4}, {"lm_eval": str(tmp_path / "gen.yaml"), "limit": 3}],
        "evaluation": {"batch_size": 4}, "traits": []})
    cache = Cache(tmp_path / "cache")
    plan = make_plan(registry, catalog(), cache, ModelLocation(key="tiny", how="test"), compute={"device": "cpu"})
    plan.cells = [c for c in plan.cells if c.model == BASE]
    calls = count_calls(monkeypatch)
    assert score_all(plan, registry, cache, tiny_model) == []
    assert calls == [["sentiment", "nli"], ["colour_mc"], ["add_gen"]]
    model, tok = tiny_model
    single = evaluate.Evaluator(model, tok, registry.evaluation)
    for cell in plan.cells:
        stored = entries.read_cell(cache, cell.key)
        alone = evaluate.score_cell(single, plan, cell.target)
        assert (stored["value"], stored["n"]) == (alone.value, alone.n)
    assert {c.target: entries.read_cell(cache, c.key)["n"] for c in plan.cells} == {
        "sentiment": 6, "colour_mc": 5, "nli": 4, "add_gen": 3}
