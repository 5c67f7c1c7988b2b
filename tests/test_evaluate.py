"""lm-eval scoring of a tiny random model, with adapters swapped in place."""

from __future__ import annotations

import pytest
import torch

from harness.adapters import AdapterHost
from harness.evaluate import Evaluator
from harness.finetune import lora_config
from harness.registry import EvaluationSettings, LoraSettings
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
