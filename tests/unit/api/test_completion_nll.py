"""``completion_nll`` runs the head at scored positions only and must give what the full logits give."""

from __future__ import annotations

import pytest

from harness.api import completion_nll, pad_batch, tokenize_pairs

PAIRS = [("Review: a slow, joyless film.\nSentiment:", " negative"),
         ("Question: is the sky blue on a clear day? Passage: " + "Rayleigh scattering. " * 6 + "\nAnswer:", " yes"),
         ("Q: 2 + 3 =", " 5 because two and three make five.")]


def full_logits_nll(model, batch):
    """The reference: every position's logits, then the completion tokens picked out."""
    import torch

    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits[:, :-1]
    labels = batch["labels"][:, 1:]
    scored = labels != -100
    nll = torch.nn.functional.cross_entropy(logits[scored].float(), labels[scored], reduction="none")
    return nll, torch.arange(len(labels))[:, None].expand_as(labels)[scored]


@pytest.mark.parametrize("kind", ["multiple_choice", "generation"])
def test_matches_the_full_logits_on_right_padded_rows_of_different_lengths(tiny_model, kind):
    import torch

    model, tokenizer = tiny_model
    rows, _ = tokenize_pairs(tokenizer, PAIRS, 256, kind)
    batch = pad_batch(rows, tokenizer.pad_token_id, "cpu")
    with torch.no_grad():
        nll, example = completion_nll(model, batch)
        want_nll, want_example = full_logits_nll(model, batch)
    assert example.tolist() == want_example.tolist()
    assert len(nll) == sum(sum(t != -100 for t in lab[1:]) for _, lab in rows) > len(PAIRS)
    torch.testing.assert_close(nll, want_nll, rtol=1e-5, atol=1e-5)


def test_a_forward_without_logits_to_keep_falls_back_to_every_position(tiny_model):
    import torch

    model, tokenizer = tiny_model

    class Plain(torch.nn.Module):  # an older causal LM: forward(input_ids, attention_mask) only
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, input_ids, attention_mask):
            return self.inner(input_ids=input_ids, attention_mask=attention_mask)

    rows, _ = tokenize_pairs(tokenizer, PAIRS, 256, "multiple_choice")
    batch = pad_batch(rows, tokenizer.pad_token_id, "cpu")
    with torch.no_grad():
        nll, _ = completion_nll(Plain(model), batch)
        want, _ = full_logits_nll(model, batch)
    torch.testing.assert_close(nll, want, rtol=1e-5, atol=1e-5)


def test_gradients_flow_through_the_kept_positions(tiny_model):
    import torch

    model, tokenizer = tiny_model
    rows, _ = tokenize_pairs(tokenizer, PAIRS[:2], 256, "multiple_choice")
    with torch.enable_grad():
        nll, _ = completion_nll(model, pad_batch(rows, tokenizer.pad_token_id, "cpu"))
        nll.sum().backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and any(float(g.abs().sum()) > 0 for g in grads)
