"""Length of what a source teaches the model to generate, in base-model tokens."""

from __future__ import annotations

import statistics

from harness.hookspecs import hookimpl
from harness.traits import SourceData, Trait


class CompletionLength(Trait):
    """Mean and median completion length, and mean prompt length, in base-model tokens.

    Counted with the base model's own tokenizer, without special tokens, exactly as training
    sees them.
    """

    name = "completion_length"
    description = "Mean and median completion length and mean prompt length, in base-model tokens."
    requires = frozenset({"source_data", "tokenizer"})
    outputs = ("completion_tokens_mean", "completion_tokens_median", "prompt_tokens_mean")

    def compute(self, source: SourceData) -> dict[str, float | None]:
        if source.tokenizer is None:
            raise ValueError("needs the base model's tokenizer")
        encode = lambda text: len(source.tokenizer(text, add_special_tokens=False)["input_ids"])  # noqa: E731
        completions = [encode(ex.completion) for ex in source.examples]
        prompts = [encode(ex.prompt) for ex in source.examples]
        return {"completion_tokens_mean": statistics.fmean(completions),
                "completion_tokens_median": float(statistics.median(completions)),
                "prompt_tokens_mean": statistics.fmean(prompts)}


@hookimpl
def register_traits(register):
    register(CompletionLength)
