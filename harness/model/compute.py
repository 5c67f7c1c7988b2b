"""Where models run and in what precision: CUDA when present, else CPU; ``dtype: auto`` means
bfloat16 on a GPU that supports it and float32 otherwise (CPU kernels for half precision are slow
and less exact). Both enter the cache keys, since they change the numbers."""

from __future__ import annotations


def _no_gpu_driver() -> bool:
    """True when no NVIDIA or AMD (ROCm) GPU driver is visible, so CUDA cannot be available.

    Checked before importing torch: the device is part of every cache key, and a fully cached run
    that never touches a model should not pay torch's 3 s import just to learn it is on a CPU."""
    import glob
    import os
    import sys

    if not sys.platform.startswith("linux"):
        return False  # no cheap test elsewhere: ask torch
    return not (glob.glob("/dev/nvidia*") or os.path.exists("/dev/kfd") or os.path.exists("/proc/driver/nvidia"))


def device() -> str:
    if _no_gpu_driver():
        return "cpu"
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def resolve_dtype(setting: str) -> str:
    """The dtype name to load weights in, for a registry ``base_model.dtype``."""
    if setting != "auto":
        return setting
    if device() == "cuda":
        import torch

        return "bfloat16" if torch.cuda.is_bf16_supported() else "float16"
    return "float32"


def compute_setup(setting: str) -> dict[str, str]:
    return {"device": device(), "dtype": resolve_dtype(setting)}


def free_accelerator_memory() -> None:
    """After a failure (out of memory above all), give the GPU's cached blocks back so the next
    job starts from a clean allocator."""
    import sys

    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        torch.cuda.empty_cache()
