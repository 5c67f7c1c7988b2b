"""AG News: four-way topic classification of news articles (Zhang et al. 2015), from local files.

lm-eval ships no AG News config, so the prompt is this task's own. The label words are those of
the generated ``topic`` task (``world``, ``sports``, ``business``, ``science``), so the two are
scored the same way; raw labels may be the names (``World``, ``Sports``, ``Business``,
``Sci/Tech``, as in ../shared/data/agnews) or the hub's indices 0-3.
"""

from harness.api import FileTask, hookimpl


class AGNews(FileTask):
    """AG News from local files: columns ``text`` and ``label`` (World/Sports/Business/Sci/Tech or 0-3)."""

    name = "ag_news"
    description = "AG News four-way topic of news articles (world, sports, business, science) from local files."
    abilities = ("nlu",)
    kind = "multiple_choice"
    labels = ("world", "sports", "business", "science")
    label_values = (("World", "0"), ("Sports", "1"), ("Business", "2"), ("Sci/Tech", "3"))
    hub_dataset, hub_config = "fancyzhx/ag_news", "default"
    hub_splits = {"train": "train", "test": "test"}
    text_columns, target_column = ("text",), "label"
    template = "Article: {{text}}\nTopic:"


@hookimpl
def register_tasks(register):
    register(AGNews)
