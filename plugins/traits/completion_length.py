"""Length of what a source teaches the model to generate, and of its prompts, in base-model tokens."""

from __future__ import annotations

import math
import statistics

from harness.api import SourceData, SourceTrait, hookimpl


def nearest_rank(values: list[int], q: float) -> float:
    """The ``q`` quantile (0 < q <= 1) by the nearest-rank method.

    The smallest value such that at least ``q`` of the values are at most it: with the values
    sorted ascending as ``x_1 <= ... <= x_n``, ``x_r`` with ``r = ceil(q * n)``. No
    interpolation, so the result is always one of the values.
    """
    ordered = sorted(values)
    rank = max(1, math.ceil(q * len(ordered) - 1e-9))  # tolerance: 0.9 * 10 is 9.000000000000002
    return float(ordered[rank - 1])


class CompletionLength(SourceTrait):
    """Completion and prompt length in base-model tokens: mean, median and 90th percentile.

    Each text is counted as ``len(tokenizer(text, add_special_tokens=False)["input_ids"])`` with
    the base model's own tokenizer, i.e. without BOS/EOS or other special tokens, exactly as
    training sees them. Completions and prompts are counted separately, one length per example.

    Outputs
    -------
    completion_tokens_mean, prompt_tokens_mean
        Arithmetic mean of the per-example lengths.
    completion_tokens_median, prompt_tokens_median
        ``statistics.median`` of the lengths: the middle value, or the mean of the two middle
        values when the count is even.
    completion_tokens_p90, prompt_tokens_p90
        90th percentile by the nearest-rank method (no interpolation): the sorted lengths'
        ``ceil(0.9 * n)``-th value (1-based), see :func:`nearest_rank`.

    Every output is ``None`` for a source without examples.
    """

    name = "completion_length"
    description = ("Mean, median and 90th-percentile completion and prompt length, in base-model tokens.")
    requires = frozenset({"source_data", "tokenizer"})
    outputs = ("completion_tokens_mean", "completion_tokens_median", "completion_tokens_p90",
               "prompt_tokens_mean", "prompt_tokens_median", "prompt_tokens_p90")
    version = 2

    def compute(self, source: SourceData) -> dict[str, float | None]:
        if source.tokenizer is None:
            raise ValueError("needs the base model's tokenizer")
        if not source.examples:
            return dict.fromkeys(self.outputs)

        def lengths(texts: list[str]) -> list[int]:
            return [len(ids) for ids in source.tokenizer(texts, add_special_tokens=False)["input_ids"]]

        out: dict[str, float | None] = {}
        for part, values in (("completion", lengths([ex.completion for ex in source.examples])),
                             ("prompt", lengths([ex.prompt for ex in source.examples]))):
            out[f"{part}_tokens_mean"] = statistics.fmean(values)
            out[f"{part}_tokens_median"] = float(statistics.median(values))
            out[f"{part}_tokens_p90"] = nearest_rank(values, 0.9)
        return {key: out[key] for key in self.outputs}


@hookimpl
def register_traits(register):
    register(CompletionLength)
