"""Scoring models on targets through lm-eval, with per-sample logs kept.

One ``HFLM`` wraps the base model for the whole run; the adapter host decides which adapter (if
any) is active. Targets are inline task dicts whose data files are local and absolute, so nothing
touches the hub. lm-eval's request cache is left off: it is not keyed by model, so with adapters
swapped in place it would hand one adapter's answers to another.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from rich.markup import escape

from harness.analysis.outcomes import MEAN_AGGREGATIONS
from harness.api.lm_eval_tasks import RUN_ARGS, scoring_configs
from harness.cache import entries
from harness.cache.locks import claimed, claimed_now
from harness.cache.store import Cache
from harness.config.registry import BASE, EvaluationSettings, Registry
from harness.errors import ExecutorError, failure_record
from harness.lm_eval_compat import no_environment_report, set_lora_request
from harness.model.compute import free_accelerator_memory
from harness.reporting.progress import make_progress
from harness.stages.plan import Plan, adapter_name, weights_path


@dataclass
class CellResult:
    """One scored cell: the metric's value, its standard error, and the per-sample records of the
    metric's own filter (``n`` of them, one per document)."""

    value: float
    stderr: float | None
    metric: str  # lm-eval's key, ``metric,filter``
    n: int
    samples: list[dict]
    aggregation: str = "mean"  # how lm-eval aggregates the per-sample values (mean, f1, matthews_corrcoef, ...)


def quiet_lm_eval() -> None:
    """lm-eval and datasets log every task build; the harness has its own progress display."""
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    for name in ("lm_eval", "lm-eval", "datasets", "transformers", "peft"):
        logging.getLogger(name).setLevel(logging.ERROR)
    try:
        import datasets

        datasets.disable_progress_bars()
        datasets.logging.set_verbosity_error()
    except ImportError:
        pass


@contextlib.contextmanager
def captured_stderr():
    """Hold back what lm-eval writes straight to the stderr file descriptor (its own progress
    bars, and git's complaint when run outside a repository); replay it if scoring fails."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as buf:
        os.dup2(buf.fileno(), 2)
        try:
            yield
        except BaseException:
            os.dup2(saved, 2)
            buf.seek(0)
            sys.stderr.write(buf.read().decode(errors="replace")[-5000:])
            raise
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)


def _plain(value):
    """JSON-friendly copies of lm-eval's per-sample values (tuples, numpy scalars)."""
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if hasattr(value, "item"):
        return value.item()
    return value


def _sample_record(sample: dict, metric_name: str) -> dict:
    """What later stages need from one lm-eval sample: gold, prediction, correctness, raw output.

    ``correct`` is the per-sample score when the metric is one (acc, exact_match: 0/1 per
    document). Metrics that lm-eval aggregates over the whole set (f1, mcc, bleu) log a
    (gold, prediction) pair per document instead: that pair is kept as ``item`` (what a bootstrap
    of the aggregate resamples) and ``correct`` says whether the two agree.
    """
    value = _plain(sample[metric_name])
    record = {"doc_id": sample["doc_id"], "target": _plain(sample["target"])}
    if isinstance(value, (bool, int, float)):
        record["correct"] = float(value)
    else:
        record["item"] = value
        pair = isinstance(value, list) and len(value) == 2
        record["correct"] = float(pair and value[0] == value[1])
    resps = sample["filtered_resps"]
    if resps and isinstance(resps[0], (list, tuple)):  # multiple choice: (loglikelihood, is_greedy)
        loglik = [float(r[0]) for r in resps]
        record["loglikelihoods"] = loglik
        record["prediction"] = max(range(len(loglik)), key=loglik.__getitem__)
    else:  # generation: the extracted answer, and the raw text it came from
        record["prediction"] = _plain(resps[0]) if resps else None
        record["output"] = _plain(sample["resps"][0][0]) if sample.get("resps") else None
    return record


def aggregation_of(config: dict, metric_name: str) -> str:
    """The name of lm-eval's aggregation for ``metric_name`` in a task ``config``: the one its
    ``metric_list`` names, else the metric's registered default (mcc -> matthews_corrcoef)."""
    for entry in config.get("metric_list") or []:
        if entry.get("metric") == metric_name and isinstance(entry.get("aggregation"), str):
            return entry["aggregation"]
    from lm_eval.api.registry import AGGREGATION_REGISTRY, get_metric_aggregation

    fn = get_metric_aggregation(metric_name)
    return next((name for name, f in dict(AGGREGATION_REGISTRY).items() if f is fn), "mean")


def aggregate_function(name: str):
    """lm-eval's aggregation function registered as ``name``."""
    from lm_eval.api.registry import get_aggregation

    fn = get_aggregation(name)
    if fn is None:
        raise ValueError(f"lm-eval has no aggregation named {name!r}")
    return fn



STDERR_BOOTSTRAP = 1000  # resamples for the standard error of a metric that is not a mean


def cell_stderr(samples: list[dict], value: float, aggregation: str, seed: int) -> float | None:
    """Standard error of a cell's value over its documents.

    A mean metric: the standard error of the mean of the per-sample scores, computed here so it
    never depends on lm-eval's bootstrap settings. Any other aggregate (f1, mcc): the standard
    deviation of the aggregate over documents resampled with replacement (seeded).
    """
    n = len(samples)
    if n < 2:
        return None
    if aggregation in MEAN_AGGREGATIONS:
        scores = [smp["correct"] for smp in samples]
        return math.sqrt(sum((x - value) ** 2 for x in scores) / (n - 1) / n)
    import numpy as np

    from harness.analysis.stats import bootstrap_aggregate

    # Items are (gold, prediction) pairs for f1 or mcc; per-sample scores for an aggregation such
    # as a median over them.
    boots = bootstrap_aggregate([smp.get("item", smp["correct"]) for smp in samples],
                                aggregate_function(aggregation), n_boot=STDERR_BOOTSTRAP, seed=seed)
    boots = boots[np.isfinite(boots)]  # resamples where the aggregate is undefined (one class: MCC)
    return float(boots.std(ddof=1)) if len(boots) > 1 else None


def cell_result(target: str, metric: str, config: dict, out: dict, seed: int) -> CellResult:
    """The cell of ``target`` from ``simple_evaluate``'s output ``out``.

    lm-eval logs one sample per document *per filter* (gsm8k: strict-match and flexible-extract),
    so only the records of the metric's own filter (the part after the comma) are kept: the value,
    stderr, ``n`` and every statistic downstream read one record per document.
    """
    if "group" in config:
        return group_result(target, metric, config, out, seed)
    name = config["task"]
    metric_name, _, filter_name = metric.partition(",")
    filter_name = filter_name or "none"
    row = out["results"][name]
    if metric not in row:
        reported = sorted(k for k in row if "," in k and not k.split(",")[0].endswith("_stderr"))
        raise ValueError(f"target {target!r}: lm-eval reported no {metric!r}; it reported {reported}. "
                         "The task's metric() must name one of them (metric,filter)")
    logged = out["samples"][name]
    samples = [_sample_record(smp, metric_name) for smp in logged if smp.get("filter", "none") == filter_name]
    value = float(row[metric])
    aggregation = aggregation_of(out.get("configs", {}).get(name, config), metric_name)
    return CellResult(value, cell_stderr(samples, value, aggregation, seed), metric, len(samples), samples,
                      aggregation)


def calls(configs: dict[str, dict], num_fewshot: int) -> dict[tuple, dict[str, dict]]:
    """Target configs grouped by the ``simple_evaluate`` call that scores them: lm-eval's ``limit``
    and ``num_fewshot`` apply to every task of a call. Built-in targets (their data files hold
    exactly their rows) go with the registry's shots and no limit; an lm-eval target's config
    carries its own (``RUN_ARGS``, taken off here), so targets of one limit share one call."""
    out: dict[tuple, dict[str, dict]] = {}
    for target, config in configs.items():
        args = config.get(RUN_ARGS) or {"limit": None, "num_fewshot": num_fewshot}
        plain = {k: v for k, v in config.items() if k != RUN_ARGS}
        out.setdefault((args["limit"], args["num_fewshot"]), {})[target] = plain
    return out


def _leaf_cell(leaf: dict, metric: str, out: dict, seed: int) -> CellResult:
    """One subtask of a group, as a cell of its own (its doc ids made ``task:doc_id``)."""
    result = cell_result(leaf["task"], metric, leaf, out, seed)
    short = leaf["task"].split("::")[-1]
    for record in result.samples:
        record["doc_id"] = f"{short}:{record['doc_id']}"
    return result


def _aggregate(group: dict, metric: str, out: dict, seed: int) -> tuple[float, list[dict], set[str]]:
    """(value, per-sample records, aggregations) of a group, as lm-eval aggregates one: by its
    aggregate_metric_list entry for ``metric`` (mean over its members, weighted by their sizes
    unless weight_by_size is false); without one (a tag), the mean over all its documents, which
    is the size-weighted mean of its subtasks."""
    metric_name, _, filter_name = metric.partition(",")
    parts = []
    for member in group["task"]:
        if "group" in member:
            parts.append(_aggregate(member, metric, out, seed))
        else:
            cell = _leaf_cell(member, metric, out, seed)
            parts.append((cell.value, cell.samples, {cell.aggregation}))
    samples = [smp for _, part, _ in parts for smp in part]
    aggregations = set().union(*(a for _, _, a in parts))
    if not samples:
        raise ValueError(f"group {group['group']!r}: lm-eval logged no samples for {metric!r}")
    entry = next((e for e in group.get("aggregate_metric_list") or ()
                  if e.get("metric") == metric_name and filter_name in (e.get("filter_list") or [filter_name])), None)
    if entry is not None and not entry.get("weight_by_size", True):
        return sum(v for v, _, _ in parts) / len(parts), samples, aggregations
    if not aggregations <= set(MEAN_AGGREGATIONS):
        raise ValueError(f"group {group['group']!r}: its subtasks aggregate {metric!r} by {sorted(aggregations)}, "
                         "not a mean, so they have no mean over the group; set expand: true to score each "
                         "subtask as its own target")
    return sum(len(part) * v for v, part, _ in parts) / len(samples), samples, aggregations


def group_result(target: str, metric: str, config: dict, out: dict, seed: int) -> CellResult:
    """A group's cell: the aggregate of its subtasks (:func:`_aggregate`), with the per-sample
    records of them all, their doc ids made unique as ``task:doc_id``."""
    value, samples, aggregations = _aggregate(config, metric, out, seed)
    aggregation = aggregations.pop() if len(aggregations) == 1 else "mean"
    return CellResult(value, cell_stderr(samples, value, aggregation, seed), metric, len(samples), samples,
                      aggregation)


CPU_BATCH_SIZE = 16


def eval_batch_size(setting):
    """lm-eval's batch size for a registry setting: on a GPU "auto" lets lm-eval find the largest
    batch that fits; on CPU a larger batch buys nothing but padding, so auto means 16."""
    if setting != "auto":
        return setting
    from harness.model.compute import device

    return "auto" if device() == "cuda" else CPU_BATCH_SIZE


class Evaluator:
    """Scores whatever the model currently is (base or an active adapter) on task configs."""

    def __init__(self, model, tokenizer, settings: EvaluationSettings):
        quiet_lm_eval()
        from lm_eval.models.huggingface import HFLM
        from lm_eval.tasks import TaskManager

        self.settings = settings
        self.lm = HFLM(pretrained=model, tokenizer=tokenizer, batch_size=eval_batch_size(settings.batch_size))
        # Targets are inline configs only: skipping the index of lm-eval's thousands of bundled
        # task files saves seconds per call, and means an inline task that shares a name with a
        # bundled one (lm-eval ships an "arithmetic") can never be merged with it.
        self.task_manager = TaskManager(include_defaults=False)

    def call(self, configs: dict[str, dict], limit: int | None, num_fewshot: int) -> dict:
        """One ``simple_evaluate`` call on target configs of one ``(limit, num_fewshot)`` (a batch
        of :func:`calls`): its raw output. lm-eval pools the requests of all the call's tasks by
        type and batches them together, as its own ``lm_eval --tasks A B C`` command does."""
        from lm_eval import simple_evaluate

        s = self.settings
        with captured_stderr(), no_environment_report():
            return simple_evaluate(
                model=self.lm, tasks=[leaf for config in configs.values() for leaf in scoring_configs(config)],
                num_fewshot=num_fewshot, limit=limit,
                log_samples=True, cache_requests=False, bootstrap_iters=0, verbosity="ERROR",
                random_seed=s.seed, numpy_random_seed=s.seed, torch_random_seed=s.seed,
                fewshot_random_seed=s.seed, task_manager=self.task_manager)

    def evaluate(self, configs: dict[str, dict], metrics: dict[str, str]) -> dict[str, CellResult]:
        """Score every config (target name -> inline lm-eval dict); return a result per target."""
        results = {}
        for (limit, num_fewshot), batch in calls(configs, self.settings.num_fewshot).items():
            out = self.call(batch, limit, num_fewshot)
            results.update({target: cell_result(target, metrics[target], config, out, self.settings.seed)
                            for target, config in batch.items()})
        return {target: results[target] for target in configs}


class VLLMEvaluator(Evaluator):
    """lm-eval's vLLM backend, LoRA adapters served by vLLM (``evaluation.backend: vllm``; GPU only).

    vLLM holds its own copy of the weights, so the pipeline frees the training model before making
    one. Adapters are switched by changing the LoRA request vLLM attaches to every prompt; ``None``
    scores the base model.
    """

    def __init__(self, model_dir, settings: EvaluationSettings, first_adapter, max_lora_rank: int, dtype: str):
        quiet_lm_eval()
        try:
            from lm_eval.models.vllm_causallms import VLLM
            from vllm.lora.request import LoRARequest
        except ImportError as exc:
            raise RuntimeError(f"evaluation.backend vllm needs vLLM on a CUDA machine ({exc}); "
                               "pip install vllm, or use backend hf") from None
        from lm_eval.tasks import TaskManager

        self.settings, self._request = settings, LoRARequest
        # vLLM enables LoRA only when constructed with an adapter; later ones are swapped in.
        self.lm = VLLM(pretrained=str(model_dir), lora_local_path=str(first_adapter) if first_adapter else None,
                       max_lora_rank=max_lora_rank,
                       dtype=dtype, batch_size=eval_batch_size(settings.batch_size), seed=settings.seed)
        self.task_manager = TaskManager(include_defaults=False)
        self._ids: dict[str, int] = {}

    def activate(self, name: str | None, path=None) -> None:
        """Score adapter ``name`` (saved at ``path``) from now on; ``None`` for the base model."""
        if name is None:
            set_lora_request(self.lm, None)
            return
        self._ids.setdefault(name, len(self._ids) + 1)  # vLLM identifies adapters by a positive int
        set_lora_request(self.lm, self._request(name, self._ids[name], str(path)))


# --- the stage: every cell the plan still needs, scored and filed in the cache ----------------------

def evaluate_cells(plan: Plan, registry: Registry, cache: Cache, host, model, tokenizer, console, failures,
              model_dir: Path | None = None) -> None:
    todo = plan.todo_cells
    if not todo:
        return
    vllm = registry.evaluation.backend == "vllm"
    adapters = {a.model: a for a in plan.adapters}
    scorable = []
    for cell in todo:
        job = adapters.get(cell.model)
        if job is not None and not job.cached and not cache.has("adapters", job.key):
            failures.append({"stage": "evaluate", "source": cell.model, "target": cell.target,
                             "error": "adapter was not trained (see the finetune failure)"})
        else:
            if job is not None:
                job.cached = True  # trained here, or by another run sharing the cache
            scorable.append(cell)
    if not scorable:
        return
    evaluator = None  # of the base model, made when a cell needs it (a run of checkpoints only never does)
    checkpoint = None  # (name, Evaluator) of the checkpoint loaded now: one at a time, freed after its cells
    # One model at a time (each adapter is switched in once), in plan order.
    by_model: dict[str, list] = {}
    for cell in scorable:
        by_model.setdefault(cell.model, []).append(cell)
    active = None

    def switch_to(model_name: str):
        """Make ``model_name`` the model scored; return the evaluator that scores it."""
        nonlocal active, evaluator, checkpoint
        job = adapters.get(model_name)
        if job is not None and job.kind == "checkpoint":
            if checkpoint is None or checkpoint[0] != model_name:
                checkpoint = None  # the previous one's memory goes before the next loads
                console.log(f"Loading checkpoint {escape(model_name)} (a model of its own: no adapter swap)")
                checkpoint = (model_name, checkpoint_evaluator(job, registry))
            active = model_name
            return checkpoint[1]
        checkpoint = None
        if evaluator is None:
            evaluator = (vllm_evaluator(plan, registry, cache, model, model_dir) if vllm
                         else Evaluator(model, tokenizer, registry.evaluation))
        if model_name != active:
            if model_name != BASE:
                if vllm:
                    evaluator.activate(adapter_name(job), weights_path(job, cache))
                else:
                    host.load(adapter_name(job), weights_path(job, cache))
            elif vllm:
                evaluator.activate(None)
            active = model_name
        return evaluator

    def failed(cell, exc) -> None:
        nonlocal active
        active = None  # switch the model in again for the next cell
        failures.append(failure_record("evaluate", exc, source=cell.model, target=cell.target))
        console.log(f"[red]scoring {cell.model} on {cell.target} failed:[/] {escape(str(exc))}")
        free_accelerator_memory()

    with make_progress(console) as progress:
        bar = progress.add_task("evaluate", total=len(scorable))

        def score(model_name: str, cells: list) -> None:
            """Score one model's cells (their locks held), filing each as its result comes."""
            progress.update(bar, description=f"evaluate {model_name} on {', '.join(c.target for c in cells)}")
            left = list(cells)
            try:
                scorer = switch_to(model_name)
                only_base = (host.base_only() if model_name == BASE and not vllm and host is not None
                             else contextlib.nullcontext())
                with only_base:
                    for cell, result, seconds in score_cells(scorer, plan, cells, console):
                        left.remove(cell)
                        if isinstance(result, Exception):  # one cell failing must not cost the others
                            failed(cell, result)
                        else:
                            try:
                                entries.store_cell(cache, cell, result, seconds)
                                cell.done_here = True
                            except Exception as exc:
                                failed(cell, exc)
                        progress.advance(bar)
            except Exception as exc:  # the model could not be switched in (or scoring ran out of memory)
                for cell in left:
                    failed(cell, exc)
                    progress.advance(bar)

        later = []
        for model_name, cells in by_model.items():
            with claimed_now(cache, "cells", cells) as (mine, held):
                if mine:
                    score(model_name, mine)
            later += held  # cells another run sharing the cache is scoring: waited for at the end
        for cell in claimed(cache, "cells", later, console, lambda c: f"scoring {c.model} on {c.target}"):
            score(cell.model, [cell])
        progress.update(bar, completed=len(scorable))  # cells another run scored meanwhile


def checkpoint_evaluator(job, registry: Registry) -> Evaluator:
    """An evaluator on a brought checkpoint, loaded as the base model is (dtype, device) with its
    own tokenizer: a second model in memory while its cells are scored."""
    import gc

    from harness.model.loading import load

    gc.collect()  # the previous checkpoint's model, if any, before this one is loaded
    free_accelerator_memory()
    model, tokenizer = load(job.path, registry.base_model)
    return Evaluator(model, tokenizer, registry.evaluation)


def vllm_evaluator(plan: Plan, registry: Registry, cache: Cache, model, model_dir: Path | None):
    """lm-eval's vLLM backend on the converted model directory, LoRA enabled through the first
    trained adapter. The training model leaves the GPU first: vLLM loads its own copy."""
    import torch

    from harness.model.compute import resolve_dtype

    if model is not None:
        model.to("cpu")
        torch.cuda.empty_cache()
    from harness.model.brought import adapter_rank, vllm_lora_rank

    ready = [a for a in plan.adapters if a.cached and a.kind != "checkpoint"]
    first = weights_path(ready[0], cache) if ready else None
    # vLLM takes only some values of max_lora_rank: the smallest one that holds every adapter's rank.
    ranks = [registry.lora.rank] + [adapter_rank(a.path)[1] or 0 for a in ready if a.brought]
    return VLLMEvaluator(model_dir, registry.evaluation, first, vllm_lora_rank(ranks),
                         resolve_dtype(registry.base_model.dtype))


def check_backend(registry: Registry) -> None:
    """Refuse, before any work, an evaluation backend this machine cannot run."""
    if registry.evaluation.backend != "vllm":
        return
    import importlib.util

    from harness.model.compute import device

    if device() != "cuda" or importlib.util.find_spec("vllm") is None:
        raise ExecutorError("evaluation.backend vllm needs a CUDA GPU and `pip install vllm`; "
                            "this machine has " + ("no vLLM" if device() == "cuda" else "no CUDA")
                            + ". Use backend: hf")


@dataclass
class Scoring:
    """What scoring cells reads of a plan (:func:`score_cells` takes either): each target's
    lm-eval config and metric. All a Ray worker is sent of the plan."""

    target_configs: dict[str, dict]  # target name -> inline lm-eval config
    metrics: dict[str, str]  # target name -> lm-eval metric key

    def metric(self, target: str) -> str:
        return self.metrics[target]


def score_cell(evaluator, plan: Plan | Scoring, target: str):
    return evaluator.evaluate({target: plan.target_configs[target]}, {target: plan.metric(target)})[target]


def request_count(out: dict, config: dict) -> int:
    """The requests a target (``config``: a task, or a group of them) sent the model in a
    ``simple_evaluate`` output. lm-eval logs every document once per filter, with the same
    requests: one filter's log is counted."""
    count = 0
    for leaf in scoring_configs(config):
        logged = (out.get("samples") or {}).get(leaf["task"]) or []
        first = logged[0].get("filter") if logged else None
        count += sum(len(smp.get("arguments") or ()) for smp in logged if smp.get("filter") == first)
    return count


def score_cells(evaluator, plan: Plan | Scoring, cells: list, console=None):
    """Yield ``(cell, CellResult or the exception that stopped it, seconds)`` for every cell of the
    model the evaluator scores now.

    The cells go in as few ``simple_evaluate`` calls as lm-eval allows (:func:`calls`: one per
    ``limit`` and ``num_fewshot``; every built-in target is in the one with no limit): lm-eval
    builds the call's tasks, pools their requests by type and batches them together (fuller
    batches, one pass of its per-call setup), exactly as one ``lm_eval --tasks A B C`` command
    does, so the scores are that command's. If a joint call fails, its cells are scored one call
    each, so one broken target costs only its own cell.
    """
    by_target = {c.target: c for c in cells}
    configs = {c.target: plan.target_configs[c.target] for c in cells}
    for (limit, num_fewshot), batch in calls(configs, evaluator.settings.num_fewshot).items():
        group = [by_target[t] for t in batch]
        if len(group) > 1:
            start = time.perf_counter()
            try:
                out = evaluator.call(batch, limit, num_fewshot)
            except Exception as exc:
                free_accelerator_memory()
                if console is not None:
                    console.log(f"[yellow]scoring {group[0].model} on {', '.join(batch)} in one lm-eval call "
                                f"failed ({escape(str(exc)[:200])}); scoring them one by one")
            else:
                seconds = time.perf_counter() - start
                # The requests of all the call's tasks run in shared batches, so a cell's own time
                # cannot be measured: the call's seconds are split over its cells by their share
                # of its requests (an estimate per cell: a generation request costs more than a
                # loglikelihood one; the sum is the call's measured time).
                requests = {t: request_count(out, config) for t, config in batch.items()}
                total = sum(requests.values())
                for cell in group:
                    share = seconds * (requests[cell.target] / total if total else 1 / len(group))
                    try:
                        result = cell_result(cell.target, plan.metric(cell.target), batch[cell.target],
                                             out, evaluator.settings.seed)
                    except Exception as exc:
                        yield cell, exc, share
                    else:
                        yield cell, result, share
                continue
        for cell in group:
            start = time.perf_counter()
            try:
                result = score_cell(evaluator, plan, cell.target)
            except Exception as exc:  # one cell failing (out of memory, a task bug) must not cost the others
                yield cell, exc, time.perf_counter() - start
            else:
                yield cell, result, time.perf_counter() - start
