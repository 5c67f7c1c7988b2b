"""Code instructions (Code Alpaca): write a short program for an instruction. Meant as a source."""

from harness.api import FileTask, hookimpl


class Code(FileTask):
    """Code Alpaca from local files: columns ``instruction``, ``input`` (may be empty) and ``output``.

    As a source it teaches long, code-shaped generations (the paper's "code" source). As a target it
    is strict: the first line of the greedy output must equal the reference's first line, which only
    short one-line programs pass; use it as a target for format drift, not coding skill.

    The hub dataset has a single ``train`` split, which both splits read: one file is divided
    between them by a hash of each row's instruction, about 30% for test (``FileTask.split_of``);
    give both ``data_files.train`` and ``data_files.test`` to use every row of files you split.
    """

    name = "code"
    description = "Code Alpaca instruction-to-code pairs from local files (a source of long code generations)."
    abilities = ("code",)
    kind = "generation"
    hub_dataset, hub_config = "sahil2801/CodeAlpaca-20k", None
    hub_splits = {"train": "train", "test": "train"}  # the hub has one split: its rows are divided (split_of)
    text_columns, target_column = ("instruction",), "output"
    template = "Instruction: {{instruction}}{% if input is defined and input %}\nInput: {{input}}{% endif %}\nCode:"
    answer_regex = r"(?m)^\s*(\S.*?)\s*$"  # the first non-blank line
    max_gen_toks = 64

    def answer_of(self, row: dict) -> str:
        return next(line.strip() for line in str(row["output"]).splitlines() if line.strip())


@hookimpl
def register_tasks(register):
    register(Code)
