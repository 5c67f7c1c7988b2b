"""LoRA training on a tiny random Llama: the loss goes down, only adapter weights change."""

from __future__ import annotations

import json

import pytest
import torch

from harness.api.tokens import tokenize_pairs
from harness.config.registry import LoraSettings
from harness.model.adapters import AdapterHost
from harness.stages.finetune import train_adapter
from harness_plugins.tasks.sentiment import Sentiment

SETTINGS = LoraSettings(rank=8, alpha=16, dropout=0.0, learning_rate=5e-3, steps=30, batch_size=8,
                        target_modules=["q_proj", "v_proj", "up_proj", "down_proj"], seed=0)


def test_prompt_tokens_are_masked_and_long_prompts_cut_from_the_left(tiny_model):
    _, tok = tiny_model
    [(ids, labels)], dropped = tokenize_pairs(tok, [("word " * 50, "positive")], 16, "multiple_choice")
    completion = tok(" positive", add_special_tokens=False)["input_ids"]  # the prompt's last space moved over
    assert len(ids) == 16 and ids[-len(completion):] == completion and dropped == 0
    assert labels[-len(completion):] == completion and set(labels[:-len(completion)]) == {-100}


def test_training_lowers_the_loss_and_changes_only_adapter_weights(tiny_model, tmp_path):
    model, tok = tiny_model
    before = {k: v.clone() for k, v in model.state_dict().items()}
    host = AdapterHost(model)
    pairs = Sentiment().train_pairs(64)
    log = train_adapter(host, "sent", tok, pairs, SETTINGS, tmp_path, kind="multiple_choice")

    losses = [s["loss"] for s in log["steps"]]
    assert len(losses) == 30 and log["tokens"] > 0 and log["tokens_per_second"] > 0
    assert sum(losses[-5:]) / 5 < sum(losses[:5]) / 5 - 0.5  # clearly learned

    lora_b = [v for k, v in host.peft.state_dict().items() if "lora_B" in k]
    assert lora_b and any(v.abs().sum() > 0 for v in lora_b)  # B starts at zero: it moved
    base_now = {k.replace("base_model.model.", "").replace(".base_layer", ""): v
                for k, v in host.peft.state_dict().items() if "lora_" not in k}
    assert all(torch.equal(before[k], base_now[k]) for k in before)  # base untouched

    saved = json.loads((tmp_path / "adapter_config.json").read_text())
    assert saved["r"] == 8 and (tmp_path / "adapter_model.safetensors").is_file()


def test_training_is_seeded(tiny_model_dir, tmp_path):
    from harness.config.registry import ModelConfig
    from harness.model.loading import load

    runs = []
    for i in range(2):
        model, tok = load(tiny_model_dir, ModelConfig(path=str(tiny_model_dir)))
        log = train_adapter(AdapterHost(model), "seeded", tok, Sentiment().train_pairs(16),
                            SETTINGS.model_copy(update={"steps": 3}), tmp_path / str(i), kind="multiple_choice")
        runs.append([s["loss"] for s in log["steps"]])
    assert runs[0] == runs[1]


def test_epoch_batches_cover_every_example_once_and_group_lengths():
    from harness.stages.finetune import epoch_batches

    rng = torch.Generator().manual_seed(0)
    lengths = [int(x) for x in torch.randint(5, 120, (200,), generator=torch.Generator().manual_seed(1))]
    grouped = epoch_batches(lengths, 8, rng, group_by_length=True)
    plain = epoch_batches(lengths, 8, torch.Generator().manual_seed(0), group_by_length=False)
    for batches in (grouped, plain):
        assert sorted(i for b in batches for i in b) == list(range(200))
        assert all(1 <= len(b) <= 8 for b in batches)

    def padded(batches):  # tokens a batch costs when padded to its longest row
        return sum(len(b) * max(lengths[i] for i in b) for b in batches)

    # Similar lengths together: far less padding than random batches of the same examples.
    assert padded(grouped) < 0.8 * padded(plain)
    # Seeded: the same order again; and batches are not simply sorted longest-first overall.
    assert epoch_batches(lengths, 8, torch.Generator().manual_seed(0)) == grouped
    firsts = [max(lengths[i] for i in b) for b in grouped]
    assert firsts != sorted(firsts, reverse=True)


def test_compute_setup_on_this_machine():
    from harness.model.compute import compute_setup, resolve_dtype

    if torch.cuda.is_available():
        pytest.skip("checks the CPU defaults")
    assert compute_setup("auto") == {"device": "cpu", "dtype": "float32"}
    assert resolve_dtype("bfloat16") == "bfloat16"


# --- training on the sequence lm-eval scores: its BOS, EOS after generation, prompt-only cuts --------

PAIRS = [("Review: a fine film\nSentiment:", " positive"),
         ("Question: 2+2?\nAnswer: ", "4"),  # a trailing space, which lm-eval moves to the continuation
         ("<|im_start|>Q: 3+4?\nA:", " 7\n")]  # starts with the BOS text: lm-eval adds no second BOS


@pytest.fixture(scope="session")
def bos_tokenizer_dir(real_tokenizer_dir, tmp_path_factory):
    """SmolLM2's tokenizer set to prepend its BOS, as Llama-3's does (SmolLM2's own adds none)."""
    from transformers import AutoTokenizer

    out = tmp_path_factory.mktemp("bos-tokenizer")
    AutoTokenizer.from_pretrained(real_tokenizer_dir, add_bos_token=True).save_pretrained(out)
    return out


@pytest.fixture
def bos_tokenizer(bos_tokenizer_dir):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(bos_tokenizer_dir)
    assert tok("x")["input_ids"][0] == tok.bos_token_id != tok("x", add_special_tokens=False)["input_ids"][0]
    return tok


@pytest.fixture(params=["tokenizer without BOS", "tokenizer adding BOS"])
def scorer(request, tiny_model, bos_tokenizer_dir):
    """lm-eval's own HFLM over the tiny model, as the harness's Evaluator builds it."""
    from lm_eval.models.huggingface import HFLM
    from transformers import AutoTokenizer

    model, tok = tiny_model
    if request.param == "tokenizer adding BOS":
        tok = AutoTokenizer.from_pretrained(bos_tokenizer_dir)
    return HFLM(pretrained=model, tokenizer=tok, batch_size=1)


def test_training_rows_are_the_sequences_lm_eval_scores(scorer):
    tok = scorer.tokenizer
    rows, _ = tokenize_pairs(tok, PAIRS, 512, "multiple_choice")
    for (prompt, completion), (ids, labels) in zip(PAIRS, rows):
        context, continuation = scorer._encode_pair(prompt, completion)  # what loglikelihood scores
        assert ids == context + continuation and labels == [-100] * len(context) + continuation
    rows, _ = tokenize_pairs(tok, PAIRS, 512, "generation")
    for (prompt, completion), (ids, labels) in zip(PAIRS, rows):
        context = scorer.tok_batch_encode([prompt])[0][0].tolist()  # what generate_until feeds the model
        n = len(context)
        assert ids[:n] == context and labels[:n] == [-100] * n and labels[n:] == ids[n:]
        assert tok.decode(ids[n:]) == completion + tok.eos_token
    if tok.bos_token_id in tok("x")["input_ids"]:  # the BOS case: every row starts with exactly one BOS
        assert all(ids[0] == tok.bos_token_id != ids[1] for ids, _ in rows)


def test_only_generation_completions_end_with_eos(tiny_model):
    _, tok = tiny_model
    (generated, labels), = tokenize_pairs(tok, [("Q: 3+4?\nA:", " 7\n")], 64, "generation")[0]
    assert labels[-1] == generated[-1] == tok.eos_token_id
    (classified, labels), = tokenize_pairs(tok, [("Q: 3+4?\nA:", " 7\n")], 64, "multiple_choice")[0]
    assert classified == generated[:-1] and tok.eos_token_id not in labels


def test_a_trained_generation_adapter_stops_after_its_answer(tiny_model_dir, tmp_path):
    from lm_eval.api.instance import Instance
    from lm_eval.models.huggingface import HFLM

    from harness.config.registry import ModelConfig
    from harness.model.loading import load

    pairs = [("Q: what is 2 plus 3?\nA:", " 5\n"), ("Q: what is 7 plus 8?\nA:", " 15\n")]
    settings = SETTINGS.model_copy(update={"learning_rate": 0.1, "steps": 30, "batch_size": 2})
    stops, continued = {}, {}
    # "multiple_choice": the very same rows without the EOS, as every generation source was trained before.
    for kind in ("generation", "multiple_choice"):
        model, tok = load(tiny_model_dir, ModelConfig(path=str(tiny_model_dir)))
        with torch.no_grad():  # The tiny model's EOS is also its padding token, whose embedding row is
            # initialised to zero: tied to the output layer, its logit stays 0 whatever an adapter does.
            # A real model's EOS row is trained, not zero: give it a random one.
            model.get_input_embeddings().weight[tok.eos_token_id] = 0.3 * torch.randn(
                model.config.hidden_size, generator=torch.Generator().manual_seed(1))
        host = AdapterHost(model)
        train_adapter(host, kind, tok, pairs, settings, tmp_path / kind, kind=kind)
        # Greedy decoding from the prompt: where (if at all) the adapter emits EOS.
        stops[kind] = []
        for prompt, completion in pairs:
            inputs = tok(prompt, return_tensors="pt")
            out = host.peft.generate(**inputs, max_new_tokens=12, do_sample=False, pad_token_id=tok.pad_token_id)
            new = out[0, inputs["input_ids"].shape[1]:].tolist()
            stops[kind].append(new.index(tok.eos_token_id) if tok.eos_token_id in new else None)
        # lm-eval's generate_until (a gsm8k-like `until` without a newline; lm-eval adds EOS to it),
        # right after the answer: an adapter that learnt to stop adds nothing.
        lm = HFLM(pretrained=model, tokenizer=tok, batch_size=1)
        requests = [Instance("generate_until", {}, (p + c, {"until": ["Question:"], "max_gen_toks": 8,
                                                            "do_sample": False}), i) for i, (p, c) in enumerate(pairs)]
        continued[kind] = lm.generate_until(requests, disable_tqdm=True)
    answer_tokens = [len(tok(c, add_special_tokens=False)["input_ids"]) for _, c in pairs]
    assert all(s is not None and s <= n for s, n in zip(stops["generation"], answer_tokens)), stops
    assert continued["generation"] == ["", ""]
    assert stops["multiple_choice"] == [None, None] and all(continued["multiple_choice"]), continued


LONG_ANSWER = " " + "many more words " * 8 + "\n"  # over 16 tokens on its own


def test_long_prompts_lose_their_start_but_keep_the_bos(bos_tokenizer):
    from harness.api.tokens import scored_pair

    pair = ("word " * 50 + "\nAnswer:", " the answer is 42\n")
    [(ids, labels)], dropped = tokenize_pairs(bos_tokenizer, [pair], 16, "generation")
    _, answer = scored_pair(bos_tokenizer, *pair, "generation")
    assert len(ids) == 16 and dropped == 0
    assert ids[0] == bos_tokenizer.bos_token_id and ids[-len(answer):] == answer  # BOS, prompt's end, answer
    assert labels == [-100] * (16 - len(answer)) + answer


def test_examples_whose_completion_alone_is_too_long_are_left_out_and_counted(tiny_model, tmp_path):
    from harness.stages.finetune import trained_message

    model, tok = tiny_model
    pairs = [("Q: one?\nA:", " 1\n"), ("Q: many?\nA:", LONG_ANSWER), ("Q: two?\nA:", " 2\n")]
    rows, dropped = tokenize_pairs(tok, pairs, 16, "generation")
    assert dropped == 1 and [tok.decode(ids) for ids, _ in rows] == [p + c + tok.eos_token for p, c in pairs[::2]]
    settings = SETTINGS.model_copy(update={"steps": 1, "max_length": 16})
    log = train_adapter(AdapterHost(model), "cut", tok, pairs, settings, tmp_path, kind="generation")
    assert log["dropped_too_long"] == 1 and log["examples"] == 2
    assert "left out 1 of 3 examples whose completion alone exceeds lora.max_length" in trained_message("s", log)


def test_training_fails_clearly_when_every_completion_is_too_long(tiny_model, tmp_path):
    model, tok = tiny_model
    host = AdapterHost(model)
    settings = SETTINGS.model_copy(update={"steps": 1, "max_length": 16})
    needed = len(tok(LONG_ANSWER, add_special_tokens=False)["input_ids"]) + 1  # and the EOS
    with pytest.raises(ValueError, match=rf"longer than lora.max_length \(16 tokens\) on its own: the longest "
                                         rf"needs {needed} tokens"):
        train_adapter(host, "none", tok, [("Q: many?\nA:", LONG_ANSWER)] * 2, settings, tmp_path, kind="generation")
    assert host.peft is None  # refused before an adapter was added
