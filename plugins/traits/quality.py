"""Data quality of a source: how surprising its completions are to the base model, duplicates, label noise."""

from __future__ import annotations

import math
from collections import defaultdict

from harness.api import SourceData, SourceTrait, completion_nll, hookimpl, pad_batch, tokenize_pairs


class Quality(SourceTrait):
    """Base-model completion perplexity, duplicate rates and a label-noise estimate.

    Parameters
    ----------
    max_examples : int, default 64
        Perplexity is computed on the first ``max_examples`` examples only (the source's own
        order, so the same ones every run): on 2 CPU cores SmolLM2 scores about 8 short
        examples a second. The other outputs use every example.
    batch_size : int, default 8
        Examples per forward pass. On 2 CPU cores 8 was measured faster than 32 (38 s against
        57 s for 64 GSM8K rationales): larger batches only add padding and memory traffic there.
    max_length : int, default 1024
        Longer (prompt + completion) token sequences lose the prompt's start, as in training;
        an example whose completion alone is longer is left out.

    Parameters are stored unchanged as attributes of the same names.

    Outputs
    -------
    completion_perplexity
        ``exp(sum NLL / T)``: each example is encoded as in training, the sequence lm-eval scores
        (the tokenizer's BOS if it adds one, and an EOS after a generation completion, see
        :func:`harness.api.tokenize_pairs`); one forward pass of the base model under
        ``torch.no_grad`` (right-padded batches, padding masked out, the head at completion
        positions only: :func:`harness.api.completion_nll`) gives, at every completion token, the
        negative natural-log likelihood of that token given everything before it;
        ``T`` is the number of such completion tokens over all evaluated examples (a token at
        position 0, with nothing before it, is not scored), so this is the exponential of the
        token-weighted mean NLL, the same as ``exp(model(input_ids, labels=...).loss)`` with
        prompt positions masked. Prompt tokens are context only. ``None`` when no completion
        token is scored.
    duplicate_rate
        Share of examples whose exact ``(prompt, completion)`` pair already appeared earlier in
        the source (the first occurrence is not a duplicate: ``[a, a, a, b]`` gives 2/4).
    prompt_duplicate_rate
        The same for the exact prompt alone.
    label_noise
        Classification only: share of labelled examples whose exact prompt occurs in the source
        with more than one distinct label (every such example counts, also the first). 0 when no
        prompt repeats; ``None`` for generation sources (no declared labels) or without labels.

    Every output is ``None`` for a source without examples.
    """

    name = "quality"
    description = ("Base-model perplexity of the completions given their prompts, duplicate rates and a "
                   "label-noise estimate (one prompt with several labels).")
    requires = frozenset({"source_data", "tokenizer", "base_model"})
    version = 2  # 2: examples encoded as training now encodes them (lm-eval's BOS, EOS after generation)
    outputs = ("completion_perplexity", "duplicate_rate", "prompt_duplicate_rate", "label_noise")

    def __init__(self, max_examples: int = 64, batch_size: int = 8, max_length: int = 1024):
        self.max_examples = max_examples
        self.batch_size = batch_size
        self.max_length = max_length

    def compute(self, source: SourceData) -> dict[str, float | None]:
        if not source.examples:
            return dict.fromkeys(self.outputs)
        out = {"completion_perplexity": self.perplexity(source), **self.duplicates(source)}
        return {key: out[key] for key in self.outputs}

    def duplicates(self, source: SourceData) -> dict[str, float | None]:
        """``duplicate_rate``, ``prompt_duplicate_rate`` and ``label_noise`` (no model needed)."""
        examples = source.examples
        out: dict[str, float | None] = dict.fromkeys(("duplicate_rate", "prompt_duplicate_rate", "label_noise"))
        if not examples:
            return out
        seen_pairs: set[tuple[str, str]] = set()
        seen_prompts: set[str] = set()
        pair_dups = prompt_dups = 0
        for ex in examples:
            pair_dups += (ex.prompt, ex.completion) in seen_pairs
            prompt_dups += ex.prompt in seen_prompts
            seen_pairs.add((ex.prompt, ex.completion))
            seen_prompts.add(ex.prompt)
        out["duplicate_rate"] = pair_dups / len(examples)
        out["prompt_duplicate_rate"] = prompt_dups / len(examples)

        labelled = [ex for ex in examples if ex.label is not None]
        if source.task.labels and labelled:
            labels_of: dict[str, set[int]] = defaultdict(set)
            for ex in labelled:
                labels_of[ex.prompt].add(ex.label)
            out["label_noise"] = sum(len(labels_of[ex.prompt]) > 1 for ex in labelled) / len(labelled)
        return out

    def perplexity(self, source: SourceData) -> float | None:
        """``exp`` of the mean completion-token NLL of the first ``max_examples`` examples."""
        model = getattr(source, "model", None)
        if model is None:
            raise ValueError("needs the base model (requires 'base_model')")
        if source.tokenizer is None:
            raise ValueError("needs the base model's tokenizer")
        import torch

        pairs = [(ex.prompt, ex.completion) for ex in source.examples[: self.max_examples]]
        rows, _ = tokenize_pairs(source.tokenizer, pairs, self.max_length, source.task.kind,
                                 setting="the quality trait's max_length")
        rows = [r for r in rows if any(t != -100 for t in r[1])]
        if not rows:
            return None
        rows.sort(key=lambda r: len(r[0]))  # similar lengths together: less padding
        pad_id = source.tokenizer.pad_token_id
        if pad_id is None:  # any id will do: padded positions are masked and never scored
            pad_id = source.tokenizer.eos_token_id if source.tokenizer.eos_token_id is not None else 0
        device = next(model.parameters()).device
        was_training = model.training
        model.eval()
        total_nll, total_tokens = 0.0, 0
        try:
            with torch.no_grad():
                for start in range(0, len(rows), self.batch_size):
                    nll, _ = completion_nll(model, pad_batch(rows[start: start + self.batch_size], pad_id, device))
                    total_nll += float(nll.sum())
                    total_tokens += len(nll)
        finally:
            model.train(was_training)
        return math.exp(total_nll / total_tokens) if total_tokens else None


@hookimpl
def register_traits(register):
    register(Quality)
