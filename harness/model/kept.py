"""The base model kept loaded between runs in one process (``harness run --watch``, a notebook)."""

from __future__ import annotations

import gc

from harness.cache.store import Cache
from harness.model import loading
from harness.model.adapters import AdapterHost
from harness.model.compute import free_accelerator_memory


class KeptModel:
    """The base model of one run kept loaded for the next run in the same process
    (``harness run --watch``, or ``harness.execution.pipeline.run(..., keep=KeptModel())`` from a notebook), so that
    re-running after an edit pays neither the imports nor the load again.

    Only the bare base model is kept: the next run gets it back with every adapter taken out
    (:meth:`AdapterHost.clear`) and loads the adapters it needs from the cache, as a fresh process
    would, so its numbers are the same. It is reused only for the same cache, the same weights (the
    location's key hashes them) and the same ``base_model`` settings; anything else loads afresh
    and frees the old one.
    """

    def __init__(self):
        self.key = None
        self.loaded = None  # (path, model, tokenizer, host)

    @staticmethod
    def _key(location, cfg, cache: Cache) -> tuple:
        return str(cache.root), location.key, cfg.model_dump_json()

    def holds(self, location, cfg, cache: Cache) -> bool:
        return self.loaded is not None and self.key == self._key(location, cfg, cache)

    def get(self, location, cfg, cache: Cache):
        """(path, model, tokenizer, host) for this base model: the kept one cleared, or loaded now."""
        key = self._key(location, cfg, cache)
        if self.loaded is not None and self.key == key:
            self.loaded[3].clear()
            return self.loaded
        self.release()
        path, model, tokenizer = loading.load_checked(location, cfg, cache)
        self.key, self.loaded = key, (path, model, tokenizer, AdapterHost(model))
        return self.loaded

    def release(self) -> None:
        """Forget the kept model (its memory goes back once nothing else holds it)."""
        if self.loaded is None:
            return
        self.key = self.loaded = None
        gc.collect()
        free_accelerator_memory()
