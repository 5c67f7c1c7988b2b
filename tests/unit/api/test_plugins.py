"""The plugin core: built-ins load through the entry-point group; throwaway plugins come and go."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from harness.api import plugins
from harness.api.hookspecs import hookimpl
from harness.api.tasks import GeneratedTask, classification_example
from harness.api.traits import Trait


class ThrowawayTask(GeneratedTask):
    name = "throwaway_task"
    description = "A task that exists only inside this test."
    abilities = ("testing",)
    kind = "multiple_choice"
    labels = ("no", "yes")

    def generate(self, rng):
        n = rng.randrange(10_000)
        return classification_example(f"Is {n} even?\nAnswer:", self.labels, int(n % 2 == 0))


class ThrowawayPlugin:
    @hookimpl
    def register_tasks(self, register):
        register(ThrowawayTask)


@pytest.fixture
def registered():
    pm = plugins.get_plugin_manager()
    pm.register(ThrowawayPlugin(), name="throwaway")
    yield pm
    pm.unregister(name="throwaway")


def test_builtins_come_from_the_entry_point_group():
    cat = plugins.catalog()
    assert {"arithmetic", "sentiment", "nli", "word_problems"} <= set(cat.names("task"))
    assert "pca" in cat.names("decomposer")
    assert {"class_distribution", "completion_length"} <= set(cat.names("trait"))
    pca = cat.get("decomposer", "pca")
    assert pca.plugin == "decomposers.pca"
    assert pca.module == "harness_plugins.decomposers.pca"
    assert pca.distribution == "transfer-harness"


def test_throwaway_plugin_registers_and_unregisters(registered):
    entry = plugins.catalog().get("task", "throwaway_task")
    assert entry.plugin == "throwaway" and entry.obj is ThrowawayTask
    registered.unregister(name="throwaway")
    assert "throwaway_task" not in plugins.catalog().names("task")
    registered.register(ThrowawayPlugin(), name="throwaway")  # the fixture unregisters it again


def test_duplicate_names_are_refused_naming_both_owners(registered):
    class Impostor:
        @hookimpl
        def register_tasks(self, register):
            register(type("Sentiment2", (ThrowawayTask,), {"name": "throwaway_task"}))

    registered.register(Impostor(), name="impostor")
    try:
        with pytest.raises(plugins.PluginError) as exc:
            plugins.catalog()
        message = str(exc.value)
        assert "'throwaway'" in message and "'impostor'" in message and "throwaway_task" in message
    finally:
        registered.unregister(name="impostor")


def test_register_rejects_non_subclasses_and_bad_names():
    pm = plugins.make_plugin_manager(load_entrypoints=False)

    class NotATrait:
        name = "x"

    class BadName(Trait):
        name = "has space"

    for thing, expected in ((NotATrait, "not a subclass"), (BadName, "letters, digits")):
        class P:
            @hookimpl
            def register_traits(self, register, thing=thing):
                register(thing)

        pm.register(P(), name=f"p{id(thing)}")
        with pytest.raises(plugins.PluginError, match=expected):
            plugins.collect(pm)
        pm.unregister(name=f"p{id(thing)}")


def _run_plugins_cli(env_extra: dict) -> list[dict]:
    import os

    env = {**os.environ, **env_extra}
    out = subprocess.run([sys.executable, "-m", "harness.cli", "plugins", "--json"], env=env,
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def test_plugins_command_lists_name_kind_module_distribution_and_abilities():
    rows = _run_plugins_cli({})
    by_name = {r["name"]: r for r in rows}
    assert by_name["sentiment"]["kind"] == "task"
    assert by_name["sentiment"]["abilities"] == ["sentiment"]
    assert by_name["sentiment"]["distribution"] == "transfer-harness"
    assert by_name["sentiment"]["module"] == "harness_plugins.tasks.sentiment"
    assert by_name["pca"]["description"]


def test_environment_variable_limits_and_blocks_plugins():
    only_pca = _run_plugins_cli({"HARNESS_LOAD_PLUGINS": "decomposers.pca"})
    assert [r["name"] for r in only_pca] == ["pca"]
    assert _run_plugins_cli({"HARNESS_LOAD_PLUGINS": ""}) == []
    blocked = _run_plugins_cli({"HARNESS_BLOCK_PLUGINS": "tasks.sentiment"})
    names = {r["name"] for r in blocked}
    assert "sentiment" not in names and "nli" in names


def test_a_misspelt_hook_is_refused_naming_the_plugin():
    class Misspelt:
        @hookimpl
        def register_task(self, register):  # register_tasks, misspelt: pluggy would never call it
            register(ThrowawayTask)

    pm = plugins.get_plugin_manager()
    pm.register(Misspelt(), name="misspelt")
    try:
        with pytest.raises(plugins.PluginError, match=r"plugin 'misspelt'.*register_task\b.*register_tasks"):
            plugins.catalog()
    finally:
        pm.unregister(name="misspelt")
    assert "throwaway_task" not in plugins.catalog().names("task")
