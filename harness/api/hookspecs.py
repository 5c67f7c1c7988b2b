"""The three hooks a plugin may implement.

Each hook receives a ``register`` callback. Call it once per thing the plugin provides; the core
validates the entry, refuses duplicate names and records which plugin owns it.
"""

import pluggy

hookspec = pluggy.HookspecMarker("harness")
hookimpl = pluggy.HookimplMarker("harness")


@hookspec
def register_tasks(register):
    """Register task classes (subclasses of :class:`harness.api.tasks.Task`): ``register(MyTask)``."""


@hookspec
def register_traits(register):
    """Register trait extractor classes (subclasses of :class:`harness.api.traits.Trait`)."""


@hookspec
def register_decomposers(register):
    """Register decomposer classes (subclasses of :class:`harness.api.Decomposer`)."""
