"""The task contract: what a task plugin provides to be used as a source and as a target.

A task is usable two ways:

* as a **source**: :meth:`Task.train_pairs` gives (prompt, completion) pairs to fine-tune on;
* as a **target**: :meth:`Task.lm_eval_config` writes its test split to a local JSON-lines file and
  returns an inline lm-eval task config that reads it by absolute path (no hub access).

Classification tasks (``kind = "multiple_choice"``) are scored by lm-eval's loglikelihood over the
label words: the model is never asked to *produce* a label, so a small model is not penalised for
formatting, and the score is exact and cheap (one forward pass per label). Generation tasks
(``kind = "generation"``) are scored by exact match after extracting the answer with
``answer_regex`` (first match) from the greedy output, so "The answer is 42." and " 42" both count.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import re
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

Split = Literal["train", "test"]
# Training rows written for lm-eval to draw few-shot examples from (it samples k + 1 of them).
FEWSHOT_POOL = 100
# The field metadata key that keeps an option out of Task.fingerprint while it has its default.
OMIT_WHEN_DEFAULT = "omit_when_default"


@dataclass(frozen=True)
class Example:
    """One example. ``completion`` is the text trained on after ``prompt`` (it starts with a space).

    For classification ``label`` indexes the task's ``labels``; for generation ``answer`` is the
    gold string that the extracted output must equal.
    """

    prompt: str
    completion: str
    label: int | None = None
    answer: str | None = None


class TaskOptions(BaseModel):
    """Options every task accepts; tasks extend this with their own fields."""

    model_config = ConfigDict(extra="forbid")
    seed: int = Field(0, description="Seed of the data generator or sampler.")


class Task:
    """Base class of task plugins. Subclasses set the class attributes and implement ``examples``."""

    name: ClassVar[str]
    description: ClassVar[str] = ""
    abilities: ClassVar[tuple[str, ...]] = ()
    kind: ClassVar[Literal["multiple_choice", "generation"]]
    labels: ClassVar[tuple[str, ...]] = ()  # label words, multiple choice only
    answer_regex: ClassVar[str] = r"(-?\d+)"  # generation only: what counts as the answer
    max_gen_toks: ClassVar[int] = 16  # generation only
    version: ClassVar[int] = 1  # bump when the data a task produces changes: it enters cache keys
    Options: ClassVar[type[TaskOptions]] = TaskOptions

    def __init__(self, **options):
        self.options = self.Options(**options)

    # --- what subclasses implement -----------------------------------------------------------
    def examples(self, split: Split, n: int) -> list[Example]:
        """The first ``n`` examples of ``split``, the same on every call. Splits never overlap."""
        raise NotImplementedError

    # --- derived ------------------------------------------------------------------------------
    def train_pairs(self, n: int) -> list[tuple[str, str]]:
        """(prompt, completion) pairs for fine-tuning on this task as a source."""
        return [(ex.prompt, ex.completion) for ex in self.examples("train", n)]

    def fingerprint(self) -> str:
        """Stable hash of what defines this task's data: name, version and options
        (:meth:`fingerprint_options`)."""
        blob = json.dumps({"task": self.name, "version": self.version,
                           "options": self.fingerprint_options()}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    def fingerprint_options(self) -> dict:
        """The options as they enter the fingerprint (all of them, as JSON; subclasses may leave out
        an option at its default that was added later, so caches made before it stay valid).

        An option whose field says ``json_schema_extra={"omit_when_default": True}`` is left out
        while it has its default: an option added to a task that leaves the default data as it
        was keeps the fingerprints (so the cached adapters and cells) of data made before it.
        """
        options = self.options.model_dump(mode="json")
        for name, info in type(self.options).model_fields.items():
            extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
            if extra.get(OMIT_WHEN_DEFAULT) and getattr(self.options, name) == info.default:
                options.pop(name, None)
        return options

    def write_test_file(self, data_dir: Path, n: int) -> Path:
        """Write the first ``n`` test examples as JSON lines; the file name carries their hash."""
        rows = [self.row_of(ex) for ex in self.examples("test", n)]
        return write_rows(rows, data_dir, self.name)

    def fewshot_rows(self, n: int) -> list[dict] | None:
        """Up to ``n`` training rows to draw few-shot examples from, written like the test rows
        (file tasks: None when they have no training rows here)."""
        return [self.row_of(ex) for ex in self.examples("train", n)]

    @staticmethod
    def row_of(ex: Example) -> dict:
        """The JSON row a generated example is written as (what the inline config's templates read)."""
        return {"prompt": ex.prompt, "label": ex.label, "answer": ex.answer}

    def add_fewshot(self, config: dict, data_dir: Path, num_fewshot: int, n_test: int) -> dict:
        """Point ``config``'s few-shot examples away from the scored rows (lm-eval otherwise draws
        them from the test split, the current document included).

        Training rows are written beside the test file and named as ``fewshot_split``; a task
        without (enough) training rows draws from the test split with ``fewshot_split: test``, which
        makes lm-eval leave the current document out, so it needs more than ``num_fewshot`` of the
        ``n_test`` scored rows. ``config["fewshot_split"]`` records which.
        """
        if num_fewshot <= 0:
            return config
        rows = self.fewshot_rows(max(FEWSHOT_POOL, num_fewshot))
        if rows and len(rows) >= num_fewshot:
            files = config["dataset_kwargs"]["data_files"]
            files["train"] = str(write_rows(rows, data_dir, f"{self.name}-shots"))
            config["fewshot_split"] = "train"
            return config
        if n_test <= num_fewshot:
            from harness.errors import DataError  # a ValueError the CLI reports (exit 2), no traceback

            raise DataError(f"task {self.name!r}: {num_fewshot} few-shot examples must come from its own test "
                            f"rows (it has no training rows here), which needs a limit above {num_fewshot}, "
                            f"not {n_test}; give it training rows (data_files.train) or lower evaluation.num_fewshot")
        config["fewshot_split"] = config.get("test_split", "test")
        return config

    def lm_eval_config(self, data_dir: Path, n: int, alias: str | None = None, num_fewshot: int = 0) -> dict:
        """An inline lm-eval task config over ``n`` test examples written under ``data_dir``;
        with ``num_fewshot`` > 0, few-shot examples come from training rows (:meth:`add_fewshot`)."""
        config = {
            "task": alias or self.name,
            "dataset_path": "json",
            "dataset_kwargs": {"data_files": {"test": str(self.write_test_file(data_dir, n))}},
            "test_split": "test",
            "doc_to_text": "{{prompt}}",
        }
        if self.kind == "multiple_choice":
            config.update({
                "output_type": "multiple_choice",
                "doc_to_choice": list(self.labels),
                "doc_to_target": "{{label}}",
                "metric_list": [{"metric": "acc", "aggregation": "mean", "higher_is_better": True}],
            })
        else:
            config.update({
                "output_type": "generate_until",
                "doc_to_target": "{{answer}}",
                "generation_kwargs": {"until": ["\n"], "max_gen_toks": self.max_gen_toks,
                                      "do_sample": False},
                "filter_list": [{"name": "extract", "filter": [
                    {"function": "regex", "regex_pattern": self.answer_regex},
                    {"function": "take_first"}]}],
                "metric_list": [{"metric": "exact_match", "aggregation": "mean",
                                 "higher_is_better": True}],
            })
        return self.add_fewshot(config, data_dir, num_fewshot, n)

    def metric(self) -> str:
        """The metric key lm-eval reports for this task (``metric,filter``); the cell's value is
        that entry of lm-eval's results, its per-sample records those of that filter."""
        return "acc,none" if self.kind == "multiple_choice" else "exact_match,extract"


def write_rows(rows: list[dict], data_dir: Path, stem: str) -> Path:
    """Rows as JSON lines in ``data_dir/<stem>-<hash>.jsonl``: the name follows the content, so
    cache keys built from it follow the data, and an existing file is already right."""
    from harness.files import write_text_atomic

    text = "".join(json.dumps(r, sort_keys=True, default=str) + "\n" for r in rows)
    path = Path(data_dir).resolve() / f"{stem}-{hashlib.sha256(text.encode()).hexdigest()[:16]}.jsonl"
    try:
        if path.read_text() == text:
            return path
        logging.getLogger("harness.cache.store").warning(
            "data file %s does not hold what its name promises (damaged or edited); writing it again", path)
    except FileNotFoundError:
        pass
    except (OSError, UnicodeDecodeError) as exc:
        logging.getLogger("harness.cache.store").warning("data file %s is unreadable (%s); writing it again", path, exc)
    write_text_atomic(path, text)
    return path


def content_share(text: str) -> float:
    """A number in [0, 1] fixed by ``text`` alone (a hash): which split a prompt or row goes to, the
    same on every machine and in every run, whatever else is asked for."""
    return int(hashlib.sha256(text.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF


def first_match(regex: str, text: str) -> str | None:
    """What lm-eval's regex filter keeps: the first match (the first non-empty group of it)."""
    matches = re.findall(regex, text)
    if not matches:
        return None
    match = matches[0]
    return next((m for m in match if m), "") if isinstance(match, tuple) else match


class GeneratedTask(Task):
    """A task whose data the project generates, deterministically, from a seed.

    Subclasses implement :meth:`generate`, one random example per call. Each candidate goes to
    ``test`` or ``train`` by a hash of its prompt, so the splits are disjoint by construction and
    each split is the same whatever ``n`` the other was asked for.
    """

    test_share: ClassVar[float] = 0.3

    def generate(self, rng: random.Random, label: int | None = None) -> Example:
        """One random example; with ``label`` given, one of that label."""
        raise NotImplementedError

    def class_shares(self) -> list[float] | None:
        """Exact label shares to produce (one per label), or None to let ``generate`` choose.

        When given, the label of each next example is the one whose count lags its quota the
        most, so after any ``n`` examples every label's count is within one of ``share * n`` and
        exactly equal whenever that is a whole number: ``class_balance`` options are honoured
        exactly, not only in expectation.
        """
        return None

    def _split_of(self, prompt: str) -> Split:
        return "test" if content_share(prompt) < self.test_share else "train"

    def examples(self, split: Split, n: int) -> list[Example]:
        rng = random.Random(f"{self.name}:{self.options.seed}")
        out: list[Example] = []
        seen: set[str] = set()
        shares = self.class_shares()
        counts = [0] * len(shares or ())
        attempts = 0
        while len(out) < n:
            attempts += 1
            if attempts > 50 * n + 1000:
                from harness.errors import DataError  # a ValueError the CLI reports (exit 2), no traceback

                raise DataError(f"task {self.name!r} cannot produce {n} distinct {split} examples "
                                f"with options {self.options.model_dump()}; ask for fewer")
            if shares is None:
                ex = self.generate(rng)
            else:
                k = len(out) + 1
                label = max(range(len(shares)), key=lambda i: (shares[i] * k - counts[i], -i))
                ex = self.generate(rng, label)
            if ex.prompt in seen or self._split_of(ex.prompt) != split:
                continue
            seen.add(ex.prompt)
            out.append(ex)
            if shares is not None:
                counts[ex.label] += 1
        return out


def classification_example(prompt: str, labels: tuple[str, ...], label: int) -> Example:
    """A multiple-choice example whose completion is the label word after lm-eval's space."""
    return Example(prompt=prompt, completion=" " + labels[label], label=label)


def generation_example(prompt: str, answer: str) -> Example:
    """A generation example; the newline teaches the model to stop where lm-eval's `until` does."""
    return Example(prompt=prompt, completion=f" {answer}\n", answer=answer)
