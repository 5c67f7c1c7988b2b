"""MNLI (GLUE): three-way natural language inference, scored with lm-eval's own glue/mnli config.

The prompt is lm-eval's (``<premise>\\nQuestion: <hypothesis> True, False or Neither?\\nAnswer:``,
a Python function in lm-eval; each written row carries its output) and so are the label words:
``True`` (entailment), ``Neither`` (neutral), ``False`` (contradiction). The hub's test split has
no labels (-1), so the target split is ``validation_matched``.
"""

from harness.api import FileTask, hookimpl


class MNLI(FileTask):
    """MNLI from local files: columns ``premise``, ``hypothesis``, ``label`` (0/1/2 or entailment/neutral/contradiction)."""

    name = "mnli"
    description = "MultiNLI three-way entailment (GLUE) from local files, scored with lm-eval's mnli config."
    abilities = ("nlu",)
    kind = "multiple_choice"
    labels = ("True", "Neither", "False")  # lm-eval's doc_to_choice, in label order
    label_values = (("0", "entailment"), ("1", "neutral"), ("2", "contradiction"))
    hub_dataset, hub_config = "nyu-mll/glue", "mnli"
    hub_splits = {"train": "train", "test": "validation_matched"}
    text_columns, target_column = ("premise", "hypothesis"), "label"
    lm_eval_yaml = "glue/mnli/default.yaml"


@hookimpl
def register_tasks(register):
    register(MNLI)
