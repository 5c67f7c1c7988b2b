"""GSM8K: grade-school math word problems, scored with lm-eval's own gsm8k config.

Rows have ``question`` and ``answer``; the answer is a worked rationale that ends in
``#### <number>``. A source trains on the whole rationale (the model learns to reason, then to
close with ``#### <number>``); the gold answer is the number after ``####``. As a target the task
reuses ``gsm8k/gsm8k.yaml`` (prompt ``Question: ...\\nAnswer:``, generation until ``Question:``,
its ``strict-match`` and ``flexible-extract`` filters) with only the data source replaced; the
score read is ``exact_match,flexible-extract`` (the last number of the output), which does not
depend on the model copying the ``####`` format. Its ``num_fewshot: 5`` is overridden by the
harness's ``evaluation.num_fewshot`` (0 by default).
"""

import re

from harness.api import DataError, FileTask, hookimpl

FINAL = re.compile(r"####\s*(.+?)\s*$", re.S)


def final_answer(rationale: str) -> str | None:
    """The number after ``####`` with thousands separators removed (``"#### 1,000"`` -> ``"1000"``)."""
    match = FINAL.search(str(rationale))
    return match.group(1).replace(",", "").strip() if match else None


class GSM8K(FileTask):
    """GSM8K from local files (columns ``question``, ``answer`` = rationale ending ``#### <number>``)."""

    name = "gsm8k"
    description = "GSM8K grade-school math word problems from local files, scored with lm-eval's gsm8k config."
    abilities = ("arithmetic", "reasoning")
    kind = "generation"
    hub_dataset, hub_config = "openai/gsm8k", "main"
    hub_splits = {"train": "train", "test": "test"}
    text_columns, target_column = ("question",), "answer"
    lm_eval_yaml = "gsm8k/gsm8k.yaml"
    # answer_regex/max_gen_toks are unused: the reused config brings its own filters (the score read
    # is flexible-extract, the last number of the output) and lm-eval's default 256-token limit.

    def check_row(self, row: dict, where: str) -> dict:
        row = super().check_row(row, where)
        if final_answer(row[self.target_column]) is None:
            raise DataError(f"{where}, column {self.target_column!r}: no final answer after '####'")
        return row

    def answer_of(self, row: dict) -> str:
        return final_answer(row[self.target_column])

    def completion_of(self, row: dict) -> str:
        return str(row[self.target_column]).strip()  # the full rationale, '#### <number>' included

    def metric(self) -> str:
        return "exact_match,flexible-extract"


@hookimpl
def register_tasks(register):
    register(GSM8K)
