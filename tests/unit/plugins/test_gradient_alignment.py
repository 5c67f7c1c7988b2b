"""gradient_alignment on the tiny model: cosines in [-1, 1], identical data gives 1, the gradient is
the projected LoRA-B gradient peft would give, the model is left as it was, and the stage caches it."""

from __future__ import annotations

import pytest

from harness.api import SourceData, TargetData, check_trait
from harness_plugins.tasks.arithmetic import Arithmetic
from harness_plugins.tasks.sentiment import Sentiment
from harness_plugins.traits.gradient_alignment import GradientAlignment


def sides(model, tok):
    sent, arith = Sentiment(), Arithmetic()
    sources = [SourceData("sentiment", sent, sent.examples("train", 12), tok, model),
               SourceData("arithmetic", arith, arith.examples("train", 12), tok, model)]
    targets = [TargetData("sentiment", sent, sent.examples("train", 12)),  # the very examples of the source
               TargetData("arithmetic", arith, arith.examples("test", 6)),
               TargetData("empty", sent, [])]
    return sources, targets


def test_cosines_are_bounded_identical_data_gives_one_and_no_rows_gives_none(tiny_model):
    model, tok = tiny_model
    flags = {n: p.requires_grad for n, p in model.named_parameters()}
    sources, targets = sides(model, tok)
    table = GradientAlignment(n_source=12, n_target=12, batch_size=5)\
        .compute_pairs(sources, targets)["gradient_cosine"]
    assert table["sentiment"]["sentiment"] == pytest.approx(1.0, abs=1e-6)
    assert table["sentiment"]["empty"] is None and table["arithmetic"]["empty"] is None
    values = [table[s][t] for s in table for t in ("sentiment", "arithmetic")]
    assert all(-1.0 <= v <= 1.0 for v in values)
    assert table["arithmetic"]["arithmetic"] > table["sentiment"]["arithmetic"]  # same task aligns better
    assert {n: p.requires_grad for n, p in model.named_parameters()} == flags  # the model is left as it was
    assert not model.training


def test_the_gradient_is_peft_s_lora_b_gradient(tiny_model):
    """With a real peft LoRA (B = 0) whose A is the trait's fixed projection, dL/dB equals the trait's
    projected gradient (up to peft's alpha / r scale)."""
    import torch
    from peft import LoraConfig, get_peft_model

    model, tok = tiny_model
    trait = GradientAlignment(rank=4, target_modules=("q_proj", "v_proj"), batch_size=3)
    sent = Sentiment()
    examples = sent.examples("train", 6)
    modules = trait.modules(model)
    projections = trait.projections(modules)
    for p in model.parameters():
        p.requires_grad_(False)
    for _, m in modules:
        m.weight.requires_grad_(True)
    model.eval()
    ours = trait.gradient(model, tok, examples, sent.kind, modules, projections)
    for p in model.parameters():
        p.requires_grad_(False)

    peft_model = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0,
                                                  target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM"))
    peft_model.eval()
    lora = {n.removeprefix("base_model.model.").removesuffix(".lora_A.default"): m
            for n, m in peft_model.named_modules() if n.endswith(".lora_A.default")}
    with torch.no_grad():
        for (name, _), a in zip(modules, projections):
            lora[name].weight.copy_(a)
    from harness.api import pad_batch, tokenize_pairs

    rows, _ = tokenize_pairs(tok, [(ex.prompt, ex.completion) for ex in examples], 128, sent.kind)
    bs = [n for n, p in peft_model.named_parameters() if "lora_B" in n]
    for start in range(0, len(rows), 3):  # the same per-example mean loss
        batch = pad_batch(rows[start:start + 3], tok.pad_token_id, "cpu")
        logits = peft_model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits[:, :-1]
        labels = batch["labels"][:, 1:]
        per = torch.nn.functional.cross_entropy(logits.transpose(1, 2), labels, ignore_index=-100, reduction="none")
        ((per.sum(1) / (labels != -100).sum(1)).sum() / len(rows)).backward()
    params = dict(peft_model.named_parameters())
    theirs = torch.cat([params[n].grad.double().flatten() for n in sorted(bs)]) / (8 / 4)  # undo alpha / r
    # float32 sums over other batches (the trait batches by length): equal to 1e-5 of the largest entry
    assert float((ours - theirs).abs().max()) < 1e-5 * float(theirs.abs().max())
    assert float(ours @ theirs / (ours.norm() * theirs.norm())) == pytest.approx(1.0, abs=1e-9)


def test_gradient_alignment_passes_check_trait(tiny_model):
    model, tok = tiny_model
    assert check_trait(GradientAlignment, model=model, tokenizer=tok)[2] == "check_trait_pair_run"


def test_the_traits_stage_caches_it(tiny_model, tmp_path):
    from harness.cache.store import Cache
    from harness.stages.plan import AdapterJob
    from harness.stages.traits import compute_all, trait_is_cached

    model, tok = tiny_model
    calls = []

    class Counting(GradientAlignment):
        def gradient(self, *args):
            calls.append(1)
            return super().gradient(*args)

    catalog = type("C", (), {"get": lambda self, kind, name: type("E", (), {"obj": Counting})})()
    registry = type("R", (), {"traits": [type("U", (), {"name": "gradient_alignment", "params": {"n_source": 8}})]})
    jobs = [AdapterJob("sentiment", Sentiment(), 8, "k1", True), AdapterJob("arithmetic", Arithmetic(), 8, "k2", True)]
    test_file = Sentiment().write_test_file(tmp_path / "data", 6)
    plan = type("P", (), {"adapters": jobs, "tasks": {"sentiment": Sentiment()},
                          "target_configs": {"sentiment": {"dataset_kwargs": {"data_files": {"test": str(test_file)}}}},
                          "model": type("M", (), {"key": "tiny"})()})
    cache = Cache(tmp_path / "cache")
    first = compute_all(registry, plan, catalog, tok, model, cache=cache)
    # two sources and one target: three gradients (sources + targets), not two per pair
    assert len(calls) == 3 and set(first.pairs["gradient_cosine"]) == {"sentiment", "arithmetic"}
    assert all(-1 <= row["sentiment"] <= 1 for row in first.pairs["gradient_cosine"].values())
    assert trait_is_cached(Counting(n_source=8), plan, cache)
    again = compute_all(registry, plan, catalog, tok, model, cache=cache)
    assert len(calls) == 3 and again.pairs == first.pairs  # nothing computed
