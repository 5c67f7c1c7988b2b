"""The ``file`` task: a task defined in the registry alone, with no Python.

Classification (scored by loglikelihood over the label words)::

    - task: file
      alias: reviews
      options:
        data_files: {train: reviews_train.csv, test: reviews.csv}
        text_columns: [review]
        label_column: stars
        labels: [negative, positive]
        label_values: ["1", "5"]          # raw values in the file, in the order of `labels`
        template: "Review: {{review}}\\nSentiment:"
        abilities: [sentiment]

Generation (scored by exact match of the first ``answer_regex`` match in the greedy output)::

    - task: file
      alias: sums
      options:
        data_files: {test: sums.jsonl}
        text_columns: [question]
        answer_column: result
        answer_regex: "(-?\\\\d+)"
        template: "{{question}}\\nAnswer:"
        abilities: [arithmetic]

``template`` is Jinja over the row's columns and may only use ``text_columns`` (those are the ones
checked in every row); without it the prompt is each text column as ``<column>: <value>`` then
``Answer:``. ``labels``, ``kind`` (from ``label_column`` or ``answer_column``), ``abilities`` and the
rest become attributes of the task instance. Give every use an ``alias``: results are named by it.
One file given as both ``train`` and ``test`` is divided between them (about 30% for test, by a hash
of the text columns), and each split's rows are a seeded sample, stratified by label for
classification (``FileTask.clean_rows``).
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator, model_validator

from harness.api import DataError, FileTask, FileTaskOptions, first_match, hookimpl


class FileOptions(FileTaskOptions):
    text_columns: list[str] = Field(..., min_length=1, description="Columns the prompt reads (each must be non-empty in every row).")
    template: str | None = Field(None, description="Jinja prompt over the text columns, e.g. 'Review: {{review}}\\nSentiment:'. Default: '<column>: {{column}}' lines, then 'Answer:'.")
    label_column: str | None = Field(None, description="Classification: the column holding the label.")
    labels: list[str] | None = Field(None, description="Classification: the label words lm-eval scores, in label order.")
    label_values: list[str] | None = Field(None, description="Classification: the raw value in the file of each label, in the order of `labels` (default 0, 1, ...).")
    answer_column: str | None = Field(None, description="Generation: the column holding the gold answer.")
    answer_regex: str = Field(r"(-?\d+)", description="Generation: what counts as the answer in the output (first match) and in the gold.")
    max_gen_toks: int = Field(16, ge=1, description="Generation: most tokens generated per prompt.")
    kind: Literal["multiple_choice", "generation"] | None = Field(None, description="Optional: implied by label_column or answer_column.")
    abilities: list[str] = Field(default_factory=list, description="Ability tags of the task, e.g. [sentiment].")
    description: str = Field("", description="One line saying what the task is.")

    @field_validator("labels", "label_values", mode="before")
    @classmethod
    def _as_strings(cls, value):
        # YAML reads `label_values: [1, 5]` as numbers; the file's values are compared as text.
        if isinstance(value, (list, tuple)):
            return [v if isinstance(v, str) else str(v) for v in value]
        return value

    @model_validator(mode="after")
    def _consistent(self):
        if (self.label_column is None) == (self.answer_column is None):
            raise ValueError("give exactly one of `label_column` (classification) or `answer_column` (generation)")
        kind = "multiple_choice" if self.label_column else "generation"
        if self.kind is not None and self.kind != kind:
            raise ValueError(f"`kind: {self.kind}` contradicts "
                             f"`{'label_column' if self.label_column else 'answer_column'}`, which makes it {kind}")
        self.kind = kind
        target = self.label_column or self.answer_column
        if target in self.text_columns:
            raise ValueError(f"column {target!r} is both a text column and the "
                             f"{'label' if self.label_column else 'answer'} column: the prompt would give the answer away")
        if len(set(self.text_columns)) != len(self.text_columns):
            raise ValueError(f"`text_columns` repeats a column: {self.text_columns}")
        if kind == "multiple_choice":
            if not self.labels or len(self.labels) < 2:
                raise ValueError("a classification file task needs `labels`: two or more label words")
            if len(set(self.labels)) != len(self.labels) or any(not w.strip() for w in self.labels):
                raise ValueError(f"`labels` must be distinct, non-empty words: {self.labels}")
            if self.label_values is not None:
                if len(self.label_values) != len(self.labels):
                    raise ValueError(f"`label_values` has {len(self.label_values)} values but `labels` has "
                                     f"{len(self.labels)}: give one raw value per label, in the same order")
                if len(set(self.label_values)) != len(self.label_values):
                    raise ValueError(f"`label_values` must be distinct: {self.label_values}")
        else:
            if self.labels is not None or self.label_values is not None:
                raise ValueError("`labels` and `label_values` are for classification (`label_column`), not `answer_column`")
            try:
                re.compile(self.answer_regex)
            except re.error as exc:
                raise ValueError(f"`answer_regex` {self.answer_regex!r} is not a valid regular expression: {exc}") from None
        if self.template is not None:
            import jinja2
            from jinja2 import meta

            try:
                parsed = jinja2.Environment().parse(self.template)
            except jinja2.TemplateSyntaxError as exc:
                raise ValueError(f"`template` is not valid Jinja: {exc.message} (line {exc.lineno})") from None
            used = meta.find_undeclared_variables(parsed)
            private = _private_access(parsed)
            if private:
                # Prompts are rendered in Jinja's sandbox anyway; refused here so `harness validate` says so.
                raise ValueError(f"`template` reads {private!r}: a template may only read the row's columns, not "
                                 "attributes that start with '_' (a way out of the template into Python)")
            unknown = sorted(used - set(self.text_columns))
            if unknown:
                raise ValueError(f"`template` uses {', '.join(map(repr, unknown))}, not in `text_columns` "
                                 f"{self.text_columns}; add them there (so every row is checked for them)")
            if not used:
                raise ValueError("`template` uses no column: write e.g. 'Review: {{" + self.text_columns[0] + "}}\\nSentiment:'")
        return self


def _private_access(parsed) -> str | None:
    """The first attribute or key starting with '_' that a parsed template reads (``x.__class__``,
    ``x['_y']``, ``x|attr('__init__')``), or None."""
    from jinja2 import nodes

    for node in parsed.find_all((nodes.Getattr, nodes.Getitem, nodes.Filter)):
        if isinstance(node, nodes.Getattr):
            names = [node.attr]
        elif isinstance(node, nodes.Getitem):
            names = [node.arg.value] if isinstance(node.arg, nodes.Const) else []
        else:
            names = [a.value for a in node.args if isinstance(a, nodes.Const)] if node.name == "attr" else []
        for name in names:
            if isinstance(name, str) and name.startswith("_"):
                return name
    return None


class FileDefinedTask(FileTask):
    """A classification or generation task defined entirely by its options (columns, labels, template)."""

    name = "file"
    description = "A task defined in the registry alone: local data file, columns, labels or answer, prompt template."
    kind = "multiple_choice"  # the class default; each instance's comes from its options
    hub_dataset = "(none: local files only)"
    Options = FileOptions

    def __init__(self, **options):
        super().__init__(**options)
        o = self.options
        self.kind = o.kind
        self.abilities = tuple(o.abilities)
        self.text_columns = tuple(o.text_columns)
        self.target_column = o.label_column or o.answer_column
        self.labels = tuple(o.labels or ())
        self.label_values = tuple(o.label_values or ())
        self.answer_regex = o.answer_regex
        self.max_gen_toks = o.max_gen_toks
        self.template = o.template or "".join(f"{c}: {{{{{c}}}}}\n" for c in o.text_columns) + "Answer:"
        if o.description:
            self.description = o.description

    def data_file(self, split):
        if not self.options.data_files.get(split):
            raise DataError(f"task 'file' needs options.data_files.{split}: a local CSV, TSV, JSONL or Parquet "
                            f"file with columns {', '.join(self.required_columns())}")
        return super().data_file(split)

    def check_row(self, row: dict, where: str) -> dict:
        row = super().check_row(row, where)
        if self.kind == "generation":
            gold = str(row[self.target_column]).strip()
            if first_match(self.answer_regex, gold) != gold:
                raise DataError(f"{where}, column {self.target_column!r}: answer {gold!r} is not what "
                                f"answer_regex {self.answer_regex!r} extracts from it, so it could never match")
            row = {**row, self.target_column: gold}
        return row


@hookimpl
def register_tasks(register):
    register(FileDefinedTask)
