"""ARC-Easy (AI2 Reasoning Challenge): grade-school science questions, multiple choice over each
question's own options, scored with lm-eval's own ``arc/arc_easy.yaml``.

Files in the official ARC schema (``question.stem``, ``question.choices[{text, label}]``,
``answerKey``) or in the hub's flat one (``question``, ``choices{text, label}``, ``answerKey``)
are read; each row is written in the flat schema lm-eval's config reads, so the prompt
(``Question: <stem>\\nAnswer:``) and the choices (the option texts) are lm-eval's. The options
differ per question, so the task's ``labels`` are answer *positions* (A = first option, ..., E =
fifth): what a source's class distribution and a target's predicted-label shares count. Choice
labels in the file may be letters or digits (a few ARC questions use 1-4); only their position
matters.
"""

from __future__ import annotations

from harness.api import DataError, Example, FileTask, hookimpl

POSITIONS = ("A", "B", "C", "D", "E")


class ARCEasy(FileTask):
    """ARC-Easy from local JSON lines: a question, its 3-5 options and the key of the right one."""

    name = "arc_easy"
    description = "ARC-Easy science questions (AI2) from local files, scored with lm-eval's arc_easy config."
    abilities = ("reasoning", "knowledge")
    kind = "multiple_choice"
    labels = POSITIONS  # the position of the right option among the question's own
    choices_per_document = True  # completions are the option texts; conformance checks the label as a position
    hub_dataset, hub_config = "allenai/ai2_arc", "ARC-Easy"
    hub_splits = {"train": "train", "test": "test"}
    text_columns, target_column = ("question",), "label"
    lm_eval_yaml = "arc/arc_easy.yaml"

    def required_columns(self) -> tuple[str, ...]:
        return ("question", "choices", "answerKey")

    def check_row(self, row: dict, where: str) -> dict:
        """The row in lm-eval's flat schema, with ``label`` the position of the right option."""
        question = row.get("question")
        if isinstance(question, dict):  # the official schema: stem and choices under `question`
            row = {**row, "question": question.get("stem"), "choices": question.get("choices")}
        choices = row.get("choices")
        if isinstance(choices, list):  # a list of {text, label} (official) -> {text: [...], label: [...]}
            if not all(isinstance(c, dict) for c in choices):
                raise DataError(f"{where}, column 'choices': each option must be an object with 'text' and "
                                "'label', as in the official ARC files")
            choices = {"text": [c.get("text") for c in choices], "label": [c.get("label") for c in choices]}
        for column in self.required_columns():
            value = row.get(column) if column != "choices" else choices
            if value is None or (isinstance(value, str) and not value.strip()):
                raise DataError(f"{where}, column {column!r}: {'missing' if value is None else 'empty'} value")
        if not isinstance(choices, dict) or not isinstance(choices.get("text"), list) or \
                not isinstance(choices.get("label"), list) or len(choices["text"]) != len(choices["label"]):
            raise DataError(f"{where}, column 'choices': expected a list of {{text, label}} options (official "
                            "ARC schema) or {text: [...], label: [...]} of equal lengths (hub schema)")
        texts, keys = [str(t) for t in choices["text"]], [str(k) for k in choices["label"]]
        if not 2 <= len(texts) <= len(POSITIONS) or any(not t.strip() for t in texts):
            raise DataError(f"{where}, column 'choices': {len(texts)} options (some empty?); ARC questions "
                            f"have 2 to {len(POSITIONS)} non-empty options")
        key = str(row["answerKey"])
        if key not in keys:
            raise DataError(f"{where}, column 'answerKey': {key!r} is not one of the option labels {keys}")
        return {**row, "choices": {"text": texts, "label": keys}, "answerKey": key, "label": keys.index(key)}

    def examples(self, split, n):
        """Training pairs answer with the right option's text, as lm-eval scores it (after a space)."""
        out = []
        for row in self.clean_rows(split, n):
            answer = row["choices"]["text"][row["label"]]
            out.append(Example(self.render_prompt(row), " " + answer, label=row["label"]))
        return out


@hookimpl
def register_tasks(register):
    register(ARCEasy)
