"""LoRA training on a tiny random Llama: the loss goes down, only adapter weights change."""

from __future__ import annotations

import json

import pytest
import torch

from harness.adapters import AdapterHost
from harness.finetune import tokenize_pairs, train_adapter
from harness.registry import LoraSettings
from harness_plugins.tasks.sentiment import Sentiment

SETTINGS = LoraSettings(rank=8, alpha=16, dropout=0.0, learning_rate=5e-3, steps=30, batch_size=8,
                        target_modules=["q_proj", "v_proj", "up_proj", "down_proj"], seed=0)


def test_prompt_tokens_are_masked_and_long_prompts_cut_from_the_left(tiny_model):
    _, tok = tiny_model
    (ids, labels), = tokenize_pairs(tok, [("word " * 50, " positive")], max_length=16)
    completion = tok(" positive", add_special_tokens=False)["input_ids"]
    assert len(ids) == 16 and ids[-len(completion):] == completion
    assert labels[-len(completion):] == completion and set(labels[:-len(completion)]) == {-100}


def test_training_lowers_the_loss_and_changes_only_adapter_weights(tiny_model, tmp_path):
    model, tok = tiny_model
    before = {k: v.clone() for k, v in model.state_dict().items()}
    host = AdapterHost(model)
    pairs = Sentiment().train_pairs(64)
    log = train_adapter(host, "sent", tok, pairs, SETTINGS, tmp_path)

    losses = [s["loss"] for s in log["steps"]]
    assert len(losses) == 30 and log["tokens"] > 0 and log["tokens_per_second"] > 0
    assert sum(losses[-5:]) / 5 < sum(losses[:5]) / 5 - 0.5  # clearly learned

    lora_b = [v for k, v in host.peft.state_dict().items() if "lora_B" in k]
    assert lora_b and any(v.abs().sum() > 0 for v in lora_b)  # B starts at zero: it moved
    base_now = {k.replace("base_model.model.", "").replace(".base_layer", ""): v
                for k, v in host.peft.state_dict().items() if "lora_" not in k}
    assert all(torch.equal(before[k], base_now[k]) for k in before)  # base untouched

    saved = json.loads((tmp_path / "adapter_config.json").read_text())
    assert saved["r"] == 8 and (tmp_path / "adapter_model.safetensors").is_file()


def test_training_is_seeded(tiny_model_dir, tmp_path):
    from harness.models import load
    from harness.registry import ModelConfig

    runs = []
    for i in range(2):
        model, tok = load(tiny_model_dir, ModelConfig(path=str(tiny_model_dir)))
        log = train_adapter(AdapterHost(model), "seeded", tok, Sentiment().train_pairs(16),
                            SETTINGS.model_copy(update={"steps": 3}), tmp_path / str(i))
        runs.append([s["loss"] for s in log["steps"]])
    assert runs[0] == runs[1]


def test_epoch_batches_cover_every_example_once_and_group_lengths():
    from harness.finetune import epoch_batches

    rng = torch.Generator().manual_seed(0)
    lengths = [int(x) for x in torch.randint(5, 120, (200,), generator=torch.Generator().manual_seed(1))]
    grouped = epoch_batches(lengths, 8, rng, group_by_length=True)
    plain = epoch_batches(lengths, 8, torch.Generator().manual_seed(0), group_by_length=False)
    for batches in (grouped, plain):
        assert sorted(i for b in batches for i in b) == list(range(200))
        assert all(1 <= len(b) <= 8 for b in batches)

    def padded(batches):  # tokens a batch costs when padded to its longest row
        return sum(len(b) * max(lengths[i] for i in b) for b in batches)

    # Similar lengths together: far less padding than random batches of the same examples.
    assert padded(grouped) < 0.8 * padded(plain)
    # Seeded: the same order again; and batches are not simply sorted longest-first overall.
    assert epoch_batches(lengths, 8, torch.Generator().manual_seed(0)) == grouped
    firsts = [max(lengths[i] for i in b) for b in grouped]
    assert firsts != sorted(firsts, reverse=True)


def test_compute_setup_on_this_machine():
    from harness.compute import compute_setup, resolve_dtype

    if torch.cuda.is_available():
        pytest.skip("checks the CPU defaults")
    assert compute_setup("auto") == {"device": "cpu", "dtype": "float32"}
    assert resolve_dtype("bfloat16") == "bfloat16"
