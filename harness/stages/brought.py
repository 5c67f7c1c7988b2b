"""Sources that bring their own weights, checked and keyed at plan time.

The registry already refused a folder that does not exist; here, with the base model located,
every brought adapter and checkpoint is read (no weights loaded) and refused, before any work,
when it cannot be scored on this base: all problems at once, as a :class:`RegistryError` that
names each source's field and line, so ``harness run`` and ``harness validate`` exit 2 alike.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from harness.config.registry import Registry
from harness.errors import RegistryError
from harness.model import brought as weights


@dataclass(frozen=True)
class Brought:
    """A brought source's weights: where they are and their content key."""

    kind: str  # "adapter" or "checkpoint"
    path: Path
    key: str


class _Base:
    """The base model's config and tokenizer, read once, and only when some check needs them."""

    def __init__(self, registry: Registry, location):
        self.registry, self.location = registry, location
        self._config = self._tokenizer = None

    @property
    def config(self):
        if self._config is None:
            self._config = weights.base_config(self.location, self.registry.base_model)
        return self._config

    @property
    def tokenizer(self):
        if self._tokenizer is None:
            self._tokenizer = weights.base_tokenizer(self.location, self.registry.base_model)
        return self._tokenizer


def bring(registry: Registry, location, dry_run: bool = False, notes: list[str] | None = None) -> dict[str, Brought]:
    """Every brought source's weights by source name, checked against the base model at
    ``location``. Raises :class:`RegistryError` listing every problem. Where the base model is not
    on this machine (a dry run), only the files are checked, and ``notes`` says so."""
    problems, out = [], {}
    base = _Base(registry, location)
    available = location.path is not None or location.gguf_file is not None
    vllm = registry.evaluation.backend == "vllm"
    for i, use in enumerate(registry.sources):
        if use.kind == "trained":
            continue
        field = use.kind

        def refuse(message: str, use=use, i=i, field=field) -> None:
            problems.append(use.problem(i, field, f"{use.weights}: {message}"))

        try:
            folder = Path(use.weights)
            if not folder.is_dir():  # a hub id (the registry refused a missing folder)
                folder = weights.resolve_hub_adapter(use.weights, use.revision, download=not dry_run)
            key = weights.weights_key(use.kind, folder)
        except weights.WeightsProblem as exc:
            refuse(str(exc))
            continue
        out[use.key] = Brought(use.kind, folder, key)
        if use.kind == "checkpoint" and vllm:
            refuse("a checkpoint is a model of its own, and evaluation.backend vllm serves one model (the base, "
                   "with adapters) per run; use evaluation.backend: hf")
        if use.kind == "adapter" and vllm:
            problem = weights.vllm_problem(folder)
            if problem:
                refuse(problem)
        if not available:
            if notes is not None:
                notes.append(f"source {use.key}: not checked against the base model, which is not on this machine")
            continue
        found = (weights.adapter_problems(folder, base.config, registry.base_model, location)
                 if use.kind == "adapter" else weights.checkpoint_problems(folder, base.tokenizer))
        for message in found:
            refuse(message)
    if problems:
        raise RegistryError(registry.sources[0].filename, problems)
    return out
