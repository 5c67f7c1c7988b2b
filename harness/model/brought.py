"""Weights brought from elsewhere: peft adapters and full checkpoints a source names instead of
training an adapter here.

What is checked before any work, against the located base model (its config and tokenizer, read
without loading its weights): an adapter's files, the base model it names, and the shapes of its
tensors against the modules of the base (a skeleton of the base on the ``meta`` device, wrapped by
peft with the adapter's own config, says what every tensor's shape must be: this holds for LoRA
and for every other peft type alike); a checkpoint's files and its tokenizer's vocabulary; and what
vLLM can serve. Keys come from the files' content, never their path: a moved folder keeps its key.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from harness.files import file_sha256, stable_hash

ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = "adapter_model.safetensors"
# Pickled weights (adapter_model.bin, pytorch_model.bin) are never read: unpickling runs code.
SAFETENSORS_FIX = ("convert them once (load the model with its library and save_pretrained(DIR, "
                   "safe_serialization=True), which writes safetensors)")
# vLLM accepts these values of max_lora_rank (vllm.config.lora.MaxLoRARanks, vLLM 0.10 and later;
# read from vLLM itself when it is installed): an adapter's rank must be at most the largest.
VLLM_MAX_LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)
# Suffixes a copy of a model often gets in its name (quantised or re-uploaded copies of the same weights).
COPY_SUFFIXES = re.compile(r"([-_.](bnb|4bit|8bit|gguf|awq|gptq|unsloth|fp16|bf16))+$")


class WeightsProblem(ValueError):
    """Brought weights that cannot be scored as they are; the message says what and how to fix it."""


# --- files and keys ---------------------------------------------------------------------------------

def adapter_files(folder: Path) -> list[Path]:
    """The files peft reads from an adapter folder: its config and its weights."""
    config, weights = folder / ADAPTER_CONFIG, folder / ADAPTER_WEIGHTS
    if config.is_file() and not weights.is_file() and (folder / "adapter_model.bin").is_file():
        raise WeightsProblem(f"{folder} holds its weights pickled (adapter_model.bin), which the harness does not "
                             f"unpickle (that can run code); {SAFETENSORS_FIX}")
    if not config.is_file() or not weights.is_file():
        missing = " and ".join(n for n, ok in ((ADAPTER_CONFIG, config.is_file()),
                                              (ADAPTER_WEIGHTS, weights.is_file())) if not ok)
        raise WeightsProblem(f"{folder} has no {missing}: not a peft adapter folder. Give the folder that "
                             "peft's save_pretrained wrote (model.save_pretrained(DIR) on a PeftModel)")
    return [config, weights]


def checkpoint_files(folder: Path) -> list[Path]:
    """The files of a full model folder that make it what it is: every file at its top level but
    documentation and dot-files (sub-folders, such as a trainer's checkpoint-500/, are not read)."""
    if not (folder / "config.json").is_file():
        raise WeightsProblem(f"{folder} has no config.json: not a transformers model folder. Give the folder "
                             "that save_pretrained wrote (model.save_pretrained(DIR); tokenizer.save_pretrained(DIR))")
    files = sorted(p for p in folder.iterdir()
                   if p.is_file() and not p.name.startswith(".") and p.suffix.lower() != ".md")
    if not any(p.suffix == ".safetensors" for p in files):
        if any(p.suffix in (".bin", ".pt", ".pth") for p in files):
            raise WeightsProblem(f"{folder} holds its weights pickled (*.bin), which the harness does not unpickle "
                                 f"(that can run code); {SAFETENSORS_FIX}")
        raise WeightsProblem(f"{folder} has a config.json but no weights (*.safetensors); save the model with "
                             "model.save_pretrained(DIR)")
    return files


_HASHES: dict[tuple, str] = {}  # (path, size, mtime, inode) -> sha256: a folder is hashed once per process


def _sha256(path: Path) -> str:
    stat = path.stat()
    memo = (str(path.resolve()), stat.st_size, stat.st_mtime_ns, stat.st_ino)
    if memo not in _HASHES:
        _HASHES[memo] = file_sha256(path)
    return _HASHES[memo]


def weights_key(kind: str, folder: Path) -> str:
    """The content key of brought weights: their files' names and hashes, never the folder's path."""
    files = adapter_files(folder) if kind == "adapter" else checkpoint_files(folder)
    return stable_hash({"brought": kind, "files": [(p.name, _sha256(p)) for p in files]})


def resolve_hub_adapter(spec: str, revision: str | None, download: bool) -> Path:
    """A hub id's adapter as a local folder: the Hugging Face cache first, then the hub (unless
    offline, or ``download`` is off: a dry run never waits on the network)."""
    from huggingface_hub import snapshot_download

    patterns = [ADAPTER_CONFIG, ADAPTER_WEIGHTS]
    try:
        return Path(snapshot_download(spec, revision=revision, local_files_only=True, allow_patterns=patterns))
    except Exception:  # not in the cache (LocalEntryNotFoundError, or an OSError)
        pass
    offline = os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "false", "FALSE", "no", "")
    if offline or not download:
        why = "HF_HUB_OFFLINE is set" if offline else "a dry run does not download"
        raise WeightsProblem(f"{spec!r} is not a folder here, and as a hub id it is not in the Hugging Face cache "
                             f"({why}). Give the adapter's folder, or run once with HF_HUB_OFFLINE=0 to download it")
    try:
        return Path(snapshot_download(spec, revision=revision, allow_patterns=patterns))
    except Exception as exc:  # network and hub errors come in many types
        raise WeightsProblem(f"cannot download the adapter {spec!r}"
                             + (f" at revision {revision!r}" if revision else "")
                             + f" from the hub ({type(exc).__name__}: {exc}); check the id, or give a folder") from None


# --- what the base model is -------------------------------------------------------------------------

def base_config(location, cfg):
    """The base model's transformers config, read without loading its weights (from its folder,
    or from the GGUF's metadata before it is converted)."""
    from transformers import AutoConfig

    if location.path is not None:
        return AutoConfig.from_pretrained(location.path, trust_remote_code=cfg.trust_remote_code)
    gguf = location.gguf_file
    return AutoConfig.from_pretrained(str(gguf.parent), gguf_file=gguf.name)


def base_tokenizer(location, cfg):
    from transformers import AutoTokenizer

    if location.path is not None:
        return AutoTokenizer.from_pretrained(location.path, trust_remote_code=cfg.trust_remote_code)
    gguf = location.gguf_file
    return AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)


def _name(text: str) -> str:
    return COPY_SUFFIXES.sub("", text.rstrip("/").rsplit("/", 1)[-1].lower())


def name_problem(named: str | None, cfg, location) -> str | None:
    """Whether the base model an adapter names (``base_model_name_or_path``) is another one.

    Strict only where both are hub ids: then their model names must agree (copies such as
    ``unsloth/Llama-3.2-1B-Instruct`` of ``meta-llama/Llama-3.2-1B-Instruct`` do, and so do
    quantised uploads). A base known here by a path or a locally converted GGUF has no hub id to
    match; a local path in the adapter's config says nothing either: the shape check decides."""
    from harness.config.registry import HUB_ID

    if not named or not cfg.hub_id or not HUB_ID.fullmatch(named) or Path(named).expanduser().exists():
        return None
    if named == cfg.hub_id or _name(named) == _name(cfg.hub_id):
        return None
    return (f"it was made for {named!r} (base_model_name_or_path in its {ADAPTER_CONFIG}), but the base model "
            f"here is {cfg.hub_id!r}. Score it with base_model.hub_id: {named}, or, if it is the same weights "
            f"under another name, set base_model_name_or_path to {cfg.hub_id!r} in {ADAPTER_CONFIG}")


def _tensor_shapes(weights: Path) -> dict[str, tuple[int, ...]]:
    """Every tensor's shape in an adapter's safetensors file, without reading the tensors' data."""
    from safetensors import safe_open

    with safe_open(str(weights), "pt") as fh:
        return {k: tuple(fh.get_slice(k).get_shape()) for k in fh.keys()}


def expected_shapes(config, peft_config, trust_remote_code: bool = False) -> dict[str, tuple[int, ...]]:
    """What every tensor of an adapter with ``peft_config`` must look like on a model with
    ``config``: peft wraps a weightless (meta) skeleton of the base, and its state dict names and
    shapes each tensor the adapter's file must hold. Raises peft's error (a ValueError) when the
    adapter's target modules are not in the base."""
    import torch
    from peft import get_peft_model, get_peft_model_state_dict
    from transformers import AutoModelForCausalLM

    with torch.device("meta"):
        skeleton = AutoModelForCausalLM.from_config(config, trust_remote_code=trust_remote_code)
        wrapped = get_peft_model(skeleton, peft_config)
    return {k: tuple(v.shape) for k, v in get_peft_model_state_dict(wrapped).items()}


def describe_base(config) -> str:
    parts = [f"{k.replace('num_hidden_layers', 'layers').replace('_', ' ')} {getattr(config, k)}"
             for k in ("hidden_size", "num_hidden_layers", "vocab_size") if hasattr(config, k)]
    return ", ".join(parts)


def adapter_problems(folder: Path, config, cfg, location) -> list[str]:
    """Why the adapter in ``folder`` cannot be put on this base model (``config``: its transformers
    config; ``cfg``: the registry's base_model; ``location``: where it was found): [] when it can."""
    import warnings

    from peft import PeftConfig

    _, weights = adapter_files(folder)
    try:
        raw = json.loads((folder / ADAPTER_CONFIG).read_text())
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # peft warns about fields of newer versions it ignores
            peft_config = PeftConfig.from_pretrained(str(folder))
    except Exception as exc:
        return [f"{folder / ADAPTER_CONFIG} cannot be read by peft ({type(exc).__name__}: {exc}); it must be "
                "the adapter_config.json peft's save_pretrained wrote, of a peft type this peft version knows"]
    problems = []
    name = name_problem(raw.get("base_model_name_or_path"), cfg, location)
    if name:
        problems.append(name)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            expected = expected_shapes(config, peft_config, cfg.trust_remote_code)
    except ValueError as exc:  # its target modules are not modules of this base
        return [*problems, f"it does not fit this base model ({describe_base(config)}): {exc}"]
    except Exception:  # no weightless skeleton of this architecture: peft's own load is the check then
        return problems
    have = _tensor_shapes(weights)
    unknown = [k for k in have if k not in expected]
    wrong = [(k, have[k], expected[k]) for k in have if k in expected and have[k] != expected[k]]
    if unknown or wrong:
        lines = [f"{k} is {list(h)} where this base needs {list(e)}" for k, h, e in wrong[:3]]
        lines += [f"{k} has no module to go on in this base" for k in unknown[:3]]
        more = len(unknown) + len(wrong) - len(lines)
        problems.append(f"it was made for another base model: its tensors do not fit this one "
                        f"({describe_base(config)}): " + "; ".join(lines) + (f"; and {more} more" if more > 0 else "")
                        + ". Score it on the base model it was trained on")
    return problems


def adapter_rank(folder: Path) -> tuple[str, int | None]:
    """(peft type, largest rank) of an adapter: LoRA's ``r`` or its largest ``rank_pattern``."""
    raw = json.loads((folder / ADAPTER_CONFIG).read_text())
    ranks = [raw.get("r"), *(raw.get("rank_pattern") or {}).values()]
    ranks = [r for r in ranks if isinstance(r, int)]
    return str(raw.get("peft_type", "?")), (max(ranks) if ranks else None)


def vllm_max_lora_ranks() -> tuple[int, ...]:
    """The values vLLM accepts as max_lora_rank: its own list when installed, else the known one."""
    try:
        from typing import get_args

        from vllm.config.lora import MaxLoRARanks

        return tuple(sorted(get_args(MaxLoRARanks))) or VLLM_MAX_LORA_RANKS
    except Exception:  # vLLM missing, or an older layout
        return VLLM_MAX_LORA_RANKS


def vllm_problem(folder: Path) -> str | None:
    """Why vLLM cannot serve this adapter: it serves LoRA only, up to its largest max_lora_rank."""
    peft_type, rank = adapter_rank(folder)
    if peft_type != "LORA":
        return (f"it is a {peft_type} adapter; evaluation.backend vllm serves LoRA adapters only. Use "
                "evaluation.backend: hf")
    allowed = vllm_max_lora_ranks()
    if rank is not None and rank > allowed[-1]:
        return (f"its rank is {rank}, above the largest vLLM serves (max_lora_rank is one of "
                f"{', '.join(map(str, allowed))}). Use evaluation.backend: hf")
    return None


def vllm_lora_rank(ranks: list[int]) -> int:
    """The max_lora_rank vLLM is started with: the smallest value it accepts that holds every rank."""
    allowed = vllm_max_lora_ranks()
    need = max(ranks, default=allowed[0])
    return next((r for r in allowed if r >= need), allowed[-1])


def checkpoint_problems(folder: Path, tokenizer) -> list[str]:
    """Why the full model in ``folder`` cannot be compared with the base model: it must bring its
    own tokenizer, with exactly the base tokenizer's vocabulary (else the same text is other tokens,
    and loglikelihoods are not comparable)."""
    from transformers import AutoTokenizer

    checkpoint_files(folder)
    try:
        own = AutoTokenizer.from_pretrained(str(folder))
    except Exception as exc:
        return [f"{folder} has no tokenizer that loads ({type(exc).__name__}: {str(exc)[:200]}); save the "
                "tokenizer it was trained with beside it (tokenizer.save_pretrained(DIR))"]
    theirs, ours = own.get_vocab(), tokenizer.get_vocab()
    if theirs == ours:
        return []
    extra = sorted(set(theirs) - set(ours))
    lacking = sorted(set(ours) - set(theirs))
    moved = sum(1 for t in set(theirs) & set(ours) if theirs[t] != ours[t])
    details = [f"{len(theirs)} tokens against the base's {len(ours)}"]
    if extra:
        details.append(f"{len(extra)} not in the base's (e.g. {extra[:3]})")
    if lacking:
        details.append(f"{len(lacking)} of the base's missing")
    if moved:
        details.append(f"{moved} with other ids")
    return [f"its tokenizer's vocabulary differs from the base model's ({'; '.join(details)}): scores could not "
            "be compared with the base's. Score it with the base model it was fine-tuned from"]

