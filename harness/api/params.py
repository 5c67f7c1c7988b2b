"""scikit-learn's parameter convention, shared by decomposers and traits."""

from __future__ import annotations

import inspect


class Parameterised:
    """``get_params()``: the ``__init__`` arguments, read back from attributes of the same name
    (plugins store their parameters unchanged, so this is also what enters cache keys).

    Every parameter must be a named ``__init__`` argument: one taken through ``*args`` or
    ``**kwargs`` would be invisible to ``get_params``, so two settings would share a cache entry.
    A subclass whose ``__init__`` takes either is refused when it is defined.
    """

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        init = cls.__dict__.get("__init__")  # an inherited __init__ was checked with its own class
        if init is None:
            return
        for p in inspect.signature(init).parameters.values():
            if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
                star = "*" if p.kind is p.VAR_POSITIONAL else "**"
                raise TypeError(f"{cls.__qualname__}.__init__ takes {star}{p.name}; every parameter must be named "
                                "(they enter cache keys), e.g. def __init__(self, k: int = 3)")

    def get_params(self) -> dict:
        # A class without an __init__ of its own has object's (*args, **kwargs): no parameters.
        names = [p.name for p in inspect.signature(type(self).__init__).parameters.values()
                 if p.name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
        return {name: getattr(self, name) for name in names if hasattr(self, name)}
