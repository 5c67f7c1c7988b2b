"""Examples as the token sequences lm-eval scores: what training trains on, and what a trait that
reads the base model (perplexity, say) should read too.

lm-eval 0.4.13's ``HFLM`` rules, reproduced: its BOS rule, ``_encode_pair``'s move of trailing
whitespace from the context to the continuation and its context/continuation split for
loglikelihood, ``tok_batch_encode`` for generation (with the tokenizer's EOS after the answer, so
adapters learn to stop). A too-long example loses the start of its prompt; one whose completion
alone does not fit is left out and counted.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal, get_args

if TYPE_CHECKING:
    import torch

TaskKind = Literal["multiple_choice", "generation"]  # Task.kind


def scorer_encode(tokenizer, text: str, generation: bool) -> list[int]:
    """``text`` encoded as lm-eval's ``HFLM`` encodes a context (``add_bos_token`` unset, as the
    harness builds it): with the tokenizer's own special tokens (a BOS for Llama-3, none for
    SmolLM2), unless the text already starts with the BOS text. loglikelihood's ``tok_encode``
    looks for the decoded prefix token (BOS, else EOS); generate_until's ``tok_batch_encode`` for
    ``bos_token`` only.
    """
    if generation:
        bos = tokenizer.bos_token
    else:
        prefix = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id
        bos = None if prefix is None else tokenizer.decode(prefix)
    plain = bos is not None and text.startswith(bos)
    return tokenizer(text, add_special_tokens=not plain)["input_ids"]


def scored_pair(tokenizer, prompt: str, completion: str, kind: TaskKind) -> tuple[list[int], list[int]]:
    """(context ids, continuation ids) of one example, the sequence lm-eval scores it on.

    Classification, as ``_encode_pair`` for loglikelihood: the prompt's trailing whitespace moves
    to the continuation, and the continuation is ``encode(context + continuation)`` after the
    context's tokens. Generation: the context as generate_until encodes it (whitespace kept), the
    completion after it the same way, then EOS: generate_until stops at EOS, and gsm8k-style
    ``until`` lists hold no newline, so an adapter that never learnt to stop rambles on, and
    what it adds decides a last-number filter's answer.
    """
    generation = kind == "generation"
    if not generation:
        n_spaces = len(prompt) - len(prompt.rstrip())
        if n_spaces:
            prompt, completion = prompt[:-n_spaces], prompt[-n_spaces:] + completion
    context = scorer_encode(tokenizer, prompt, generation)
    continuation = scorer_encode(tokenizer, prompt + completion, generation)[len(context):]
    eos = tokenizer.eos_token_id
    if generation and eos is not None and continuation[-1:] != [eos]:
        continuation.append(eos)
    return context, continuation


def leading_bos(context: list[int], bos_id: int | None) -> int:
    """1 when the context starts with the BOS token (the scorer always has it), else 0."""
    return int(bos_id is not None and context[:1] == [bos_id])


def fit(context: list[int], continuation: list[int], max_length: int, bos_id: int | None):
    """(input_ids, labels) of at most ``max_length`` tokens, prompt positions masked with -100, or
    None when the continuation alone (with a leading BOS) is longer. Only the prompt is cut, from
    its start, so the answer is trained on whole; a leading BOS stays, as the scorer always has it."""
    lead = leading_bos(context, bos_id)
    room = max_length - lead - len(continuation)
    if room < 0:
        return None
    prompt = context[lead:]
    context = context[:lead] + prompt[max(0, len(prompt) - room):]
    return context + continuation, [-100] * len(context) + continuation


def tokenize_pairs(tokenizer, pairs: list[tuple[str, str]], max_length: int, kind: TaskKind,
                   setting: str = "lora.max_length") -> tuple[list[tuple[list[int], list[int]]], int]:
    """(input_ids, labels) rows of the pairs that fit in ``max_length`` tokens, and how many did not.

    Each row is the sequence lm-eval scores (:func:`scored_pair`: the same BOS, the same split of
    context and continuation, EOS after generation completions), with the prompt cut from its start
    to fit; an example whose completion alone is too long is dropped and counted. Raises
    ValueError when every one is, naming ``setting`` (where ``max_length`` is set) as what to raise.
    """
    if kind not in get_args(TaskKind):
        raise ValueError(f"task kind {kind!r} is not one of {get_args(TaskKind)}")
    rows, longest = [], 0
    for prompt, completion in pairs:
        context, continuation = scored_pair(tokenizer, prompt, completion, kind)
        row = fit(context, continuation, max_length, tokenizer.bos_token_id)
        if row is None:
            longest = max(longest, leading_bos(context, tokenizer.bos_token_id) + len(continuation))
        else:
            rows.append(row)
    if pairs and not rows:
        raise ValueError(f"every one of the {len(pairs)} examples has a completion longer than {setting} "
                         f"({max_length} tokens) on its own: the longest needs {longest} tokens (with BOS/EOS). "
                         f"Raise {setting} in the registry above {longest}, leaving room for the prompt, "
                         "or use shorter completions")
    return rows, len(pairs) - len(rows)


def pad_batch(rows, pad_id: int, device) -> dict[str, torch.Tensor]:
    """Right-padded ``input_ids``, ``labels`` (-100 on padding) and ``attention_mask`` for
    (input_ids, labels) rows, as wide as the longest row only."""
    import torch  # here, not at the top: importing harness.api must stay light

    width = max(len(ids) for ids, _ in rows)
    input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    labels = torch.full((len(rows), width), -100, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, (ids, lab) in enumerate(rows):
        input_ids[i, : len(ids)] = torch.tensor(ids)
        labels[i, : len(lab)] = torch.tensor(lab)
        mask[i, : len(ids)] = 1
    return {"input_ids": input_ids.to(device), "labels": labels.to(device), "attention_mask": mask.to(device)}


def completion_nll(model, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """The negative natural-log likelihood of every completion token of a :func:`pad_batch` batch.

    Returns ``(nll, example)``, both of shape ``(tokens,)``: one entry per scored (``labels !=
    -100``) token, in row-major order, and the batch row it belongs to. The token at position
    ``t + 1`` is scored from the logits at position ``t``; a token at position 0 is never scored.

    The vocabulary-wide head runs only at the positions some row scores (transformers'
    ``logits_to_keep``): a classification example has one or two completion tokens after a long
    prompt, and the full ``(batch, seq, vocab)`` logits were most of a forward pass's time and
    memory. The model's own forward still applies its head (final-logit soft-capping and the
    like). Differentiable: a trait that wants gradients calls it under ``torch.enable_grad()``.
    """
    import torch

    labels = batch["labels"][:, 1:]
    keep = (labels != -100).any(dim=0).nonzero().flatten()  # (positions,): scored by some row
    inputs = {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}
    try:
        logits = model(**inputs, logits_to_keep=keep).logits  # (batch, positions, vocab)
    except TypeError as exc:  # a model whose forward has no logits_to_keep: every position, then pick
        if "logits_to_keep" not in str(exc):
            raise
        logits = model(**inputs).logits[:, :-1][:, keep]
    kept = labels[:, keep]
    scored = kept != -100
    nll = torch.nn.functional.cross_entropy(logits[scored].float(), kept[scored], reduction="none")
    example = torch.arange(len(kept), device=kept.device)[:, None].expand_as(kept)[scored]
    return nll, example
