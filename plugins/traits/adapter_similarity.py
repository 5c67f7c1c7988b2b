"""How alike two sources' fine-tuning updates are: the cosine between their LoRA weight updates.

A pair trait that reads only the adapters' weights (no data, no base model), so it works for
adapters brought in from elsewhere as well as for trained ones.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from harness.api import PairTrait, SourceData, TargetData, hookimpl

WEIGHTS = "adapter_model.safetensors"
# peft's tensor names: "<module path>.lora_A.weight", or with the adapter's name before ".weight"
_LORA = re.compile(r"^(?:base_model\.model\.)?(?P<module>.+)\.lora_(?P<part>[AB])(?:\.[^.]+)?\.weight$")


def read_adapter(folder: Path) -> dict[str, tuple]:
    """The LoRA factors of an adapter folder (peft's layout), scale folded into B.

    Parameters
    ----------
    folder : a folder with ``adapter_config.json`` (``r``, ``lora_alpha``, optionally
        ``use_rslora``, ``rank_pattern``, ``alpha_pattern``) and ``adapter_model.safetensors``.

    Returns
    -------
    dict ``module -> (A, sB)``: ``A`` a float64 tensor (r, in), ``sB`` (out, r) = scale · B with
    scale = alpha / r (alpha / sqrt(r) with rsLoRA), so ``ΔW = sB @ A`` (out, in).
    """
    import torch
    from safetensors.torch import load_file

    config = json.loads((folder / "adapter_config.json").read_text())
    parts: dict[str, dict[str, torch.Tensor]] = {}
    for name, tensor in load_file(str(folder / WEIGHTS)).items():
        match = _LORA.match(name)
        if match:
            parts.setdefault(match["module"], {})[match["part"]] = tensor.to(torch.float64)
    out = {}
    for module, ab in parts.items():
        if set(ab) != {"A", "B"}:
            raise ValueError(f"{folder / WEIGHTS}: module {module} has lora_{''.join(ab)} without its pair")
        r, alpha = config.get("r", ab["A"].shape[0]), config.get("lora_alpha", ab["A"].shape[0])
        for pattern, value in (config.get("rank_pattern") or {}).items():  # per-module overrides
            r = value if module.endswith(pattern) else r
        for pattern, value in (config.get("alpha_pattern") or {}).items():
            alpha = value if module.endswith(pattern) else alpha
        scale = alpha / (r ** 0.5 if config.get("use_rslora") else r)
        out[module] = (ab["A"], scale * ab["B"])
    return out


def inner(x: dict[str, tuple], y: dict[str, tuple]) -> float:
    """Frobenius inner product of two adapters' updates summed over modules, without forming ΔW.

    ``<sB1 A1, sB2 A2> = trace(A1ᵀ sB1ᵀ sB2 A2) = sum((sB1ᵀ sB2) ⊙ (A1 A2ᵀ))``: two (r1, r2)
    products per module instead of two (out, in) matrices. A module only one adapter updates adds
    nothing (the other's update there is zero).
    """
    total = 0.0
    for module in x.keys() & y.keys():
        a1, b1 = x[module]
        a2, b2 = y[module]
        if a1.shape[1] != a2.shape[1] or b1.shape[0] != b2.shape[0]:
            raise ValueError(f"module {module}: the adapters' shapes differ ({tuple(b1.shape)}x{tuple(a1.shape)} vs "
                             f"{tuple(b2.shape)}x{tuple(a2.shape)}): they are not adapters of the same base model")
        total += float(((b1.T @ b2) * (a1 @ a2.T)).sum())
    return total


class AdapterSimilarity(PairTrait):
    """Cosine between the LoRA weight update of a source and that of the target's in-domain source.

    Each adapter's update is ``ΔW = (alpha / r) · B A`` per module. The modules are aggregated by
    concatenation: the cosine of all modules' flattened ΔW as one vector, i.e. of the whole update
    in weight space. That is the same geometry as a gradient cosine over the concatenated LoRA
    parameters (``gradient_alignment``), so the two traits compare like with like, and a module the
    fine-tune barely moved weighs little instead of as much as the one that carries the update (as
    a mean of per-module cosines would make it). A source trained with several seeds is the mean
    of its replicates' ΔW (inner products are bilinear, so this is the mean over replicate pairs of
    ``<ΔW_i, ΔW_j>``, no ΔW ever formed).

    The value of (source ``s``, target ``t``) is the cosine between ``s``'s update and that of the
    *in-domain* source of ``t``: the source whose task is ``t``'s (same task, version and options:
    the same fingerprint); failing that, the source named like the target. Several such sources
    are pooled (their replicates averaged together). ``None`` where ``t`` has no in-domain source,
    or either side has no adapter weights (not trained yet, a checkpoint, a zero update).

    Outputs
    -------
    adapter_cosine
        Per (source, target): the cosine, in ``[-1, 1]``; 1 for the in-domain source itself.
    """

    name = "adapter_similarity"
    description = ("Cosine between a source's LoRA weight update (alpha/r * B A, all modules) and that of the "
                   "target's in-domain source; reads only the adapters.")
    requires = frozenset({"adapter_weights", "targets"})
    outputs = ("adapter_cosine",)

    def compute_pairs(self, sources: list[SourceData],
                      targets: list[TargetData]) -> dict[str, dict[str, dict[str, float | None]]]:
        adapters = {s.name: [read_adapter(Path(f)) for f in s.adapters] for s in sources}
        gram: dict[tuple[int, int], float] = {}

        def dot(xs: list, ys: list) -> float:
            """<mean of xs, mean of ys> from the replicates' pairwise inner products (each pair once)."""
            values = []
            for x in xs:
                for y in ys:
                    key = (min(id(x), id(y)), max(id(x), id(y)))
                    if key not in gram:
                        gram[key] = inner(x, y)
                    values.append(gram[key])
            return sum(values) / len(values)

        table: dict[str, dict[str, float | None]] = {s.name: {} for s in sources}
        for t in targets:
            domain = in_domain(t, sources)
            pooled = [a for s in domain for a in adapters[s.name]]
            for s in sources:
                mine = adapters[s.name]
                if not mine or not pooled:
                    table[s.name][t.name] = None
                    continue
                norms = dot(mine, mine) * dot(pooled, pooled)
                table[s.name][t.name] = (max(-1.0, min(1.0, dot(mine, pooled) / norms ** 0.5))
                                         if norms > 0 else None)
        return {"adapter_cosine": table}


def in_domain(target: TargetData, sources: list[SourceData]) -> list[SourceData]:
    """The sources trained on ``target``'s task: the same task fingerprint (name, version,
    options); failing that, the source named like the target; else none."""
    fingerprint = _fingerprint(target.task)
    same = [s for s in sources if fingerprint is not None and _fingerprint(s.task) == fingerprint]
    return same or [s for s in sources if s.name == target.name]


def _fingerprint(task) -> str | None:
    try:
        return task.fingerprint() if task is not None else None
    except Exception:  # noqa: BLE001 - a task without a fingerprint (an lm-eval target) matches by name only
        return None


@hookimpl
def register_traits(register):
    register(AdapterSimilarity)
