"""BoolQ (SuperGLUE): yes/no questions about a Wikipedia passage, scored with lm-eval's own config.

Reuses ``super_glue/boolq/default.yaml`` (``<passage>\\nQuestion: <question>?\\nAnswer:`` over
``no``/``yes``) with only the data source replaced. The hub's SuperGLUE test split has no labels,
so the target split is ``validation``. Files in google/boolq's layout (a boolean ``answer``
column instead of ``label``) are read too.
"""

from harness.api import FileTask, hookimpl


class BoolQ(FileTask):
    """BoolQ from local files: columns ``passage``, ``question``, ``label`` (0/false = no, 1/true = yes)."""

    name = "boolq"
    description = "BoolQ yes/no reading comprehension (SuperGLUE) from local files, scored with lm-eval's boolq config."
    abilities = ("nlu", "reasoning")
    kind = "multiple_choice"
    labels = ("no", "yes")  # lm-eval's doc_to_choice
    label_values = (("0", "False", "false"), ("1", "True", "true"))
    hub_dataset, hub_config = "aps/super_glue", "boolq"
    hub_splits = {"train": "train", "test": "validation"}
    text_columns, target_column = ("passage", "question"), "label"
    lm_eval_yaml = "super_glue/boolq/default.yaml"

    def check_row(self, row: dict, where: str) -> dict:
        if self.target_column not in row and "answer" in row:  # google/boolq: answer true/false
            row = {**row, self.target_column: row["answer"]}
        return super().check_row(row, where)


@hookimpl
def register_tasks(register):
    register(BoolQ)
