"""Training throughput: the harness's train_adapter versus a plain transformers Trainer.

Both sides train the same base model with the same LoRA config (``harness.stages.finetune.lora_config`` of
registry.yaml's ``lora``), the same batch size, learning rate, warm-up, gradient clipping and number
of steps, on the same examples of each default source (arithmetic, sentiment, nli, ordering,
generated; variable lengths), in the same batches:

* harness: ``train_adapter`` as ``harness run`` calls it (one model, adapters added in turn; each
  batch padded only to its own longest row, loss on completion tokens);
* Trainer, as tutorials do it: every example padded to ``max_length`` (the registry's, 128) --
  the same token ids as the harness's, padded as ``tokenizer(..., padding="max_length")`` would --
  ``default_data_collator``, loss on completion tokens; a fresh LoRA model per source. Its rows are
  the harness's batches in the harness's order (a sequential sampler over them), so both sides
  see exactly the same examples at every step.

Tokens are real (non-pad) tokens only, the attention-mask sum of every batch, on both sides.
Seconds: the harness's training loop (its log's ``seconds``) and the Trainer's training loop (from
``on_train_begin`` to ``on_train_end``; the whole ``trainer.train()`` call is reported too).
Per source the order is harness, Trainer, harness again (the Trainer needs the harness's batches;
the two harness runs bracket it, so drift in the machine's load hits both sides); the harness's
figure is the two runs together.
"""

from __future__ import annotations

import sys
import time
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as c  # noqa: E402

SOURCES = ("arithmetic", "sentiment", "nli", "ordering")


@contextmanager
def recording_batches():
    """The rows of every batch train_adapter pads (its own batching, whatever it is), in order."""
    import harness.stages.finetune as finetune

    seen: list[list] = []
    original = finetune.pad_batch

    def pad_batch(rows, *args, **kwargs):
        seen.append(list(rows))
        return original(rows, *args, **kwargs)

    finetune.pad_batch = pad_batch
    try:
        yield seen
    finally:
        finetune.pad_batch = original


def run_harness(host, tokenizer, pairs, kind, settings, out_dir, name):
    from harness.stages.finetune import train_adapter

    with recording_batches() as batches:
        start, cpu = time.perf_counter(), time.process_time()
        log = train_adapter(host, name, tokenizer, pairs, settings, out_dir, kind=kind)
        wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    return {"tokens": log["tokens"], "seconds": log["seconds"], "call_seconds": wall, "call_cpu_seconds": cpu,
            "padded": sum(len(b) * max(len(ids) for ids, _ in b) for b in batches), "batches": batches}


def run_trainer(model_dir, batches, tokenizer, settings, out_dir):
    import torch
    from peft import get_peft_model
    from torch.utils.data import SequentialSampler
    from transformers import Trainer, TrainerCallback, TrainingArguments, default_data_collator
    from transformers.trainer_callback import PrinterCallback

    from harness.config.registry import ModelConfig
    from harness.model import loading as models
    from harness.stages.finetune import lora_config

    model, _ = models.load(model_dir, ModelConfig(path=str(model_dir)))
    torch.manual_seed(settings.seed)
    peft_model = get_peft_model(model, lora_config(settings))

    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    width = settings.max_length
    features = []
    for ids, labels in (row for batch in batches for row in batch):
        pad = width - len(ids)
        features.append({"input_ids": ids + [pad_id] * pad, "attention_mask": [1] * len(ids) + [0] * pad,
                         "labels": labels + [-100] * pad})

    counted = {"real": 0, "padded": 0}

    def count(_module, _args, kwargs):
        mask = kwargs.get("attention_mask")
        if mask is not None:
            counted["real"] += int(mask.sum())
            counted["padded"] += mask.numel()

    handle = peft_model.register_forward_pre_hook(count, with_kwargs=True)

    class LoopTimer(TrainerCallback):
        start = end = None

        def on_train_begin(self, *a, **k):
            LoopTimer.start = time.perf_counter()

        def on_train_end(self, *a, **k):
            LoopTimer.end = time.perf_counter()

    class InOrder(Trainer):
        def _get_train_sampler(self, *args, **kwargs):
            return SequentialSampler(self.train_dataset)

    targs = TrainingArguments(
        output_dir=str(out_dir), per_device_train_batch_size=settings.batch_size, max_steps=settings.steps,
        learning_rate=settings.learning_rate, weight_decay=0.0, warmup_steps=max(1, settings.steps // 10),
        lr_scheduler_type="linear", max_grad_norm=1.0, logging_strategy="no", save_strategy="no",
        report_to="none", use_cpu=True, seed=settings.seed, dataloader_num_workers=0, disable_tqdm=True,
        dataloader_pin_memory=False)
    trainer = InOrder(model=peft_model, args=targs, train_dataset=features, data_collator=default_data_collator,
                      callbacks=[LoopTimer()])
    trainer.remove_callback(PrinterCallback)  # its end-of-training metrics line on stdout
    start, cpu = time.perf_counter(), time.process_time()
    output = trainer.train()
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    handle.remove()
    seconds = LoopTimer.end - LoopTimer.start
    return {"tokens": counted["real"], "seconds": seconds, "call_seconds": wall, "call_cpu_seconds": cpu,
            "padded": counted["padded"],
            "train_loss": output.training_loss}


def main(argv=None) -> int:
    p = c.parser(__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, help="Optimiser steps per source and side (default 10; --quick 2).")
    p.add_argument("--sources", help=f"Comma-separated sources (default {','.join(SOURCES)}; "
                                     "--quick arithmetic,nli).")
    args = p.parse_args(argv)
    quick = args.quick
    steps = args.steps or (2 if quick else 10)
    sources = args.sources.split(",") if args.sources else (["arithmetic", "nli"] if quick else list(SOURCES))

    import torch

    from harness.api.plugins import catalog
    from harness.api.tokens import tokenize_pairs
    from harness.config.registry import ModelConfig
    from harness.model import loading as models
    from harness.model.adapters import AdapterHost

    default = c.default_registry()
    settings = default.lora.model_copy(update={"steps": steps, "epochs": None})
    n_train = {s.task: s.n_train for s in default.sources}
    cat = catalog()
    base_model = c.model_config(args)
    results = {}
    with c.workspace(args) as (setup_root, work):
        _, model_dir = c.ensure_model(base_model, setup_root, c.log)
        model, tokenizer = models.load(model_dir, ModelConfig(path=str(model_dir)))
        host = AdapterHost(model)
        for source in sources:
            task = cat.get("task", source).obj()
            pairs = task.train_pairs(n_train.get(source, 480))
            c.log(f"{source}: harness ({steps} steps, batch {settings.batch_size})")
            first = run_harness(host, tokenizer, pairs, task.kind, settings, work / "h1" / source, f"bench1_{source}")
            # train_adapter sets torch's thread count; the Trainer runs in the same process with it.
            c.log(f"{source}: Trainer ({steps} steps, batch {settings.batch_size}, padding to {settings.max_length}, "
                  f"{torch.get_num_threads()} threads)")
            trainer = run_trainer(model_dir, first["batches"], tokenizer, settings, work / "trainer" / source)
            c.log(f"{source}: harness again")
            second = run_harness(host, tokenizer, pairs, task.kind, settings, work / "h2" / source, f"bench2_{source}")
            if not (trainer["tokens"] == first["tokens"] == second["tokens"]):
                c.log(f"warning: {source}: real tokens differ: harness {first['tokens']} and {second['tokens']}, "
                      f"Trainer {trainer['tokens']}")
            harness = {"tokens": first["tokens"] + second["tokens"], "seconds": first["seconds"] + second["seconds"],
                       "call_cpu_seconds": first["call_cpu_seconds"] + second["call_cpu_seconds"],
                       "run_seconds": [first["seconds"], second["seconds"]], "padded": first["padded"]}
            harness["tokens_per_second"] = harness["tokens"] / harness["seconds"]
            trainer["tokens_per_second"] = trainer["tokens"] / trainer["seconds"]
            lengths = [len(ids) for ids, _ in tokenize_pairs(tokenizer, pairs, settings.max_length, task.kind)[0]]
            harness["tokens_per_cpu_second"] = harness["tokens"] / harness["call_cpu_seconds"]
            trainer["tokens_per_cpu_second"] = trainer["tokens"] / trainer["call_cpu_seconds"]
            results[source] = {"harness": harness, "trainer": trainer, "real_tokens": first["tokens"],
                               "cpu_ratio": c.ratio(harness["tokens_per_cpu_second"], trainer["tokens_per_cpu_second"]),
                               "mean_length": sum(lengths) / len(lengths),
                               "ratio": c.ratio(harness["tokens_per_second"], trainer["tokens_per_second"])}
        threads = torch.get_num_threads()

    def total(side):
        tokens = sum(r[side]["tokens"] for r in results.values())
        seconds = sum(r[side]["seconds"] for r in results.values())
        return tokens / seconds

    h_tps, t_tps = total("harness"), total("trainer")
    overall = c.ratio(h_tps, t_tps)
    cpu_overall = c.ratio(sum(r["harness"]["tokens"] for r in results.values())
                          / sum(r["harness"]["call_cpu_seconds"] for r in results.values()),
                          sum(r["trainer"]["tokens"] for r in results.values())
                          / sum(r["trainer"]["call_cpu_seconds"] for r in results.values()))
    print(f"\nLoRA training, {steps} steps x batch {settings.batch_size} per source, max_length {settings.max_length}, "
          f"{threads} threads, model {c.model_label(args)}")
    rows = [[s, r["mean_length"], r["real_tokens"], r["harness"]["padded"], r["trainer"]["padded"],
             r["harness"]["seconds"] / 2, r["trainer"]["seconds"], r["harness"]["tokens_per_second"],
             r["trainer"]["tokens_per_second"], r["ratio"], r["cpu_ratio"]] for s, r in results.items()]
    rows.append(["overall", None, sum(r["real_tokens"] for r in results.values()),
                 sum(r["harness"]["padded"] for r in results.values()),
                 sum(r["trainer"]["padded"] for r in results.values()),
                 sum(r["harness"]["seconds"] for r in results.values()) / 2,
                 sum(r["trainer"]["seconds"] for r in results.values()), h_tps, t_tps, overall, cpu_overall])
    c.table(["source", "mean len", "real tokens", "padded h", "padded T", "s h (mean of 2)", "s T", "tok/s h",
             "tok/s T", "h / T", "h / T (cpu)"], rows)
    print("h = harness train_adapter (length-grouped batches, dynamic padding); T = transformers Trainer "
          "(padding='max_length', default_data_collator). Tokens: real (non-pad) tokens per run; padded: tokens "
          "through the model. h / T (cpu): the same over CPU seconds of the whole train_adapter / trainer.train() "
          f"calls.\nTarget h / T >= 1.5: {'met' if overall and overall >= 1.5 else 'not met'}")
    result = {
        "benchmark": "training_throughput", "model": c.model_label(args), "quick": quick,
        "steps": steps, "batch_size": settings.batch_size, "max_length": settings.max_length, "threads": threads,
        "timed": "harness: train_adapter's loop (log seconds), two runs bracketing the Trainer; Trainer: "
                 "on_train_begin..on_train_end",
        "sources": {s: {"ratio": r["ratio"],
                        "harness_tokens_per_second": round(r["harness"]["tokens_per_second"], 2),
                        "trainer_tokens_per_second": round(r["trainer"]["tokens_per_second"], 2),
                        "real_tokens": r["real_tokens"], "mean_length": round(r["mean_length"], 2),
                        "harness_run_seconds": [round(x, 3) for x in r["harness"]["run_seconds"]],
                        "trainer_seconds": round(r["trainer"]["seconds"], 3),
                        "trainer_train_call_seconds": round(r["trainer"]["call_seconds"], 3),
                        "harness_padded_tokens": r["harness"]["padded"], "trainer_padded_tokens": r["trainer"]["padded"]}
                    for s, r in results.items()},
        "harness_tokens_per_second": round(h_tps, 2), "trainer_tokens_per_second": round(t_tps, 2),
        "overall_ratio": overall, "overall_cpu_ratio": cpu_overall, "target_met": bool(overall and overall >= 1.5),
        "machine": c.machine(),
    }
    c.emit(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
