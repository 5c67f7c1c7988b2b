"""GOAT-style arithmetic (Liu & Low 2023, hub dataset tiedong/goat), from local files.

GOAT rows have ``instruction`` (the question in words, e.g. "What is 94140209+73?"), ``input``
(the bare expression, "94140209 + 73"), ``output`` (the worked answer, with the chain of thought
for multi-digit multiplication and division) and ``answer`` (the direct result, e.g. "94140282",
or "23 R 36" for division with a remainder). The prompt reads ``instruction`` (or ``input`` with
``prompt_column: input``); a source trains on the direct answer and the target is scored by exact
match on it, as the project's generated arithmetic task is. A file with ``output`` but no
``answer`` column is read too: the answer is then what follows the output's last ``=``.

The hub dataset has a single ``train`` split, which both splits read: one file (as
``data_files.train``, ``data_files.test`` or both) is divided between them by a hash of each row's
problem, about 30% for test (``FileTask.split_of``), so a goat source and a goat target never
share a row, even as two registry entries naming the same file (rows are divided by ``input``
where they have it, whichever column the prompt reads). To use every row of files you
split yourself, give both ``data_files.train`` and ``data_files.test``.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from harness.api import DataError, FileTask, FileTaskOptions, first_match, hookimpl

TEMPLATES = {"instruction": "{{instruction}}\nAnswer:", "input": "{{input}} ="}


class GoatOptions(FileTaskOptions):
    prompt_column: Literal["instruction", "input"] = Field(
        "instruction", description="Prompt from the worded `instruction` or the bare expression `input`.")


class Goat(FileTask):
    """GOAT arithmetic from local files: ``instruction`` (or ``input``) and ``answer`` (or ``output``)."""

    name = "goat"
    description = "GOAT arithmetic (large-number +, -, *, / with remainders) from local files, exact match."
    abilities = ("arithmetic",)
    kind = "generation"
    hub_dataset, hub_config = "tiedong/goat", None
    hub_splits = {"train": "train", "test": "train"}  # the hub has one split: its rows are divided (split_of)
    text_columns, target_column = ("instruction",), "answer"
    answer_regex = r"(-?\d+(?: R \d+)?)"  # "23 R 36" is one answer
    max_gen_toks = 32  # 16-digit operands give up to 32-digit products
    version = 1
    Options = GoatOptions

    def __init__(self, **options):
        super().__init__(**options)
        self.text_columns = (self.options.prompt_column,)
        self.template = TEMPLATES[self.options.prompt_column]

    def split_key(self, row: dict) -> str:
        # The bare expression where there is one: the same problem, hence the same split, whichever
        # column a source's or a target's prompt reads.
        return str(row.get("input") or row[self.options.prompt_column])

    def check_row(self, row: dict, where: str) -> dict:
        answer = row.get(self.target_column)
        if answer is None and isinstance(row.get("output"), str) and "=" in row["output"]:
            answer = row["output"].rsplit("=", 1)[1]
            row = {**row, self.target_column: answer}
        row = super().check_row(row, where)
        gold = str(row[self.target_column]).strip()
        if first_match(self.answer_regex, gold) != gold:
            raise DataError(f"{where}, column {self.target_column!r}: answer {gold!r} is not a number "
                            "(or '<quotient> R <remainder>')")
        return {**row, self.target_column: gold}


@hookimpl
def register_tasks(register):
    register(Goat)
