"""IMDB: binary sentiment of full-length movie reviews (Maas et al. 2011), from local files.

lm-eval ships no IMDB config, so the prompt is this task's own, in the style of lm-eval's SST-2
(``...\\nSentiment:`` scored over the label words ``negative``/``positive``).
"""

from harness.api import FileTask, hookimpl


class IMDB(FileTask):
    """IMDB reviews from local files: columns ``text`` and ``label`` (0/neg = negative, 1/pos = positive)."""

    name = "imdb"
    description = "IMDB movie-review sentiment (binary, long reviews) from local files."
    abilities = ("sentiment",)
    kind = "multiple_choice"
    labels = ("negative", "positive")
    label_values = (("0", "neg", "negative"), ("1", "pos", "positive"))
    hub_dataset, hub_config = "stanfordnlp/imdb", "plain_text"
    hub_splits = {"train": "train", "test": "test"}
    text_columns, target_column = ("text",), "label"
    template = "Review: {{text}}\nSentiment:"


@hookimpl
def register_tasks(register):
    register(IMDB)
