"""scikit-learn's parameter convention, shared by decomposers and traits."""

from __future__ import annotations

import inspect


class Parameterised:
    """``get_params()``: the ``__init__`` arguments, read back from attributes of the same name
    (plugins store their parameters unchanged, so this is also what enters cache keys)."""

    def get_params(self) -> dict:
        names = [p.name for p in inspect.signature(type(self).__init__).parameters.values()
                 if p.name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
        return {name: getattr(self, name) for name in names if hasattr(self, name)}
