"""Amazon polarity: binary sentiment of Amazon product reviews (Zhang et al. 2015), from local files.

lm-eval ships no config for it, so the prompt is this task's own: the review ``title`` (when the
file has one; some reviews have none) and its ``content``, then ``Sentiment:`` scored over
``negative``/``positive``. Only ``content`` and ``label`` are required.
"""

from harness.api import FileTask, hookimpl


class AmazonPolarity(FileTask):
    """Amazon reviews from local files: columns ``title`` (optional), ``content``, ``label`` (0 negative, 1 positive)."""

    name = "amazon_polarity"
    description = "Amazon product-review polarity (binary sentiment) from local files."
    abilities = ("sentiment",)
    kind = "multiple_choice"
    labels = ("negative", "positive")
    # The hub's 0/1, or the fastText release's __label__1/__label__2.
    label_values = (("0", "__label__1", "negative"), ("1", "__label__2", "positive"))
    hub_dataset, hub_config = "fancyzhx/amazon_polarity", "amazon_polarity"
    hub_splits = {"train": "train", "test": "test"}
    text_columns, target_column = ("content",), "label"
    template = ("{% if title is defined and title %}Title: {{title}}\n{% endif %}"
                "Review: {{content}}\nSentiment:")


@hookimpl
def register_tasks(register):
    register(AmazonPolarity)
