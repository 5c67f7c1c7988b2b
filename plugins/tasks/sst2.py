"""SST-2 (GLUE): binary sentiment of movie-review phrases, scored with lm-eval's own sst2 config."""

from harness.api import FileTask, hookimpl


class SST2(FileTask):
    """SST-2 from local files (columns ``sentence``, ``label`` 0/1), with lm-eval's sst2 prompt."""

    name = "sst2"
    description = "SST-2 movie-review sentiment (GLUE) from local files, scored with lm-eval's sst2 config."
    abilities = ("sentiment",)
    kind = "multiple_choice"
    labels = ("negative", "positive")
    hub_dataset, hub_config = "nyu-mll/glue", "sst2"
    hub_splits = {"train": "train", "test": "validation"}
    text_columns, target_column = ("sentence",), "label"
    lm_eval_yaml = "glue/sst2/default.yaml"


@hookimpl
def register_tasks(register):
    register(SST2)
