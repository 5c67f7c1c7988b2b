"""LoRA fine-tuning of one adapter per source, on a base model loaded once.

A plain loop rather than ``transformers.Trainer``: it is short, it groups examples of similar
length into a batch and pads each batch only to its own longest sequence (``benchmarks/
training_throughput.py`` measures what that buys over max-length padding), trains only on
completion tokens, and logs exactly what the cache and the reports need (loss, tokens, seconds).
Each example is the token sequence lm-eval later scores (:func:`scored_pair`), so an adapter is
trained on what it is tested on.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from pathlib import Path

import torch
from rich.markup import escape

from harness.api.tokens import TaskKind, completion_nll, pad_batch, tokenize_pairs
from harness.cache.entries import write_train_log
from harness.cache.locks import claimed
from harness.cache.store import Cache
from harness.config.machine import usable_cores
from harness.config.registry import LoraSettings, Registry
from harness.errors import failure_record
from harness.model.adapters import AdapterHost
from harness.model.compute import free_accelerator_memory
from harness.reporting.progress import make_progress
from harness.stages.plan import Plan, adapter_name, replica_settings


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


def lora_config(settings: LoraSettings):
    from peft import LoraConfig

    return LoraConfig(r=settings.rank, lora_alpha=settings.alpha, lora_dropout=settings.dropout,
                      target_modules=list(settings.target_modules), task_type="CAUSAL_LM")


def train_adapter(host: AdapterHost, adapter_name: str, tokenizer, pairs: list[tuple[str, str]],
                  settings: LoraSettings, out_dir: Path,
                  on_step: Callable[[int, int, float], None] | None = None, threads: int | None = None,
                  *, kind: TaskKind) -> dict:
    """Add adapter ``adapter_name`` to the host's model, train it on ``pairs``, save it to ``out_dir``.

    ``kind`` is the source task's ``Task.kind``: it decides how the pairs are encoded (as lm-eval
    scores that kind) and whether completions end with EOS (:func:`tokenize_pairs`).
    Returns the training log: ``{"steps": [{"step", "loss", "tokens", "seconds"}], "examples",
    "dropped_too_long", ...}`` (``examples``: those trained on; ``dropped_too_long``: those left out
    because their completion alone exceeds ``settings.max_length``).
    ``on_step(step, total, loss)`` is called after every step (for progress bars). ``threads``:
    torch threads to train with (default: every usable core). On CPU the thread count changes how
    sums are split, so the losses and weights differ in their last bits from one count to another.
    """
    rows, dropped = tokenize_pairs(tokenizer, pairs, settings.max_length, kind)  # before any adapter exists
    torch.set_num_threads(threads or usable_cores())
    torch.manual_seed(settings.seed)  # adapter initialisation
    host.add(adapter_name, lora_config(settings))
    peft_model = host.peft
    if any(p.requires_grad for n, p in peft_model.named_parameters() if "lora_" not in n):
        raise RuntimeError("base weights would be trained; only LoRA parameters may require grad")

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
        # The mean completion-token NLL, as model(**batch).loss computes it, but with the head run
        # only where a completion token is scored: a classification row is a long prompt and a
        # one-token answer, and the full (batch, seq, vocab) logits were a third of a step's time.
        loss = completion_nll(peft_model, batch)[0].mean()
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
    return {"steps": log, "examples": len(rows), "dropped_too_long": dropped, "total_steps": total, "seconds": seconds,
            "tokens": n_tokens, "tokens_per_second": n_tokens / seconds if seconds else None,
            "first_loss": log[0]["loss"], "last_loss": log[-1]["loss"]}


# --- the stage: every adapter the plan still needs, trained and filed in the cache ----------------

def trained_message(source: str, log: dict, where: str = "") -> str:
    """The console line of a trained adapter; it says when too-long examples were left out."""
    line = (f"trained {source}{where}: loss {log['first_loss']:.3f} -> {log['last_loss']:.3f} "
            f"in {log['seconds']:.0f}s ({log['tokens_per_second']:.0f} tokens/s)")
    dropped = log.get("dropped_too_long")
    if dropped:
        line += (f"; left out {dropped} of {dropped + log['examples']} examples whose completion alone "
                 "exceeds lora.max_length")
    return line


def train_and_store(cache: Cache, key: str, source: str, host, name: str, tokenizer, pairs, lora,
                     on_step=None, threads: int | None = None, *, kind: str) -> dict:
    """Train one adapter and file it (with its training log) in the cache, atomically; the same
    code for the local executor and a Ray worker."""
    with cache.entry("adapters", key) as tmp:
        log = train_adapter(host, name, tokenizer, pairs, lora, tmp, on_step, threads=threads, kind=kind)
        log["source"] = source
        write_train_log(tmp, log)
    return log


def finetune_adapters(plan: Plan, registry: Registry, cache: Cache, host, tokenizer, console, failures,
              threads: int | None = None) -> None:
    todo = plan.todo_adapters
    if not todo:
        return
    with make_progress(console) as progress:
        for job in claimed(cache, "adapters", todo, console, lambda j: f"training {j.model}"):
            bar = progress.add_task(f"train {job.model}", total=registry.lora.steps or 1)

            def on_step(step, total, loss, bar=bar, job=job):
                progress.update(bar, completed=step, total=total, description=f"train {job.model} loss {loss:.3f}")

            try:
                pairs = job.task.train_pairs(job.n_train)
                log = train_and_store(cache, job.key, job.model, host, adapter_name(job), tokenizer, pairs,
                                       replica_settings(registry.lora, job), on_step, threads, kind=job.task.kind)
                job.cached = job.done_here = True
                console.log(trained_message(job.model, log))
            except Exception as exc:  # one source failing must not cost the others
                failures.append(failure_record("finetune", exc, source=job.model))
                console.log(f"[red]training {job.model} failed:[/] {escape(str(exc))}")
                free_accelerator_memory()
