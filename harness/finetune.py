"""LoRA fine-tuning of one adapter per source, on a base model loaded once.

A plain loop rather than ``transformers.Trainer``: it is short, it groups examples of similar
length into a batch and pads each batch only to its own longest sequence (``benchmarks/
training_throughput.py`` measures what that buys over max-length padding), trains only on
completion tokens, and logs exactly what the cache and the reports need (loss, tokens, seconds).
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Callable

import torch

from harness.adapters import AdapterHost
from harness.compute import usable_cores
from harness.registry import LoraSettings


def epoch_batches(lengths: list[int], batch_size: int, generator: torch.Generator,
                  group_by_length: bool = True, mega: int = 16) -> list[list[int]]:
    """One epoch of batches (lists of example indices), every example exactly once.

    With ``group_by_length`` the shuffled examples are cut into mega-batches of ``mega`` batches,
    each sorted by length before it is cut into batches, and the batch order is shuffled again:
    batches stay random, but their rows have similar lengths, so dynamic padding pads little
    (the idea of transformers' ``group_by_length``).
    """
    order = torch.randperm(len(lengths), generator=generator).tolist()
    if not group_by_length:
        return [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
    batches = []
    for start in range(0, len(order), batch_size * mega):
        chunk = sorted(order[start:start + batch_size * mega], key=lambda i: -lengths[i])
        batches += [chunk[i:i + batch_size] for i in range(0, len(chunk), batch_size)]
    return [batches[i] for i in torch.randperm(len(batches), generator=generator).tolist()]


def tokenize_pairs(tokenizer, pairs: list[tuple[str, str]], max_length: int) -> list[tuple[list[int], list[int]]]:
    """(input_ids, labels) per pair; prompt positions are masked with -100 in the labels.

    No special tokens are added, matching how lm-eval encodes context and continuation, so the
    adapter is trained on exactly the token sequences it is later scored on.
    """
    out = []
    for prompt, completion in pairs:
        p = tokenizer(prompt, add_special_tokens=False)["input_ids"]
        c = tokenizer(completion, add_special_tokens=False)["input_ids"]
        ids, labels = p + c, [-100] * len(p) + c
        out.append((ids[-max_length:], labels[-max_length:]))  # cut the prompt's start, never the answer
    return out


def pad_batch(rows, pad_id: int, device) -> dict[str, torch.Tensor]:
    """Right-padded ``input_ids``, ``labels`` (-100 on padding) and ``attention_mask`` for
    (input_ids, labels) rows, as wide as the longest row only."""
    width = max(len(ids) for ids, _ in rows)
    input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    labels = torch.full((len(rows), width), -100, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, (ids, lab) in enumerate(rows):
        input_ids[i, : len(ids)] = torch.tensor(ids)
        labels[i, : len(lab)] = torch.tensor(lab)
        mask[i, : len(ids)] = 1
    return {"input_ids": input_ids.to(device), "labels": labels.to(device), "attention_mask": mask.to(device)}


def lora_config(settings: LoraSettings):
    from peft import LoraConfig

    return LoraConfig(r=settings.rank, lora_alpha=settings.alpha, lora_dropout=settings.dropout,
                      target_modules=list(settings.target_modules), task_type="CAUSAL_LM")


def train_adapter(host: AdapterHost, adapter_name: str, tokenizer, pairs: list[tuple[str, str]],
                  settings: LoraSettings, out_dir: Path,
                  on_step: Callable[[int, int, float], None] | None = None, threads: int | None = None) -> dict:
    """Add adapter ``adapter_name`` to the host's model, train it on ``pairs``, save it to ``out_dir``.

    Returns the training log: ``{"steps": [{"step", "loss", "tokens", "seconds"}], ...}``.
    ``on_step(step, total, loss)`` is called after every step (for progress bars). ``threads``:
    torch threads to train with (default: every usable core). On CPU the thread count changes how
    sums are split, so the losses and weights differ in their last bits from one count to another.
    """
    torch.set_num_threads(threads or usable_cores())
    torch.manual_seed(settings.seed)  # adapter initialisation
    host.add(adapter_name, lora_config(settings))
    peft_model = host.peft
    if any(p.requires_grad for n, p in peft_model.named_parameters() if "lora_" not in n):
        raise RuntimeError("base weights would be trained; only LoRA parameters may require grad")

    rows = tokenize_pairs(tokenizer, pairs, settings.max_length)
    per_epoch = math.ceil(len(rows) / settings.batch_size)
    total = settings.steps or max(1, math.ceil(settings.epochs * per_epoch))
    params = [p for p in peft_model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=settings.learning_rate, weight_decay=0.0)
    warmup = max(1, total // 10)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min((s + 1) / warmup, max(0.0, (total - s) / max(1, total - warmup))))
    generator = torch.Generator().manual_seed(settings.seed)  # batch order
    device = next(peft_model.parameters()).device
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id

    lengths = [len(ids) for ids, _ in rows]
    log, queue, start = [], [], time.perf_counter()
    peft_model.train()
    for step in range(total):
        if not queue:  # a new epoch
            queue = epoch_batches(lengths, settings.batch_size, generator, settings.group_by_length)
        batch = pad_batch([rows[i] for i in queue.pop(0)], pad_id, device)
        t0 = time.perf_counter()
        loss = peft_model(**batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad(set_to_none=True)
        tokens = int(batch["attention_mask"].sum())
        loss_value = loss.item()
        log.append({"step": step + 1, "loss": loss_value, "tokens": tokens,
                    "seconds": time.perf_counter() - t0, "lr": schedule.get_last_lr()[0]})
        if on_step:
            on_step(step + 1, total, loss_value)
    peft_model.eval()
    seconds = time.perf_counter() - start
    peft_model.save_pretrained(str(out_dir), selected_adapters=[adapter_name])
    # peft saves non-default adapters in a sub-folder named after them; flatten for plain loading.
    nested = Path(out_dir) / adapter_name
    if nested.is_dir():
        for f in nested.iterdir():
            f.replace(Path(out_dir) / f.name)
        nested.rmdir()
    n_tokens = sum(r["tokens"] for r in log)
    return {"steps": log, "examples": len(rows), "total_steps": total, "seconds": seconds,
            "tokens": n_tokens, "tokens_per_second": n_tokens / seconds if seconds else None,
            "first_loss": log[0]["loss"], "last_loss": log[-1]["loss"]}
