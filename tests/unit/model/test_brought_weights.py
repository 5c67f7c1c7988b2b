"""Brought weights (harness.model.brought): content keys, and every check against the base model,
on peft adapters and checkpoints made in the test on the tiny random Llama."""

from __future__ import annotations

import json
import shutil

import pytest

from harness.config.registry import ModelConfig
from harness.model import brought
from harness.model.loading import ModelLocation
from helpers import save_adapter, save_checkpoint


@pytest.fixture(scope="module")
def made(tiny_model_dir, tmp_path_factory):
    """Adapters of two ranks on different modules, an IA3 and a LoHa adapter, one made for another
    (wider, deeper) base, a checkpoint, and one with an extra token in its vocabulary."""
    from peft import IA3Config, LoHaConfig, LoraConfig
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    root = tmp_path_factory.mktemp("brought")
    other = root / "other-base"
    config = LlamaConfig(vocab_size=len(AutoTokenizer.from_pretrained(tiny_model_dir)), hidden_size=48,
                         intermediate_size=64, num_hidden_layers=3, num_attention_heads=4, num_key_value_heads=2)
    LlamaForCausalLM(config).save_pretrained(other)
    return {
        "lora4": save_adapter(tiny_model_dir, root / "lora4", LoraConfig(r=4, target_modules=["q_proj", "v_proj"])),
        "lora16": save_adapter(tiny_model_dir, root / "lora16", LoraConfig(
            r=16, lora_alpha=32, target_modules=["k_proj", "o_proj", "up_proj", "down_proj"]), seed=1),
        "ia3": save_adapter(tiny_model_dir, root / "ia3", IA3Config(target_modules=["k_proj", "v_proj", "down_proj"],
                                                                     feedforward_modules=["down_proj"])),
        "loha": save_adapter(tiny_model_dir, root / "loha", LoHaConfig(r=4, target_modules=["q_proj", "v_proj"])),
        "other": save_adapter(other, root / "for-other", LoraConfig(r=4, target_modules=["q_proj", "v_proj"])),
        "checkpoint": save_checkpoint(tiny_model_dir, root / "checkpoint"),
        "vocab": save_checkpoint(tiny_model_dir, root / "vocab", extra_tokens=["<made-up-token>"]),
    }


def _base(tiny_model_dir, **fields):
    cfg = ModelConfig(path=str(tiny_model_dir), **fields)
    location = ModelLocation(key="tiny", how="path", path=tiny_model_dir)
    return cfg, location, brought.base_config(location, cfg)


@pytest.mark.parametrize("name", ["lora4", "lora16", "ia3", "loha", "checkpoint"])
def test_fitting_weights_have_no_problem(made, tiny_model_dir, name):
    cfg, location, config = _base(tiny_model_dir)
    if name == "checkpoint":
        assert brought.checkpoint_problems(made[name], brought.base_tokenizer(location, cfg)) == []
    else:
        assert brought.adapter_problems(made[name], config, cfg, location) == []


def test_adapter_for_another_base_is_refused_by_its_shapes(made, tiny_model_dir):
    cfg, location, config = _base(tiny_model_dir)
    (problem,) = brought.adapter_problems(made["other"], config, cfg, location)
    assert "made for another base model" in problem and "hidden size 32" in problem
    assert "is [4, 48] where this base needs [4, 32]" in problem  # lora_A of q_proj: (rank, hidden)
    assert "layers.2" in problem and "no module to go on" in problem  # a third layer the base lacks


def test_adapter_on_modules_the_base_lacks_is_refused(made, tiny_model_dir, tmp_path):
    cfg, location, config = _base(tiny_model_dir)
    folder = shutil.copytree(made["lora4"], tmp_path / "renamed")
    raw = json.loads((folder / "adapter_config.json").read_text())
    raw["target_modules"] = ["c_attn"]  # GPT-2's attention: no such module in a Llama
    (folder / "adapter_config.json").write_text(json.dumps(raw))
    (problem,) = brought.adapter_problems(folder, config, cfg, location)
    assert "does not fit this base model" in problem and "c_attn" in problem


def test_adapter_naming_another_hub_model_is_refused_only_against_a_hub_id(made, tiny_model_dir, tmp_path):
    folder = shutil.copytree(made["lora4"], tmp_path / "named")
    raw = json.loads((folder / "adapter_config.json").read_text())
    raw["base_model_name_or_path"] = "Qwen/Qwen2.5-0.5B"
    (folder / "adapter_config.json").write_text(json.dumps(raw))
    cfg, location, config = _base(tiny_model_dir)
    assert brought.adapter_problems(folder, config, cfg, location) == []  # no hub id here: shapes decide
    cfg, location, config = _base(tiny_model_dir, hub_id="HuggingFaceTB/SmolLM2-135M-Instruct")
    (problem,) = brought.adapter_problems(folder, config, cfg, location)
    assert "made for 'Qwen/Qwen2.5-0.5B'" in problem and "base_model.hub_id" in problem
    for same in ("HuggingFaceTB/SmolLM2-135M-Instruct", "unsloth/SmolLM2-135M-Instruct-bnb-4bit"):
        assert brought.name_problem(same, cfg, location) is None  # the same model, or a copy of it


def test_checkpoint_with_another_vocabulary_is_refused(made, tiny_model_dir):
    cfg, location, _ = _base(tiny_model_dir)
    (problem,) = brought.checkpoint_problems(made["vocab"], brought.base_tokenizer(location, cfg))
    assert "vocabulary differs" in problem and "<made-up-token>" in problem


def test_checkpoint_without_tokenizer_or_weights_is_refused(made, tiny_model_dir, tmp_path):
    cfg, location, _ = _base(tiny_model_dir)
    bare = tmp_path / "bare"
    bare.mkdir()
    shutil.copy(made["checkpoint"] / "config.json", bare)
    with pytest.raises(brought.WeightsProblem, match="no weights"):
        brought.checkpoint_problems(bare, brought.base_tokenizer(location, cfg))
    shutil.copy(made["checkpoint"] / "model.safetensors", bare)
    (problem,) = brought.checkpoint_problems(bare, brought.base_tokenizer(location, cfg))
    assert "no tokenizer" in problem and "tokenizer.save_pretrained" in problem


def test_keys_follow_content_not_path(made, tmp_path):
    key = brought.weights_key("adapter", made["lora4"])
    moved = shutil.copytree(made["lora4"], tmp_path / "elsewhere" / "renamed")
    (moved / "README.md").write_text("notes peft writes beside an adapter do not change it")
    assert brought.weights_key("adapter", moved) == key
    weights = moved / "adapter_model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 1  # one bit of one weight
    weights.write_bytes(bytes(data))
    assert brought.weights_key("adapter", moved) != key
    assert brought.weights_key("adapter", made["lora16"]) != key
    assert brought.weights_key("checkpoint", made["checkpoint"]) != brought.weights_key("checkpoint", made["vocab"])
    with pytest.raises(brought.WeightsProblem, match="not a peft adapter folder"):
        brought.weights_key("adapter", made["checkpoint"])


def test_vllm_limits(made, tmp_path):
    assert brought.vllm_problem(made["lora16"]) is None
    assert "LoRA adapters only" in brought.vllm_problem(made["ia3"])
    big = shutil.copytree(made["lora4"], tmp_path / "big")
    raw = json.loads((big / "adapter_config.json").read_text())
    raw["rank_pattern"] = {"q_proj": 1024}  # a per-module rank above the largest vLLM takes
    (big / "adapter_config.json").write_text(json.dumps(raw))
    assert brought.adapter_rank(big) == ("LORA", 1024)
    assert "rank is 1024" in brought.vllm_problem(big) and "512" in brought.vllm_problem(big)
    # vLLM takes only some values of max_lora_rank: the smallest that holds every rank.
    assert brought.vllm_lora_rank([4]) == 8 and brought.vllm_lora_rank([8, 17]) == 32
    assert brought.vllm_lora_rank([300]) == 320 and brought.vllm_lora_rank([1]) == 1


def test_hub_adapter_offline_says_both_ways_out(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    with pytest.raises(brought.WeightsProblem, match="HF_HUB_OFFLINE=0"):
        brought.resolve_hub_adapter("someone/some-adapter", None, download=True)


def test_every_peft_type_loads_onto_the_one_base_and_swaps(made, tiny_model):
    """AdapterHost.load takes any adapter peft can put on the base: LoRA of two ranks, IA3, LoHa,
    one after another on the same model object, each changing its output, the base unchanged."""
    import torch

    from harness.model.adapters import AdapterHost

    model, tokenizer = tiny_model
    ids = tokenizer("a gripping , beautifully acted film", return_tensors="pt").input_ids
    host = AdapterHost(model)

    def logits():
        with torch.no_grad():
            return (host.peft or model)(ids).logits

    base = logits()
    outputs = {}
    for name in ("lora4", "lora16", "ia3", "loha"):
        host.load(f"adapter_{name}", made[name])
        outputs[name] = logits()
        assert not torch.allclose(outputs[name], base), name
        with host.base_only():
            assert torch.equal(logits(), base)
    assert not torch.allclose(outputs["lora4"], outputs["lora16"])
    host.load("adapter_lora4", made["lora4"])  # switched back: the same numbers as the first time
    assert torch.equal(logits(), outputs["lora4"])


def test_pickled_weights_are_refused_with_the_fix(made, tmp_path):
    adapter = shutil.copytree(made["lora4"], tmp_path / "pickled-adapter")
    (adapter / "adapter_model.safetensors").rename(adapter / "adapter_model.bin")
    with pytest.raises(brought.WeightsProblem, match=r"pickled \(adapter_model.bin\).*safe_serialization=True"):
        brought.weights_key("adapter", adapter)
    model = shutil.copytree(made["checkpoint"], tmp_path / "pickled-model")
    (model / "model.safetensors").rename(model / "pytorch_model.bin")
    with pytest.raises(brought.WeightsProblem, match=r"pickled \(\*\.bin\)"):
        brought.weights_key("checkpoint", model)
