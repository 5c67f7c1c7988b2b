"""``harness new-task NAME`` and ``harness new-trait NAME``: scaffold an installable plugin package.

The package (``harness-task-<name>`` or ``harness-trait-<name>``) holds a small working plugin, its
``register_*`` hook, the entry point that makes the harness find it once installed, a README and a
test (:func:`harness.authoring.conformance.check_task` or ``check_trait``). Edit the plugin, keep the test green,
``pip install`` it.
"""

from __future__ import annotations

import keyword
from pathlib import Path


class ScaffoldError(Exception):
    """Invalid name or target directory; the CLI exits 2."""


def distribution_name(name: str, kind: str = "task") -> str:
    return f"harness-{kind}-{name}"


def module_name(name: str, kind: str = "task") -> str:
    return f"harness_{kind}_{name}"


def class_name(name: str, kind: str = "task") -> str:
    suffix = kind.capitalize()
    camel = "".join(part[:1].upper() + part[1:] for part in name.split("_") if part)
    if not camel or not camel.isidentifier() or keyword.iskeyword(camel):
        camel = suffix + camel
    return camel + ("" if camel.endswith(suffix) else suffix)


def check_name(name: str, existing: list[str] | None = None, kind: str = "task") -> None:
    if not name.isidentifier() or keyword.iskeyword(name):
        raise ScaffoldError(f"{kind} name {name!r} must be a Python identifier (letters, digits and underscores, "
                            "not starting with a digit), e.g. 'parity' or 'my_{kind}'")
    if existing and name in existing:
        raise ScaffoldError(f"a {kind} named {name!r} is already registered; two plugins cannot share a {kind} "
                            "name, choose another")


PYPROJECT = '''\
[build-system]
requires = ["setuptools>=68"]
build-backend = "setuptools.build_meta"

[project]
name = "{dist}"
version = "0.1.0"
description = "The {name!r} {kind} for transfer-harness."
readme = "README.md"
requires-python = ">=3.10"
dependencies = ["transfer-harness"]

[project.optional-dependencies]
test = ["pytest>=8"]

# This is how the harness finds the plugin once the package is installed.
[project.entry-points.harness]
{name} = "{module}.{kind}"

[tool.setuptools]
packages = ["{module}"]

[tool.pytest.ini_options]
testpaths = ["tests"]
'''

TASK = '''\
"""The {name!r} task: is a number even? A small working example to turn into your own task.

What to change:

* ``generate`` -- make one random example of your task. Draw every random choice from ``rng``:
  the harness seeds it from ``options.seed``, which keeps the data deterministic. Return a
  multiple-choice example with :func:`classification_example` (the label word is what the model is
  scored on) or a generation example with :func:`generation_example` (scored by exact match of
  what ``answer_regex`` extracts from the model's output).
* ``labels`` (multiple choice) or ``answer_regex`` / ``max_gen_toks`` (generation), ``kind``.
* ``abilities`` -- what the task measures; the transfer report names latent abilities from them.
* ``{cls}Options`` -- the options a registry may set (``options: {{max_number: 1000}}``).
* ``version`` -- bump it whenever the data the task produces changes: it enters cache keys.

The harness splits generated examples into train and test by a hash of the prompt, so the splits
never overlap. Run ``pytest`` after every change: ``harness.authoring.conformance.check_task`` checks the contract.
"""

from __future__ import annotations

import random

from pydantic import Field

from harness.api import Example, GeneratedTask, TaskOptions, classification_example, hookimpl


class {cls}Options(TaskOptions):
    """Options of the {name!r} task (``seed`` comes from TaskOptions)."""

    max_number: int = Field(10_000, ge=100, description="Numbers are drawn from 0 to max_number - 1.")


class {cls}(GeneratedTask):
    """Is the number even? Binary classification over random integers."""

    name = "{name}"
    description = "Is the number even? (scaffolded example task; describe yours in one line)"
    kind = "multiple_choice"
    labels = ("no", "yes")  # label words; an example's label is an index into this tuple
    abilities = ("arithmetic",)
    Options = {cls}Options
    version = 1

    def class_shares(self) -> list[float]:
        """Ask for exactly half 'no' and half 'yes'; return None to let ``generate`` choose."""
        return [0.5, 0.5]

    def generate(self, rng: random.Random, label: int | None = None) -> Example:
        """One random example; when ``label`` is given (see class_shares), one with that label."""
        n = rng.randrange(self.options.max_number)
        if label is not None and int(n % 2 == 0) != label:
            n = n + 1 if n + 1 < self.options.max_number else n - 1  # flip the parity, stay in range
        return classification_example(f"Is {{n}} an even number?\\nAnswer:", self.labels, int(n % 2 == 0))


@hookimpl
def register_tasks(register):
    """Called by the harness when it loads this plugin: register every task class here."""
    register({cls})
'''

INIT = '''\
"""The {name!r} {kind} plugin for transfer-harness (see {kind}.py)."""
'''

TEST = '''\
"""The task must pass the harness's conformance checks (harness.authoring.conformance)."""

from harness.api import check_task, collect, make_plugin_manager

from {module} import task as plugin
from {module}.task import {cls}


def test_task_conforms_with_default_options():
    check_task({cls})


def test_task_conforms_with_other_options():
    check_task({cls}, seed=1, max_number=500)


def test_plugin_registers_the_task():
    pm = make_plugin_manager(load_entrypoints=False)
    pm.register(plugin, name="{name}")
    assert collect(pm).get("task", "{name}").obj is {cls}
'''

README = '''\
# {dist}

The `{name}` task for [transfer-harness](https://pypi.org/project/transfer-harness/): a scaffolded,
working example (is a number even?) to turn into your own task.

## Use it

```bash
pip install -e .            # the harness finds the task through the `harness` entry point
harness plugins --kind task # lists `{name}` with distribution {dist}
```

then name it in a registry as a source or a target:

```yaml
sources: [{{task: {name}, n_train: 400}}]
targets: [{{task: {name}, limit: 100, options: {{max_number: 1000}}}}]
```

and export it to run with lm-eval alone: `harness export-task {name}`.

## Change it

Edit `{module}/task.py` (its docstring says what to change) and keep the tests green:

```bash
pip install -e ".[test]" && python -m pytest -q
```

`tests/test_task.py` runs `harness.authoring.conformance.check_task`, the conformance checks every task plugin
must pass: deterministic examples, disjoint train and test splits, labels inside the label set,
completions that start with a space, and an lm-eval config (and its export) that lm-eval builds.
'''


TRAIT = '''\
"""The {name!r} trait: share of training prompts longer than a threshold. A working example.

What to change:
* ``name``, ``description``, ``outputs``: what the trait is called and which numbers it returns;
* ``requires``: add "tokenizer" or "base_model" if you need them (``source.tokenizer`` /
  ``source.model`` are then set); results are cached under exactly those inputs;
* ``compute``: one number per output for one source; ``None`` where it does not apply. Never NaN:
  a trait that returns one is reported as failed, naming the plugin and the source.

A trait of each (source, target) pair derives from ``PairTrait`` and implements
``compute_pairs(sources, targets)``; one of the evaluation logs from ``BehaviourTrait`` and
``compute_behaviour(data)`` (both in ``harness.api``).
"""

from harness.api import SourceData, SourceTrait, hookimpl


class {cls}(SourceTrait):
    """Share of a source's training prompts longer than ``min_words`` words."""

    name = "{name}"
    description = "Share of training prompts longer than min_words words."
    requires = frozenset({{"source_data"}})
    outputs = ("{name}_long_prompt_share",)

    def __init__(self, min_words: int = 20):
        self.min_words = min_words

    def compute(self, source: SourceData) -> dict[str, float | None]:
        if not source.examples:
            return {{"{name}_long_prompt_share": None}}
        long = sum(len(ex.prompt.split()) > self.min_words for ex in source.examples)
        return {{"{name}_long_prompt_share": long / len(source.examples)}}


@hookimpl
def register_traits(register):
    register({cls})
'''

TRAIT_TEST = '''\
"""The trait computes what it says on a hand-made source, passes the conformance checks, and
registers under its name."""

from harness.api import Example, SourceData, Task, check_trait, collect, make_plugin_manager

from {module} import trait as plugin
from {module}.trait import {cls}


def test_share_of_long_prompts():
    examples = [Example("short prompt", " a"), Example(" ".join(["word"] * 30), " b")]
    out = {cls}(min_words=20).compute(SourceData("s", Task(), examples))
    assert out == {{"{name}_long_prompt_share": 0.5}}


def test_trait_conforms_and_registers():
    # check_trait runs it on generated sources and checks outputs, values, determinism, parameters.
    check_trait({cls})
    check_trait({cls}, min_words=3)
    pm = make_plugin_manager(load_entrypoints=False)
    pm.register(plugin, name="{name}")
    assert collect(pm).get("trait", "{name}").obj is {cls}
'''

TRAIT_README = '''\
# {dist}

The `{name}` trait for transfer-harness: a scaffolded, working example (the share of long training
prompts) to turn into your own measure of source datasets.

```bash
pip install -e .              # the harness finds it through the `harness` entry point
harness plugins --kind trait  # lists `{name}` with distribution {dist}
```

Name it in a registry (`traits: [class_distribution, {name}]`) and its outputs appear in
`traits.csv` and `results.json`, from `harness run` and from `harness traits`.
Edit `{module}/trait.py` (its docstring says what to change); `pip install -e ".[test]" && pytest`.
`tests/test_trait.py` runs `check_trait` (from `harness.api`), the conformance checks every trait
plugin must pass: exactly the declared outputs, finite numbers or None, the same on every run, and
parameters that round-trip through `get_params()` (they enter cache keys).
'''


def scaffold(name: str, directory: Path | None = None, existing: list[str] | None = None,
             kind: str = "task") -> Path:
    """Write the package for plugin ``name`` of ``kind`` ("task" or "trait") into ``directory``
    (default ``./harness-<kind>-<name>``)."""
    check_name(name, existing, kind)
    dist, module, cls = distribution_name(name, kind), module_name(name, kind), class_name(name, kind)
    root = Path(directory) if directory is not None else Path.cwd() / dist
    root = root.expanduser().resolve()
    if root.exists():
        raise ScaffoldError(f"{root} already exists; refusing to overwrite it (choose another --dir)")
    values = {"name": name, "dist": dist, "module": module, "cls": cls, "kind": kind}
    plugin, test, readme = (TASK, TEST, README) if kind == "task" else (TRAIT, TRAIT_TEST, TRAIT_README)
    files = {
        "pyproject.toml": PYPROJECT,
        "README.md": readme,
        f"{module}/__init__.py": INIT,
        f"{module}/{kind}.py": plugin,
        f"tests/test_{kind}.py": test,
    }
    for rel, template in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(template.format(**values))
    return root
