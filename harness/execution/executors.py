"""Where the fine-tune and evaluation jobs run: in this process, or as Ray tasks on a cluster.

Both executors fill the same content-addressed cache with the same entries, and the stages after
them (matrix, traits, analysis) read only the cache, so a run's results do not depend on which
executor computed them; the executor is in no cache key.

* :class:`LocalExecutor` loads the base model once in this process, trains each adapter on it and
  swaps adapters in place to score them.
* :class:`RayExecutor` submits one Ray task per adapter to train (it loads the base model, trains,
  and writes the adapter into the cache) and one task per model to evaluate (base + that adapter
  loaded once, every pending cell of that model scored and written into the cache). Workers must
  see the cache (and the base model's directory) at the same path as this process: a shared
  filesystem on a cluster.

Same numbers from both: the base model, seeds and code are the same; what else changes floats on
CPU is the torch thread count (a sum split over 2 threads is added up in a different order than
over 1), so both executors compute every job with ``executor.threads()`` threads, resolved once
here.
"""

from __future__ import annotations

import contextlib
import json
import os
import traceback
from collections import deque
from pathlib import Path

from rich.markup import escape

from harness.cache.store import Cache
from harness.config.registry import BASE, ExecutorSettings, Registry
from harness.errors import ExecutorError, describe
from harness.model.kept import KeptModel
from harness.stages.plan import Plan, replica_settings, weights_path

RAY_INSTALL = 'pip install "transfer-harness[ray]"'
# Environment the Ray workers need whatever shell started their node: no third-party progress
# bars in worker logs, no tokenizer thread pools fighting the torch threads.
WORKER_ENV = {"TQDM_DISABLE": "1", "TOKENIZERS_PARALLELISM": "false"}
# Passed on from this process when set (offline mode, which plugins load).
PASSED_ENV = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "HF_HOME", "HARNESS_LOAD_PLUGINS", "HARNESS_BLOCK_PLUGINS")
# Where a cache is almost certainly private to one node.
NODE_LOCAL = ("/tmp", "/var/tmp", "/dev/shm")


@contextlib.contextmanager
def torch_threads(n: int):
    """Torch computes with ``n`` threads inside (training and scoring); the count before, after."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def make_executor(settings: ExecutorSettings, console, keep: KeptModel | None = None) -> LocalExecutor | RayExecutor:
    return RayExecutor(settings, console) if settings.kind == "ray" else LocalExecutor(settings, console, keep)


class LocalExecutor:
    """Every job in this process: the base model loaded once, adapters trained and swapped in place."""

    kind = "local"

    def __init__(self, settings: ExecutorSettings, console, keep: KeptModel | None = None):
        self.settings, self.console = settings, console
        self.threads = settings.threads()
        self.keep = keep  # where the base model stays loaded between runs, if it should
        # Loaded here, and reused afterwards by traits that need the base model.
        self.model = self.tokenizer = self.host = None

    def compute(self, dtype: str, dry_run: bool = False) -> dict[str, str]:
        from harness.model.compute import compute_setup

        return compute_setup(dtype)

    def describe(self) -> dict:
        return {"kind": self.kind, "threads": self.threads}

    def run_jobs(self, plan: Plan, registry: Registry, cache: Cache, location, timer, failures: list[dict]) -> None:
        from harness.stages import evaluate

        needs_model = plan.needs_base  # else the base model is not loaded at all
        path = None
        if plan.todo_cells:
            evaluate.check_backend(registry)
        with contextlib.ExitStack() as stack:
            if needs_model:
                with timer.stage("load_model"):
                    stack.enter_context(torch_threads(self.threads))  # what first imports torch
                    # Nothing kept: a throwaway KeptModel. vLLM moves the training model off the GPU, so
                    # that one is never kept for another run.
                    keep = self.keep if self.keep is not None and registry.evaluation.backend == "hf" else KeptModel()
                    name = escape(registry.base_model.display_name)
                    if keep.holds(location, registry.base_model, cache):
                        self.console.log(f"Base model {name} still loaded from the previous run")
                    else:
                        self.console.log(f"Loading base model {name} ({escape(location.how)})")
                    path, self.model, self.tokenizer, self.host = keep.get(location, registry.base_model, cache)
            with timer.stage("finetune"):
                if plan.todo_adapters:  # the training code imports torch: not on a run with nothing to train
                    from harness.stages.finetune import finetune_adapters

                    finetune_adapters(plan, registry, cache, self.host, self.tokenizer, self.console, failures,
                                      threads=self.threads)
            with timer.stage("evaluate"):
                evaluate.evaluate_cells(plan, registry, cache, self.host, self.model, self.tokenizer, self.console,
                                        failures, model_dir=path)

    def close(self) -> None:
        pass


# --- Ray ------------------------------------------------------------------------------------------

def import_ray():
    try:
        import ray
    except ImportError:
        raise ExecutorError(f"executor ray needs Ray, which is not installed here: {RAY_INSTALL} "
                            "(on every node of the cluster too), or use the local executor") from None
    return ray


def cache_warning(registry: Registry, cache: Cache, address: str | None) -> str | None:
    """Why the cache may be invisible to some Ray workers, or None. On a local Ray instance
    (no address) every worker runs on this machine and sees what it sees."""
    if address is None:
        return None
    root = str(cache.root)
    if registry.cache_dir is None:
        why = f"cache_dir is not set, so the cache is the per-user default {root}"
    elif not Path(registry.cache_dir).expanduser().is_absolute():
        why = f"cache_dir {registry.cache_dir!r} is relative (here: {root})"
    elif any(root == p or root.startswith(p + "/") for p in NODE_LOCAL):
        why = f"cache_dir {root} is usually local to each node"
    else:
        return None
    return (f"{why}. Ray workers read and write the cache at exactly this path: it must be on a filesystem "
            "every node mounts at the same place. Set cache_dir to an absolute path on shared storage.")


class RayExecutor:
    """One Ray task per adapter to train and per model to evaluate, each requesting
    ``cpus_per_job`` CPUs and ``gpus_per_job`` GPUs; results go straight into the shared cache."""

    kind = "ray"

    def __init__(self, settings: ExecutorSettings, console):
        self.settings, self.console = settings, console
        self.threads = settings.threads()
        self.model = self.tokenizer = self.host = None  # never loaded in this process
        self.ray = import_ray()  # fail before any work, with the install command
        self._started = False  # whether ray.init was called here (and so ray.shutdown is ours)
        self.nodes = None
        self.planned = None  # the device and dtype the plan's keys were made for (set by compute)

    # resources of one task
    def _options(self) -> dict:
        env = dict(WORKER_ENV)
        env.update({k: os.environ[k] for k in PASSED_ENV if k in os.environ})
        if not self.settings.gpus_per_job:
            # A CPU job computes on the CPU even on a GPU node (its results are keyed "cpu"),
            # whether or not this Ray version hides the GPUs from tasks that requested none.
            env["CUDA_VISIBLE_DEVICES"] = ""
        return {"num_cpus": self.threads, "num_gpus": self.settings.gpus_per_job,
                "runtime_env": {"env_vars": env}, "max_retries": 0}

    def start(self) -> None:
        ray = self.ray
        if not ray.is_initialized():
            import logging

            _check_reachable(self.settings.address)  # Ray itself retries an unreachable head forever
            try:
                ray.init(address=self.settings.address, include_dashboard=False, log_to_driver=False,
                         logging_level=logging.ERROR if self.console.quiet else logging.WARNING)
            except Exception as exc:  # ConnectionError, or Ray's own errors for a bad address
                address = self.settings.address
                where = f"the Ray cluster at {address!r}" if address else "a local Ray instance"
                hint = (" Start one first (`ray start --head` on the head node, `ray start --address HEAD:6379` on "
                        "the others), or leave address empty to start one on this machine."
                        if self.settings.address else "")
                reason = f"{type(exc).__name__}: {str(exc).rstrip('.')}"
                raise ExecutorError(f"cannot start or reach {where}: {reason}.{hint}") from None
            self._started = True
        nodes = [n for n in ray.nodes() if n.get("Alive")]
        self.nodes = len(nodes)
        cpus, gpus = self.threads, self.settings.gpus_per_job
        if not any(n["Resources"].get("CPU", 0) >= cpus and n["Resources"].get("GPU", 0) >= gpus for n in nodes):
            have = "; ".join(f"{n['NodeManagerAddress']}: {n['Resources'].get('CPU', 0):g} CPUs, "
                             f"{n['Resources'].get('GPU', 0):g} GPUs" for n in nodes) or "no nodes"
            self.close()
            raise ExecutorError(f"no Ray node offers what one job requests ({cpus} CPUs, {gpus:g} GPUs), so its "
                                f"tasks would wait forever. Nodes: {have}. Lower executor.cpus_per_job or "
                                "gpus_per_job, or add nodes that have them.")

    def compute(self, dtype: str, dry_run: bool = False) -> dict[str, str]:
        """Device and dtype the workers compute in, which enter the cache keys. A CPU job (no GPUs
        requested, and CUDA hidden from it) is float32 unless a dtype is set; for a GPU job one
        task with the same request asks a worker."""
        if self.settings.gpus_per_job == 0:
            self.planned = {"device": "cpu", "dtype": "float32" if dtype == "auto" else dtype}
        else:
            self.start()
            from harness.model.compute import compute_setup

            probe = self.ray.remote(compute_setup).options(**self._options())
            self.planned = self.ray.get(probe.remote(dtype))
        return self.planned

    def describe(self) -> dict:
        return {"kind": self.kind, "address": self.settings.address, "threads": self.threads,
                "gpus_per_job": self.settings.gpus_per_job, "max_parallel": self.settings.max_parallel,
                "nodes": self.nodes}

    def run_jobs(self, plan: Plan, registry: Registry, cache: Cache, location, timer, failures: list[dict]) -> None:
        from harness.model import loading as models
        from harness.reporting.progress import make_progress

        todo_cells: dict[str, list] = {}
        for cell in plan.todo_cells:
            todo_cells.setdefault(cell.model, []).append(cell)
        if not (plan.todo_adapters or todo_cells):
            return
        if getattr(registry.evaluation, "backend", "hf") != "hf":
            raise ExecutorError(f"executor ray scores with lm-eval's hf backend only; evaluation.backend is "
                                f"{registry.evaluation.backend!r}")
        targets = worker_targets(plan, {c.target for cells in todo_cells.values() for c in cells})
        warning = cache_warning(registry, cache, self.settings.address)
        if warning:
            self.console.log(f"[yellow]warning:[/] {escape(warning)}")
        # Training data is read here, as the local executor reads it: a source whose data cannot be
        # read stops the run the same way (before Ray starts).
        pairs: dict[str, list] = {}  # source -> its training pairs, read once for all its replicates
        for job in plan.todo_adapters:
            if job.source not in pairs:
                pairs[job.source] = job.task.train_pairs(job.n_train)
        with timer.stage("materialise"):  # a GGUF converted into the cache once; never loaded here
            model_dir = models.materialise(location, registry.base_model, cache)
        # Workers check that they see the cache: a run that has written nothing to it yet (brought
        # weights on lm-eval targets only) must still have made its folder.
        cache.root.mkdir(parents=True, exist_ok=True)
        with timer.stage("ray_start"):
            self.start()
        ray = self.ray
        options = self._options()
        train = ray.remote(train_job).options(**options)
        evaluate = ray.remote(evaluate_job).options(**options)
        # What every task needs: plain data only, so workers never load plugins or rebuild the plan.
        common = {"model_dir": str(model_dir), "model_cfg": registry.base_model, "compute": self.planned,
                  "threads": self.threads, "cache_root": str(cache.root)}
        adapters = {a.model: a for a in plan.adapters}
        ready: deque = deque()
        for job in plan.todo_adapters:
            ready.append(("train", job))
        for model_name in todo_cells:
            if model_name == BASE or adapters[model_name].cached:
                ready.append(("evaluate", model_name))
        pending: dict = {}
        limit = self.settings.max_parallel
        ours: list[dict] = []  # failures, sorted into plan order at the end

        def fail_cells(model_name, cells, error, tb=None):
            for cell in cells:
                ours.append({"stage": "evaluate", "source": model_name, "target": cell.target, "error": error,
                             **({"traceback": tb} if tb else {})})

        def submit(item):
            what, name = item
            if what == "train":
                ref = train.remote(**common, key=name.key, adapter=adapter_name_of(name), source=name.model,
                                   pairs=pairs[name.source], kind=name.task.kind,
                                   lora=replica_settings(registry.lora, name))
                return ref, item
            adapter, model = None, {}
            if name != BASE:
                job = adapters[name]
                if job.kind == "checkpoint":  # a model of its own, loaded from its folder instead of the base
                    model = {"model_dir": str(job.path)}
                else:  # trained (in the cache) or brought (in its own folder)
                    adapter = (adapter_name_of(job), str(weights_path(job, cache)))
            cells = todo_cells[name]
            ref = evaluate.remote(**{**common, **model}, settings=registry.evaluation, model_name=name,
                                  adapter=adapter, cells=cells, targets={c.target: targets[c.target] for c in cells})
            return ref, item

        n_cells = sum(len(c) for c in todo_cells.values())
        with timer.stage("ray_jobs"), make_progress(self.console) as progress:
            train_bar = (progress.add_task(f"train on {self.nodes} Ray node(s)", total=len(plan.todo_adapters))
                         if plan.todo_adapters else None)
            eval_bar = progress.add_task("evaluate", total=n_cells) if n_cells else None
            try:
                while ready or pending:
                    while ready and (limit is None or len(pending) < limit):
                        ref, item = submit(ready.popleft())
                        pending[ref] = item
                    done, _ = ray.wait(list(pending), num_returns=1)
                    for ref in done:
                        what, name = pending.pop(ref)
                        try:
                            out = ray.get(ref)
                        except Exception as exc:  # the worker died (out of memory, killed node)
                            out = {"ok": False, "error": f"{type(exc).__name__}: {str(exc)[-2000:]}"}
                        if what == "train":
                            self._trained(name, out, todo_cells, ready, ours, fail_cells, progress, train_bar, eval_bar)
                        else:
                            self._evaluated(name, out, todo_cells[name], ours, fail_cells, progress, eval_bar)
            except BaseException:  # Ctrl-C: stop the tasks in flight; finished ones stay cached
                for ref in pending:
                    try:
                        ray.cancel(ref, force=True)
                    except Exception:
                        pass
                raise
            finally:
                self.close()
        order = {a.model: i for i, a in enumerate(plan.adapters)} | {BASE: -1}
        targets = {t: i for i, t in enumerate(plan.target_configs)}
        ours.sort(key=lambda f: (f["stage"] != "finetune", order.get(f["source"], 0), targets.get(f.get("target"), -1)))
        failures.extend(ours)

    def _trained(self, job, out, todo_cells, ready, ours, fail_cells, progress, train_bar, eval_bar):
        cells = todo_cells.get(job.model, [])
        progress.advance(train_bar)
        if out.get("ok"):
            job.cached, job.done_here = True, not out.get("reused")
            log = out["log"]
            from harness.stages.finetune import trained_message

            self.console.log(trained_message(job.model, log, f" on {out['node']}"))
            if cells:
                ready.append(("evaluate", job.model))
            return
        ours.append({"stage": "finetune", "source": job.model, "error": out["error"],
                     **({"traceback": out["traceback"]} if out.get("traceback") else {})})
        self.console.log(f"[red]training {job.model} failed:[/] {escape(out['error'])}")
        fail_cells(job.model, cells, "adapter was not trained (see the finetune failure)")
        if cells:
            progress.advance(eval_bar, len(cells))

    def _evaluated(self, model_name, out, cells, ours, fail_cells, progress, eval_bar):
        if not out.get("ok"):  # the task failed as a whole: no cell was scored
            fail_cells(model_name, cells, out["error"], out.get("traceback"))
            self.console.log(f"[red]scoring {model_name} failed:[/] {escape(out['error'])}")
        else:
            for line in out.get("log") or ():
                self.console.log(line)
            by_target = {c.target: c for c in cells}
            for row in out["cells"]:
                if row["ok"]:
                    cell = by_target[row["target"]]
                    cell.cached, cell.done_here = True, not row.get("reused")
                else:
                    fail_cells(model_name, [by_target[row["target"]]], row["error"], row.get("traceback"))
                    self.console.log(f"[red]scoring {model_name} on {row['target']} failed:[/] {escape(row['error'])}")
        progress.advance(eval_bar, len(cells))

    def close(self) -> None:
        if self._started and self.ray.is_initialized():
            self.ray.shutdown()
        self._started = False


def _check_reachable(address: str | None, timeout: float = 10.0) -> None:
    """A head given as HOST:PORT must accept connections; 'auto' and ray:// are left to Ray."""
    if not address or address == "auto" or "://" in address or ":" not in address:
        return
    import socket

    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout):
            pass
    except (OSError, ValueError) as exc:
        raise ExecutorError(f"cannot reach the Ray head at {address} ({describe(exc)}). Start it first "
                            "(`ray start --head --port PORT` on the head node), check the address, or use "
                            "--address auto on the head node itself.") from None


def worker_targets(plan: Plan, names: set[str]) -> dict[str, tuple[dict, str]]:
    """``target -> (lm-eval config, metric)`` as sent to the Ray workers: configs made portable
    (:func:`harness.api.lm_eval_tasks.portable`: functions of a task folder's file by where they
    are, loaded again there; nothing else but plain data and importable functions). A config that cannot be sent is refused
    here, before any work, naming the target and the way out."""
    from harness.api.lm_eval_tasks import NotPortable, portable

    out = {}
    for target in plan.target_configs:
        if target not in names:
            continue
        try:
            config = portable(plan.target_configs[target], f"targets.{target}")
        except NotPortable as exc:
            raise ExecutorError(f"target {target} cannot be scored on Ray workers: its lm-eval config cannot be sent "
                                f"to another process ({exc}). Define such functions at the top level of the task "
                                "folder's Python file (`!function utils.NAME`), or use the local executor") from None
        out[target] = (config, plan.metric(target))
    return out


def adapter_name_of(job) -> str:
    from harness.stages.plan import adapter_name

    return adapter_name(job)


# --- inside a Ray worker ----------------------------------------------------------------------------

def _prepare_worker(model_dir: str, model_cfg, compute: dict, threads: int, cache_root: str):
    """Threads, visibility of the shared paths, and the device the plan's keys promise."""
    import torch

    from harness.model.compute import compute_setup

    torch.set_num_threads(threads)
    node = _node()
    for what, path in (("the cache", cache_root), ("the model", model_dir)):
        if not Path(path).exists():
            raise RuntimeError(f"{what} at {path} is not visible on Ray node {node}: every node must see it at the "
                               "same path (a shared filesystem; set cache_dir to it)")
    here = compute_setup(model_cfg.dtype)
    if here != compute:
        raise RuntimeError(f"Ray node {node} would compute on {here['device']} in {here['dtype']}, but the plan's "
                           f"cache keys are for {compute['device']} in {compute['dtype']}; refusing to file results "
                           "under the wrong key (check executor.gpus_per_job and the nodes' GPUs)")
    return node


def _node() -> str:
    try:
        import ray

        return ray.util.get_node_ip_address()
    except Exception:
        return "?"


def train_job(model_dir, model_cfg, compute, threads, cache_root, key, adapter, source, pairs, kind, lora) -> dict:
    """Ray task: train one adapter on a freshly loaded base model and file it in the cache.
    Returns ``{"ok", "log", "node"}`` or ``{"ok": False, "error", "traceback"}``."""
    try:
        from harness.model import loading as models
        from harness.model.adapters import AdapterHost
        from harness.stages.finetune import train_and_store

        node = _prepare_worker(model_dir, model_cfg, compute, threads, cache_root)
        cache = Cache(cache_root)
        with cache.lock("adapters", key):  # another run sharing the cache may be training it
            if cache.has("adapters", key):
                log = json.loads((cache.path("adapters", key) / "train_log.json").read_text())
                return {"ok": True, "log": log, "node": node, "reused": True}
            model, tokenizer = models.load(Path(model_dir), model_cfg)
            log = train_and_store(cache, key, source, AdapterHost(model), adapter, tokenizer, pairs, lora,
                                   threads=threads, kind=kind)
        return {"ok": True, "log": log, "node": node}
    except Exception as exc:
        return {"ok": False, "error": describe(exc), "traceback": traceback.format_exc(limit=5)}


def evaluate_job(model_dir, model_cfg, compute, threads, cache_root, settings, model_name, adapter, cells,
                 targets) -> dict:
    """Ray task: load the base model (and ``adapter``, a (name, path) pair) once, score its
    ``cells`` as the local executor does (:func:`harness.stages.evaluate.score_cells`: one
    ``simple_evaluate`` call per limit and shots, each cell alone if that fails) and file each in
    the cache. ``targets``: :func:`worker_targets`' (config, metric) of each cell's target.
    Returns ``{"ok", "cells": [{"target", "ok", "error"?}]}``, or ``{"ok": False, "error"}`` when
    nothing could be scored."""
    try:
        from harness.api.lm_eval_tasks import restored
        from harness.model import loading as models
        from harness.model.adapters import AdapterHost
        from harness.stages.evaluate import Evaluator, Scoring

        node = _prepare_worker(model_dir, model_cfg, compute, threads, cache_root)
        if adapter is not None and not Path(adapter[1]).exists():
            raise RuntimeError(f"the adapter of {model_name} at {adapter[1]} is not visible on Ray node {node}: "
                               "every node must see it at the same path (a shared filesystem)")
        scoring = Scoring({t: restored(config) for t, (config, _) in targets.items()},
                          {t: metric for t, (_, metric) in targets.items()})
        model, tokenizer = models.load(Path(model_dir), model_cfg)
        host = AdapterHost(model)
        if adapter is not None:
            host.load(adapter[0], Path(adapter[1]))
        evaluator = Evaluator(model, tokenizer, settings)
    except Exception as exc:
        return {"ok": False, "error": describe(exc), "traceback": traceback.format_exc(limit=5)}
    from harness.cache.locks import claimed_now

    cache, rows, notes = Cache(cache_root), [], _Notes()

    def score(group: list) -> None:
        from harness.cache import entries
        from harness.stages.evaluate import score_cells

        for cell, result, seconds in score_cells(evaluator, scoring, group, notes):
            try:
                if isinstance(result, Exception):
                    raise result
                entries.store_cell(cache, cell, result, seconds)
            except Exception as exc:
                rows.append({"target": cell.target, "ok": False, "error": describe(exc),
                             "traceback": "".join(traceback.format_exception(exc, limit=5))})
            else:
                rows.append({"target": cell.target, "ok": True})

    with claimed_now(cache, "cells", cells) as (mine, held):  # another run sharing the cache may hold some
        rows += [{"target": c.target, "ok": True, "reused": True} for c in cells if c.cached]
        if mine:
            score(mine)
    for cell in held:  # waited for one by one: scored here only if that run did not finish it
        with cache.lock("cells", cell.key):
            if cache.has("cells", cell.key):
                rows.append({"target": cell.target, "ok": True, "reused": True})
            else:
                score([cell])
    return {"ok": True, "cells": rows, "log": notes.lines}


class _Notes:
    """What scoring would tell the console (a joint call that failed), kept for the driver to log."""

    def __init__(self):
        self.lines: list[str] = []

    def log(self, message: str) -> None:
        self.lines.append(message)
