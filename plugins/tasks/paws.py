"""PAWS: paraphrase adversaries from word scrambling (Zhang et al. 2019), from local files.

lm-eval's ``paws-x/paws_en.yaml`` is a different task format: an empty prompt and one whole
sentence pair per choice (``<s1>, right? Yes, <s2>``), so it has no label words to fine-tune a
source on. The prompt reused here is therefore lm-eval's ``glue/mrpc/default.yaml``, the same
question over the same columns (``sentence1``, ``sentence2``, ``label``: 1 = paraphrase), scored
over ``no``/``yes``, with only the data source replaced.
"""

from harness.api import FileTask, hookimpl


class PAWS(FileTask):
    """PAWS (labeled_final) from local files: columns ``sentence1``, ``sentence2``, ``label`` (0 no, 1 yes)."""

    name = "paws"
    description = "PAWS adversarial paraphrase identification from local files, with lm-eval's MRPC prompt."
    abilities = ("nlu",)
    kind = "multiple_choice"
    labels = ("no", "yes")  # lm-eval's doc_to_choice for mrpc
    hub_dataset, hub_config = "google-research-datasets/paws", "labeled_final"
    hub_splits = {"train": "train", "test": "test"}
    text_columns, target_column = ("sentence1", "sentence2"), "label"
    lm_eval_yaml = "glue/mrpc/default.yaml"


@hookimpl
def register_tasks(register):
    register(PAWS)
