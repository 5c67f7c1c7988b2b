"""adapter_similarity: the cosine of LoRA updates on hand-made adapters (known ΔW), on a tiny trained
adapter (ΔW equals what peft merges), and cached by the traits stage under the adapters' keys."""

from __future__ import annotations

import math

import numpy as np
import pytest

from harness.api import SourceData, TargetData, check_trait
from harness.authoring.conformance import write_adapter
from harness_plugins.tasks.arithmetic import Arithmetic
from harness_plugins.tasks.sentiment import Sentiment
from harness_plugins.traits.adapter_similarity import AdapterSimilarity, inner, read_adapter

Q = "base_model.model.model.layers.0.self_attn.q_proj"
V = "base_model.model.model.layers.0.self_attn.v_proj"


def hand_adapter(folder, q, v, alpha):
    """One-rank factors (A (1, 2), B (2, 1)) of q_proj and v_proj; r = 1, so ΔW = alpha · B A."""
    (qa, qb), (va, vb) = q, v
    return write_adapter(folder, {f"{Q}.lora_A.weight": np.array([qa]), f"{Q}.lora_B.weight": np.array(qb)[:, None],
                                  f"{V}.lora_A.weight": np.array([va]), f"{V}.lora_B.weight": np.array(vb)[:, None]},
                         r=1, alpha=alpha)


@pytest.fixture
def hand_made(tmp_path):
    # X: ΔW_q = [[1, 0], [0, 0]], ΔW_v = [[0, 0], [0, 1]]           (alpha 1)
    # Y: ΔW_q = 2·[[1, 1], [0, 0]], ΔW_v = 2·[[0, 0], [0, 1]]       (alpha 2)
    x = hand_adapter(tmp_path / "x", ([1, 0], [1, 0]), ([0, 1], [0, 1]), alpha=1.0)
    y = hand_adapter(tmp_path / "y", ([1, 1], [1, 0]), ([0, 1], [0, 1]), alpha=2.0)
    return x, y


def test_delta_w_of_hand_made_adapters_and_their_cosine(hand_made):
    x, y = (read_adapter(f) for f in hand_made)
    a, sb = y["model.layers.0.self_attn.q_proj"]
    assert (sb @ a).numpy() == pytest.approx(np.array([[2.0, 2.0], [0.0, 0.0]]))
    # Flattened and concatenated: X = (1,0,0,0 | 0,0,0,1), Y = (2,2,0,0 | 0,0,0,2)
    # <X, Y> = 2 + 2 = 4, |X| = sqrt(2), |Y| = sqrt(12): cosine 4 / sqrt(24) = 0.816497
    # (a mean of per-module cosines would give (1/sqrt(2) + 1) / 2 = 0.853553)
    assert inner(x, y) == pytest.approx(4.0) and inner(x, x) == pytest.approx(2.0) and inner(y, y) == pytest.approx(12.0)
    sources = [SourceData("sentiment", Sentiment(), [], adapters=[hand_made[0]]),
               SourceData("arithmetic", Arithmetic(), [], adapters=[hand_made[1]]),
               SourceData("untrained", None, [], adapters=[])]
    targets = [TargetData("sentiment", Sentiment(), []), TargetData("arithmetic", Arithmetic(), []),
               TargetData("topic_x", Sentiment(), [])]  # same task and options as the sentiment source
    table = AdapterSimilarity().compute_pairs(sources, targets)["adapter_cosine"]
    assert table["sentiment"]["sentiment"] == pytest.approx(1.0)
    assert table["sentiment"]["arithmetic"] == pytest.approx(4 / math.sqrt(24))
    assert table["arithmetic"]["sentiment"] == pytest.approx(4 / math.sqrt(24))
    assert table["arithmetic"]["topic_x"] == table["arithmetic"]["sentiment"]  # in-domain by fingerprint
    assert table["untrained"] == {"sentiment": None, "arithmetic": None, "topic_x": None}


def test_replicates_are_averaged_before_the_cosine(hand_made):
    x, y = hand_made
    # Source "both" has replicates X and Y: mean ΔW = (1.5, 1, 0, 0 | 0, 0, 0, 1.5).
    # <mean, Y> = 3 + 2 + 3 = 8, |mean| = sqrt(5.5), |Y| = sqrt(12): cosine 8 / sqrt(66) = 0.984732
    sources = [SourceData("both", None, [], adapters=[x, y]), SourceData("arithmetic", Arithmetic(), [], adapters=[y])]
    table = AdapterSimilarity().compute_pairs(sources, [TargetData("arithmetic", Arithmetic(), [])])["adapter_cosine"]
    assert table["both"]["arithmetic"] == pytest.approx(8 / math.sqrt(66))


def test_delta_w_of_a_tiny_trained_adapter_is_what_peft_merges(tiny_model, tmp_path):
    import torch
    from peft import LoraConfig, get_peft_model

    model, tok = tiny_model
    base = {n: p.detach().clone() for n, p in model.named_parameters()}
    torch.manual_seed(0)
    peft_model = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"],
                                                  task_type="CAUSAL_LM"))
    batch = tok(["the movie was great", "two plus two is four"], return_tensors="pt", padding=True)
    optimizer = torch.optim.AdamW([p for p in peft_model.parameters() if p.requires_grad], lr=0.05)
    for _ in range(3):
        peft_model(**batch, labels=batch["input_ids"]).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    peft_model.save_pretrained(tmp_path / "trained")
    delta = read_adapter(tmp_path / "trained")
    merged = peft_model.merge_and_unload()
    assert len(delta) == 4  # two layers x (q_proj, v_proj)
    for module, (a, sb) in delta.items():
        name = f"{module}.weight"
        want = (merged.state_dict()[name] - base[name]).double()
        assert want.abs().max() > 0  # training moved B off zero
        assert torch.allclose(sb @ a, want, atol=1e-6), module
    flat = torch.cat([(sb @ a).flatten() for a, sb in delta.values()])
    assert inner(delta, delta) == pytest.approx(float(flat @ flat), rel=1e-9)


def test_adapter_similarity_passes_check_trait():
    done = check_trait(AdapterSimilarity)
    assert done == ["check_trait_class", "check_trait_params", "check_trait_pair_run"]


def test_the_traits_stage_caches_it_under_the_adapters_keys(hand_made, tmp_path, monkeypatch):
    from harness.cache.store import Cache
    from harness.stages.plan import AdapterJob
    from harness.stages.traits import compute_all, trait_is_cached

    calls = []

    class Counting(AdapterSimilarity):
        def compute_pairs(self, sources, targets):
            calls.append([s.name for s in sources])
            return super().compute_pairs(sources, targets)

    catalog = type("C", (), {"get": lambda self, kind, name: type("E", (), {"obj": Counting})})()
    use = type("U", (), {"name": "adapter_similarity", "params": {}})
    registry = type("R", (), {"traits": [use]})
    target_configs = {"sentiment": {}, "arithmetic": {}}

    def plan(y_key):
        jobs = [AdapterJob("sentiment", Sentiment(), 0, "kx", True, kind="adapter", path=hand_made[0]),
                AdapterJob("brought", None, 0, y_key, True, kind="adapter", path=hand_made[1])]
        return type("P", (), {"adapters": jobs, "tasks": {"sentiment": Sentiment(), "arithmetic": Arithmetic()},
                              "target_configs": target_configs, "model": None})

    cache = Cache(tmp_path / "cache")
    first = compute_all(registry, plan("ky"), catalog, None, cache=cache)
    assert calls == [["sentiment", "brought"]]  # a brought adapter without a task is compared too
    assert first.pairs["adapter_cosine"]["brought"]["sentiment"] == pytest.approx(4 / math.sqrt(24))
    assert first.pairs["adapter_cosine"]["brought"]["arithmetic"] is None  # no in-domain adapter
    assert first.plugins == {"adapter_cosine": "adapter_similarity"}
    assert trait_is_cached(Counting(), plan("ky"), cache)
    again = compute_all(registry, plan("ky"), catalog, None, cache=cache)
    assert calls == [["sentiment", "brought"]] and again.pairs == first.pairs  # nothing computed
    compute_all(registry, plan("other-content"), catalog, None, cache=cache)  # another adapter: recomputed
    assert len(calls) == 2
