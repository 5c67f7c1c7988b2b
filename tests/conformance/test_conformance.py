"""Every built-in task passes the conformance checks of harness.authoring.conformance; broken tasks fail them."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from harness.api import plugins
from harness.api.filetasks import FileTask
from harness.api.tasks import Example, GeneratedTask, Task, classification_example, generation_example
from harness.authoring.conformance import N_TEST, N_TRAIN, check_disjoint, check_examples, check_task
from harness_plugins.tasks.code import Code
from harness_plugins.tasks.goat import Goat
from helpers import CASES, SHARED_DATA, write_splits

# File tasks with a real copy in ../shared/data: its train and test files. Where that folder is
# absent, these (like every other file task) read fixture files written from helpers.CASES.
SHARED = {"sst2": "sst2/{split}.tsv", "ag_news": "agnews/{split}.tsv", "gsm8k": "gsm8k/{split}.jsonl"}
# The registry-only `file` task, over SST-2's rows and columns.
FILE_OPTIONS = {"text_columns": ["sentence"], "label_column": "label", "labels": ["negative", "positive"],
                "abilities": ["sentiment"]}

TASKS = plugins.catalog().names("task")


def _data_files(data: str, tmp_path: Path) -> dict[str, str]:
    if data in SHARED:
        files = {split: SHARED_DATA / SHARED[data].format(split=split) for split in ("train", "test")}
        if all(p.is_file() for p in files.values()):
            return {split: str(p) for split, p in files.items()}
    return write_splits(data, tmp_path, N_TRAIN, N_TEST)


def _options(name: str, cls: type, tmp_path: Path) -> dict:
    if not issubclass(cls, FileTask):
        return {}
    if name == "file":
        return {"data_files": _data_files("sst2", tmp_path), **FILE_OPTIONS}
    return {"data_files": _data_files(name, tmp_path)}


@pytest.mark.parametrize("name", TASKS)
def test_builtin_task_conforms(name, tmp_path):
    cls = plugins.catalog().get("task", name).obj
    done = check_task(cls, **_options(name, cls, tmp_path))
    assert "check_export" in done


def test_every_file_task_has_fixture_rows():
    file_tasks = {n for n in TASKS if issubclass(plugins.catalog().get("task", n).obj, FileTask)}
    missing = file_tasks - {"file"} - set(CASES)
    assert not missing, f"add fixture rows for {sorted(missing)} to CASES in tests/helpers.py"


def test_generated_builtins_are_checked():
    generated = [n for n in TASKS if not issubclass(plugins.catalog().get("task", n).obj, FileTask)]
    assert {"arithmetic", "sentiment", "nli", "word_problems"} <= set(generated)


# --- deliberately broken tasks ------------------------------------------------------------------

class Good(GeneratedTask):
    name = "good_parity"
    description = "Is the number even?"
    abilities = ("arithmetic",)
    kind = "multiple_choice"
    labels = ("no", "yes")

    def generate(self, rng, label=None):
        n = rng.randrange(100_000)
        return classification_example(f"Is {n} even?\nAnswer:", self.labels, int(n % 2 == 0))


class OverlappingSplits(Task):
    """Ignores the split: train and test are the same examples."""

    name = "overlapping"
    abilities = ("testing",)
    kind = "multiple_choice"
    labels = ("no", "yes")

    def examples(self, split, n):
        rng = random.Random(0)
        out = []
        for _ in range(n):
            k = rng.randrange(10**6)
            out.append(classification_example(f"Is {k} even?\nAnswer:", self.labels, int(k % 2 == 0)))
        return out


class LabelOutOfRange(Good):
    name = "label_out_of_range"

    def generate(self, rng, label=None):
        n = rng.randrange(100_000)
        return Example(f"Is {n} even?\nAnswer:", " yes", label=2)


class CompletionWithoutSpace(Good):
    name = "no_space"

    def generate(self, rng, label=None):
        n = rng.randrange(100_000)
        ok = int(n % 2 == 0)
        return Example(f"Is {n} even?\nAnswer:", self.labels[ok], label=ok)


class WrongCompletion(Good):
    name = "wrong_completion"

    def generate(self, rng, label=None):
        n = rng.randrange(100_000)
        return Example(f"Is {n} even?\nAnswer:", " maybe", label=0)


class NotDeterministic(Good):
    name = "not_deterministic"
    _rng = random.Random()

    def generate(self, rng, label=None):
        return super().generate(self._rng)  # ignores the seeded generator


class BadName(Good):
    name = "bad-name"


class NoAbilities(Good):
    name = "no_abilities"
    abilities = ()


class BadKind(Good):
    name = "bad_kind"
    kind = "classification"


class AnswerNotExtracted(GeneratedTask):
    name = "answer_not_extracted"
    abilities = ("arithmetic",)
    kind = "generation"

    def generate(self, rng, label=None):
        a, b = rng.randrange(100), rng.randrange(100)
        return generation_example(f"What is {a} + {b} as a word-number like '12.0'?", f"{a + b}.0")


class LmEvalDisagrees(Good):
    """Its lm-eval config offers other label words than the ones it trains on."""

    name = "lm_eval_disagrees"

    def lm_eval_config(self, data_dir, n, alias=None):
        config = super().lm_eval_config(data_dir, n, alias)
        config["doc_to_choice"] = ["false", "true"]
        return config


class ShortTestFile(Good):
    name = "short_test_file"

    def lm_eval_config(self, data_dir, n, alias=None):
        return super().lm_eval_config(data_dir, n - 1, alias)


def test_a_good_throwaway_task_passes():
    assert check_task(Good)[-1] == "check_export"


@pytest.mark.parametrize("cls, expected", [
    (OverlappingSplits, "train and test splits overlap"),
    (LabelOutOfRange, "label 2 is out of range"),
    (CompletionWithoutSpace, "must start with a space"),
    (WrongCompletion, "is not ' ' + labels[0]"),
    (NotDeterministic, "not deterministic"),
    (BadName, "not a Python identifier"),
    (NoAbilities, "abilities is empty"),
    (BadKind, "kind 'classification' is not one of"),
    (AnswerNotExtracted, "extracts"),
    (LmEvalDisagrees, "choices ['false', 'true'] differ"),
    (ShortTestFile, "wrote 9 rows"),
])
def test_broken_task_fails_naming_the_problem(cls, expected):
    with pytest.raises(AssertionError) as exc:
        check_task(cls)
    message = str(exc.value)
    assert expected in message, message
    assert repr(cls.name) in message  # the message names the task


def test_single_checks_are_usable_alone():
    task = Good()
    train, test = task.examples("train", 5), task.examples("test", 5)
    check_examples(task, train, "train")
    check_disjoint(task, train, test)
    with pytest.raises(AssertionError, match="overlap"):
        check_disjoint(task, train, train[:1])


# --- file tasks: train and test must not share a row --------------------------------------------

class FirstRowsGoat(Goat):
    """Goat as it was: both splits read every row of the hub's one split (here its one file)."""

    def shares_rows(self):
        return False


def _one_file(tmp_path: Path, cls: type, n: int = 80) -> dict[str, str]:
    """One file of ``n`` rows of ``cls``'s fixture rows (numbered, so every prompt differs) for both splits."""
    files = write_splits(cls.name, tmp_path, n, 0)
    return {"train": files["train"], "test": files["train"]}


def test_check_task_fails_a_file_task_whose_splits_overlap(tmp_path):
    with pytest.raises(AssertionError, match="train and test splits overlap") as exc:
        check_task(FirstRowsGoat, data_files=_one_file(tmp_path, Goat))
    assert "'goat'" in str(exc.value)


@pytest.mark.parametrize("cls", [Goat, Code])
def test_goat_and_code_on_one_file_conform(cls, tmp_path):
    assert check_task(cls, data_files=_one_file(tmp_path, cls))[-1] == "check_export"
    assert check_task(cls, data_files={"train": _one_file(tmp_path, cls)["train"]})[-1] == "check_export"


def test_check_task_finds_an_overlap_anywhere_in_the_files(tmp_path):
    """A test row that is also a training row is found wherever it is, not only among the first n."""
    files = write_splits("sst2", tmp_path, 40, 15)
    train, test = (Path(files[split]).read_text().splitlines() for split in ("train", "test"))
    Path(files["test"]).write_text("\n".join([*test[:-1], train[-1]]) + "\n")  # the last rows agree
    cls = plugins.catalog().get("task", "sst2").obj
    with pytest.raises(AssertionError, match="train and test splits overlap: 1 prompt"):
        check_task(cls, data_files=files)
