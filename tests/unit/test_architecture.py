"""The house plan, checked by reading the sources: no import circles, no private names across
modules, and plugin code that imports only ``harness.api``.

The layers themselves (cli > execution > ... > api) are import-linter's contract in
pyproject.toml, which ``.ci/run`` runs as ``lint-imports``; these tests cover what a layers
contract does not see: circles inside one package and names starting with ``_``.
"""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

import pytest

from helpers import ROOT

PACKAGES = {"harness": ROOT / "harness", "harness_plugins": ROOT / "plugins"}


def modules() -> dict[str, Path]:
    """Every module of the harness and its built-in plugins, by dotted name."""
    out = {}
    for package, folder in PACKAGES.items():
        for path in sorted(folder.rglob("*.py")):
            parts = path.relative_to(folder).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            out[".".join((package, *parts))] = path
    return out


def type_checking_only(tree: ast.Module) -> set[ast.AST]:
    """The import statements under ``if TYPE_CHECKING:``: annotations only, never run (import-linter
    leaves them out too, ``exclude_type_checking_imports``)."""
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            out |= {inner for stmt in node.body for inner in ast.walk(stmt)}
    return out


def imports(path: Path, known: dict[str, Path]):
    """(line, imported module, imported name or None) for every import in ``path``, at any depth
    (an import inside a function is still a dependency), except those for type checkers only."""
    tree = ast.parse(path.read_text(), filename=str(path))
    skip = type_checking_only(tree)
    for node in ast.walk(tree):
        if node in skip:
            continue
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name, None
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            for alias in node.names:
                # `from harness.cli import cache` imports a module, not a name
                sub = f"{node.module}.{alias.name}"
                yield (node.lineno, sub, None) if sub in known else (node.lineno, node.module, alias.name)


def test_the_sources_are_found():
    found = modules()
    assert "harness.execution.pipeline" in found and "harness_plugins.tasks.sentiment" in found
    assert len(found) > 60


def test_no_module_imports_a_private_name_from_another_module():
    known = modules()
    offences = [f"{path.relative_to(ROOT)}:{line}: from {module} import {name}"
                for mod, path in known.items()
                for line, module, name in imports(path, known)
                if name and name.startswith("_") and not name.startswith("__") and module.split(".")[0] in PACKAGES]
    assert offences == []


def test_no_module_reads_a_private_attribute_of_another_module():
    """``pipeline._finetune(...)`` is a private import in disguise."""
    known = modules()
    offences = []
    for mod, path in known.items():
        tree = ast.parse(path.read_text())
        bound = {alias.asname or alias.name.split(".")[0]
                 for node in ast.walk(tree) if isinstance(node, (ast.Import, ast.ImportFrom))
                 for alias in node.names
                 if (node.module if isinstance(node, ast.ImportFrom) else alias.name or "").split(".")[0] in PACKAGES}
        offences += [f"{path.relative_to(ROOT)}:{node.lineno}: {node.value.id}.{node.attr}"
                     for node in ast.walk(tree)
                     if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                     and node.value.id in bound and node.attr.startswith("_") and not node.attr.startswith("__")]
    assert offences == []


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm)."""
    index, low, stack, on_stack, out, counter = {}, {}, [], set(), [], [0]
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10 * len(graph)))

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def import_graph() -> dict[str, set[str]]:
    known = modules()
    graph = {}
    for mod, path in known.items():
        targets = set()
        for _, module, _name in imports(path, known):
            # a module's own package __init__ runs first anyway; only module-to-module edges count
            while module and module not in known:
                module = module.rpartition(".")[0]
            if module and module != mod and not mod.startswith(module + "."):
                targets.add(module)
        graph[mod] = targets
    return graph


def test_cycle_finder_finds_a_circle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_circles():
    """Not even through an import inside a function: a circle means two modules are one concern."""
    graph = import_graph()
    # harness.api re-exports its submodules (its __init__ imports them all); an edge to the package
    # from one of its own submodules would be the circle, which the graph above never draws.
    assert cycles(graph) == []


def test_built_in_plugins_import_only_harness_api():
    known = modules()
    offences = [f"{path.relative_to(ROOT)}:{line}: {module}"
                for mod, path in known.items() if mod.startswith("harness_plugins")
                for line, module, _ in imports(path, known)
                if module.startswith("harness.") or module == "harness"
                if module != "harness.api"]
    assert offences == []


def python_blocks(markdown: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", markdown, re.S)


def test_the_readmes_plugin_examples_import_only_harness_api():
    blocks = [b for b in python_blocks((ROOT / "README.md").read_text()) if "hookimpl" in b]
    assert blocks, "the README shows how to write a plugin"
    for block in blocks:
        modules_used = {node.module for node in ast.walk(ast.parse(block))
                        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("harness")}
        assert modules_used == {"harness.api"}, block


@pytest.mark.parametrize("kind", ["task", "trait"])
def test_both_scaffolds_import_only_harness_api(kind, tmp_path):
    from harness.authoring.scaffold import scaffold

    root = scaffold("probe", tmp_path / kind, [], kind=kind)
    used = {path.name: {node.module for node in ast.walk(ast.parse(path.read_text()))
                        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "harness"}
            for path in sorted(Path(root).rglob("*.py"))}
    assert used[f"{kind}.py"] == {"harness.api"} and used[f"test_{kind}.py"] == {"harness.api"}, used
    assert set().union(*used.values()) == {"harness.api"}, used
