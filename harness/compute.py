"""Where models run and in what precision: CUDA when present, else CPU; ``dtype: auto`` means
bfloat16 on a GPU that supports it and float32 otherwise (CPU kernels for half precision are slow
and less exact). Both enter the cache keys, since they change the numbers."""

from __future__ import annotations


def device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def resolve_dtype(setting: str) -> str:
    """The dtype name to load weights in, for a registry ``base_model.dtype``."""
    if setting != "auto":
        return setting
    import torch

    if torch.cuda.is_available():
        return "bfloat16" if torch.cuda.is_bf16_supported() else "float16"
    return "float32"


def compute_setup(setting: str) -> dict[str, str]:
    return {"device": device(), "dtype": resolve_dtype(setting)}
