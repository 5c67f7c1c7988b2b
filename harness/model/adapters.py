"""One base model in memory, LoRA adapters added, loaded and switched on it in place.

lm-eval's ``HFLM`` is handed the *base* model object once. peft injects its LoRA layers into that
same object, so switching the active adapter here changes what ``HFLM`` scores without reloading
anything (lm-eval ignores its own ``peft=`` argument when given a model object).
"""

from __future__ import annotations

import contextlib
from pathlib import Path


class AdapterHost:
    def __init__(self, base_model):
        self.base = base_model
        self.peft = None  # created with the first adapter

    def add(self, name: str, config) -> None:
        """Add a fresh, trainable adapter and make it active."""
        from peft import get_peft_model

        if self.peft is None:
            self.peft = get_peft_model(self.base, config, adapter_name=name)
        else:
            if name in self.peft.peft_config:
                self.peft.delete_adapter(name)
            self.peft.add_adapter(name, config)
        self.peft.set_adapter(name)

    def load(self, name: str, path: Path) -> None:
        """Load a saved adapter (inference only) and make it active: a LoRA adapter, or any other
        type peft loads onto the base (IA3, LoHa, ...)."""
        from peft import PeftConfig, PeftModel

        if self.peft is not None and name not in self.peft.peft_config:
            # One peft model holds adapters of one type only: to put an IA3 adapter where LoRA ones
            # are, take those out first (each is loaded again from its folder when next needed).
            if PeftConfig.from_pretrained(str(path)).peft_type != self.peft.peft_type:
                self.clear()
        if self.peft is None:
            self.peft = PeftModel.from_pretrained(self.base, str(path), adapter_name=name)
        elif name not in self.peft.peft_config:
            self.peft.load_adapter(str(path), adapter_name=name)
        self.peft.set_adapter(name)
        self.peft.eval()

    def remove(self, name: str) -> None:
        """Free an adapter's weights once it is no longer needed."""
        if self.peft is not None and name in self.peft.peft_config and len(self.peft.peft_config) > 1:
            self.peft.delete_adapter(name)

    def clear(self) -> None:
        """Take every adapter out, leaving the base model as it was loaded: LoRA layers replaced by
        the layers they wrapped (nothing merged), base weights trainable again as after
        ``from_pretrained``, in eval mode. For a base model kept loaded from one run to the next."""
        if self.peft is None:
            return
        self.peft.unload()
        self.peft = None
        if hasattr(self.base, "peft_config"):  # peft's mark on the model; a new wrap would warn about it
            del self.base.peft_config
        for param in self.base.parameters():
            param.requires_grad_(True)
        self.base.eval()

    @contextlib.contextmanager
    def base_only(self):
        """The plain base model, whatever adapters are loaded."""
        if self.peft is None:
            yield
        else:
            with self.peft.disable_adapter():
                yield
