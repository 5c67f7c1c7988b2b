"""lm-eval scoring of a tiny random model, with adapters swapped in place."""

from __future__ import annotations

import pytest
import torch

from harness.config.registry import EvaluationSettings, LoraSettings
from harness.model.adapters import AdapterHost
from harness.stages.evaluate import Evaluator
from harness.stages.finetune import lora_config
from harness_plugins.tasks.arithmetic import Arithmetic
from harness_plugins.tasks.sentiment import Sentiment


def score(evaluator, task, tmp_path, n):
    return evaluator.evaluate({task.name: task.lm_eval_config(tmp_path, n)}, {task.name: task.metric()})[task.name]


def test_scores_multiple_choice_and_generation_with_per_sample_logs(tiny_model, tmp_path):
    model, tok = tiny_model
    evaluator = Evaluator(model, tok, EvaluationSettings(batch_size=8))
    sent = score(evaluator, Sentiment(), tmp_path, 12)
    assert sent.metric == "acc,none" and sent.n == 12 and 0 <= sent.value <= 1
    assert sent.value == pytest.approx(sum(s["correct"] for s in sent.samples) / 12)
    first = sent.samples[0]
    assert len(first["loglikelihoods"]) == 2 and first["prediction"] in (0, 1)
    assert first["correct"] == float(first["prediction"] == first["target"])
    if 0 < sent.value < 1:
        assert sent.stderr == pytest.approx((sent.value * (1 - sent.value) / 11) ** 0.5)

    arith = score(evaluator, Arithmetic(), tmp_path, 4)
    assert arith.metric == "exact_match,extract" and arith.n == 4
    assert all("output" in s and "prediction" in s for s in arith.samples)


def test_adapter_swap_changes_scores_and_base_only_restores_them(tiny_model, tmp_path):
    model, tok = tiny_model
    evaluator = Evaluator(model, tok, EvaluationSettings(batch_size=8))
    task = Sentiment()
    before = score(evaluator, task, tmp_path, 10)

    host = AdapterHost(model)
    host.add("noisy", lora_config(LoraSettings(rank=4, target_modules=["q_proj", "v_proj"])))
    with torch.no_grad():  # a random non-zero B: the adapter now changes every forward pass
        for name, p in host.peft.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 1.0)
    host.peft.eval()
    with_adapter = score(evaluator, task, tmp_path, 10)
    lls = lambda r: [ll for s in r.samples for ll in s["loglikelihoods"]]  # noqa: E731
    assert lls(with_adapter) != lls(before)
    with host.base_only():
        again = score(evaluator, task, tmp_path, 10)
    assert lls(again) == pytest.approx(lls(before), abs=1e-4)


@pytest.mark.parametrize("task_cls, n", [(Sentiment, 12), (Arithmetic, 4)])
def test_scores_do_not_depend_on_the_batch_size(tiny_model, tmp_path, task_cls, n):
    """Batching only changes padding: the per-sample outcomes are identical and the
    loglikelihoods agree to float32 rounding."""
    model, tok = tiny_model
    task = task_cls()
    one = score(Evaluator(model, tok, EvaluationSettings(batch_size=1)), task, tmp_path, n)
    many = score(Evaluator(model, tok, EvaluationSettings(batch_size=8)), task, tmp_path, n)
    assert one.value == many.value
    assert [s["correct"] for s in one.samples] == [s["correct"] for s in many.samples]
    if "loglikelihoods" in one.samples[0]:
        flat = lambda r: [ll for s in r.samples for ll in s["loglikelihoods"]]  # noqa: E731
        assert flat(one) == pytest.approx(flat(many), abs=1e-4)


def test_auto_batch_size_is_16_on_cpu_and_lm_evals_search_on_a_gpu(monkeypatch):
    import harness.model.compute as compute
    from harness.stages.evaluate import eval_batch_size

    assert eval_batch_size(4) == 4
    monkeypatch.setattr(compute, "device", lambda: "cpu")
    assert eval_batch_size("auto") == 16
    monkeypatch.setattr(compute, "device", lambda: "cuda")
    assert eval_batch_size("auto") == "auto"
