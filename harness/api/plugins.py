"""Plugin discovery: one pluggy manager, fed by the ``harness`` entry-point group.

Built-in plugins live in ``plugins/`` and are listed in this project's own ``pyproject.toml`` under
that group, so they load exactly like third-party ones. ``HARNESS_LOAD_PLUGINS`` limits loading to a
comma-separated list of entry-point names or distribution names (empty: load none);
``HARNESS_BLOCK_PLUGINS`` skips the ones it names.
"""

from __future__ import annotations

import importlib.metadata
import inspect
import os
from dataclasses import dataclass, field
from functools import partial

import pluggy

from harness.api import hookspecs
from harness.errors import PluginError

GROUP = "harness"
KINDS = {"task": "register_tasks", "trait": "register_traits", "decomposer": "register_decomposers"}


@dataclass(frozen=True)
class Entry:
    """One registered thing: a task, trait or decomposer class and where it came from."""

    kind: str
    name: str
    obj: type
    plugin: str  # pluggy plugin name (the entry-point name for installed plugins)
    module: str
    distribution: str | None

    @property
    def description(self) -> str:
        text = getattr(self.obj, "description", None) or inspect.getdoc(self.obj) or ""
        return text.strip().splitlines()[0] if text.strip() else ""


@dataclass
class Catalog:
    """Everything the loaded plugins registered, by kind and name."""

    entries: dict[str, dict[str, Entry]] = field(default_factory=lambda: {k: {} for k in KINDS})

    def get(self, kind: str, name: str) -> Entry:
        try:
            return self.entries[kind][name]
        except KeyError:
            known = ", ".join(sorted(self.entries[kind])) or "none"
            raise KeyError(f"no {kind} plugin named {name!r} (known: {known})") from None

    def names(self, kind: str) -> list[str]:
        return sorted(self.entries[kind])


def _env_list(var: str) -> set[str] | None:
    value = os.environ.get(var)
    if value is None:
        return None
    return {part.strip() for part in value.split(",") if part.strip()}


def make_plugin_manager(load_entrypoints: bool = True) -> pluggy.PluginManager:
    """A manager with the hookspecs and (unless told not to) the installed ``harness`` plugins."""
    pm = pluggy.PluginManager(GROUP)
    pm.add_hookspecs(hookspecs)
    if not load_entrypoints:
        return pm
    allowed, blocked = _env_list("HARNESS_LOAD_PLUGINS"), _env_list("HARNESS_BLOCK_PLUGINS") or set()
    for ep in importlib.metadata.entry_points(group=GROUP):
        dist = ep.dist.name if ep.dist else None
        names = {ep.name, dist}
        if allowed is not None and not names & allowed:
            continue
        if names & blocked or pm.get_plugin(ep.name) is not None:
            continue
        pm.register(ep.load(), name=ep.name)
        DISTRIBUTIONS[ep.name] = dist
    return pm


# Which distribution installed each entry-point plugin, by plugin name (for `harness plugins`).
DISTRIBUTIONS: dict[str, str | None] = {}


def collect(pm: pluggy.PluginManager) -> Catalog:
    """Call every ``register_*`` hook implementation, each with a ``register`` bound to its owner."""
    from harness.api.decomposer import Decomposer
    from harness.api.tasks import Task
    from harness.api.traits import Trait

    try:
        pm.check_pending()  # a hook that matches no spec (a misspelt `register_task`) is never called
    except pluggy.PluginValidationError as exc:
        name = pm.get_name(exc.plugin) or repr(exc.plugin)
        raise PluginError(f"plugin {name!r}: {exc}. The hooks are {', '.join(sorted(KINDS.values()))} "
                          "(see harness/api/hookspecs.py); rename the misspelt one") from None
    bases = {"task": Task, "trait": Trait, "decomposer": Decomposer}
    catalog = Catalog()
    for kind, hook_name in KINDS.items():
        for impl in getattr(pm.hook, hook_name).get_hookimpls():
            owner = impl.plugin_name
            register = partial(_register, catalog, kind, bases[kind], owner)
            impl.function(register=register)
    return catalog


def _register(catalog: Catalog, kind: str, base: type, owner: str, obj: object) -> None:
    if not (inspect.isclass(obj) and issubclass(obj, base)):
        raise PluginError(f"plugin {owner!r} registered {obj!r} as a {kind}, "
                          f"but it is not a subclass of {base.__module__}.{base.__name__}")
    name = getattr(obj, "name", None)
    if not isinstance(name, str) or not name.isidentifier():
        raise PluginError(f"plugin {owner!r} registered {kind} {obj.__name__} with name {name!r}; "
                          "set a class attribute `name` made of letters, digits and underscores")
    if kind == "trait":
        _check_trait_scope(owner, obj)
    existing = catalog.entries[kind].get(name)
    if existing is not None:
        raise PluginError(f"{kind} name {name!r} is registered twice: by plugin {existing.plugin!r} "
                          f"({existing.module}) and by plugin {owner!r} ({obj.__module__}). "
                          "Rename one, or block one with HARNESS_BLOCK_PLUGINS.")
    catalog.entries[kind][name] = Entry(kind, name, obj, owner, obj.__module__,
                                        DISTRIBUTIONS.get(owner))


def _check_trait_scope(owner: str, cls: type) -> None:
    """A trait's ``scope`` is one of the three, and the one its base class stands for: the traits
    stage calls the method of ``scope``, which a SourceTrait with ``scope = "pair"`` lacks. A plain
    ``Trait`` (plugins older than the scope classes) only needs a known scope."""
    from harness.api.traits import SCOPE_CLASSES, SCOPES, scope_class

    scope = getattr(cls, "scope", None)
    try:
        base = scope_class(cls)
    except TypeError as exc:
        raise PluginError(f"plugin {owner!r} registered trait {cls.__name__}: {exc}") from None
    if base is not None and scope != base.scope:
        fix = "remove the `scope` line" + (f", or derive from {SCOPE_CLASSES[scope].__name__} instead"
                                           if scope in SCOPE_CLASSES else "")
        raise PluginError(f"plugin {owner!r} registered trait {cls.__name__} with scope {scope!r}, but it derives "
                          f"from {base.__name__}, whose scope is {base.scope!r}; {fix}")
    if scope not in SCOPES:
        raise PluginError(f"plugin {owner!r} registered trait {cls.__name__} with scope {scope!r}, which is not one "
                          f"of {', '.join(SCOPES)}; derive from SourceTrait, PairTrait or BehaviourTrait "
                          "(harness.api) instead of setting `scope`")


_pm: pluggy.PluginManager | None = None


def get_plugin_manager() -> pluggy.PluginManager:
    """The process-wide manager. Tests register throwaway plugins on it and unregister them after."""
    global _pm
    if _pm is None:
        _pm = make_plugin_manager()
    return _pm


def catalog() -> Catalog:
    """What the currently registered plugins provide (collected afresh: it is cheap)."""
    return collect(get_plugin_manager())
