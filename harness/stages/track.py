"""The tracking stage, after the report: the finished run sent where teams look, MLflow and
Weights & Biases (``tracking:`` in the registry, the optional ``tracking`` extra).

Every cell becomes metrics ``score/MODEL/TARGET``, ``stderr/MODEL/TARGET`` and, for every model but
the base, ``delta/MODEL/TARGET`` (the change against the base); the run folder becomes artifacts.
The kind comes first so that no name is the prefix of another: MLflow's file store keeps each
metric in a file at the path its name spells.
Both libraries are imported only here, and only when the registry asks for them. Whatever goes
wrong while tracking is a failure record: the run folder is complete before this stage starts.
"""

from __future__ import annotations

import math
import os
import re
import time
from pathlib import Path
from urllib.parse import urlparse

from rich.markup import escape

from harness import __version__
from harness.config.registry import BASE, MlflowSettings, Registry, WandbSettings
from harness.errors import describe, failure_record

# MLflow accepts letters, digits, '_', '-', '.', ' ', ':' and '/' in metric and param names; '/'
# separates the parts of a name (and groups W&B's charts), so any other character inside a part,
# '/' included, becomes '_'.
_UNSAFE = re.compile(r"[^A-Za-z0-9_\-. :]")
# What one MlflowClient.log_batch call may carry, and the longest param value (MLflow's limits).
MLFLOW_BATCH, MLFLOW_PARAMS_BATCH, MLFLOW_PARAM_CHARS = 1000, 100, 6000


def metric_name(*parts: str) -> str:
    return "/".join(_UNSAFE.sub("_", p) for p in parts)


def cell_metrics(results: dict) -> dict[str, float]:
    """Every scored cell of ``results`` as ``{name: value}``; cells that failed (None) or are not a
    finite number are left out rather than logged as 0."""
    out: dict[str, float] = {}
    rows = [(BASE, results["base"]), *((s, results["scores"].get(s, {})) for s in results["sources"])]
    for model, row in rows:
        for target in results["targets"]:
            cell = row.get(target)
            if cell is None:
                continue
            values = {"score": cell.get("value"), "stderr": cell.get("stderr")}
            if model != BASE:
                values["delta"] = results["transfer"].get(model, {}).get(target)
            for kind, value in values.items():
                if isinstance(value, (int, float)) and math.isfinite(value):
                    out[metric_name(kind, model, target)] = float(value)
    return out


def run_params(results: dict) -> dict[str, str]:
    """What identifies the run, as short strings (MLflow params, W&B config)."""
    versions = results.get("provenance", {}).get("versions", {})
    return {"experiment": results["experiment"], "base_model": results["base_model"]["name"],
            "base_model_key": results["base_model"].get("key", ""), "sources": ",".join(results["sources"]),
            "targets": ",".join(results["targets"]),
            **{metric_name("metric", t): m for t, m in results["metrics"].items()},
            **{metric_name("version", k): v for k, v in versions.items()}}


def _local_path(value: str, here: Path) -> Path:
    path = Path(os.path.expanduser(value))
    return path if path.is_absolute() else (here / path).resolve()


def mlflow_uri(settings: MlflowSettings, here: Path) -> str | None:
    """The tracking URI with a relative file store made absolute against the registry's folder
    (``file:./mlruns`` and a plain ``mlruns`` alike); other URIs as given."""
    uri = settings.tracking_uri
    if not uri:
        return None
    parsed = urlparse(uri)
    if parsed.scheme == "file" and not parsed.netloc:
        return _local_path(parsed.path, here).as_uri()
    if parsed.scheme == "" or (len(parsed.scheme) == 1 and uri[1:2] == ":"):  # a path (or a Windows drive)
        return _local_path(uri, here).as_uri()
    return uri


def log_mlflow(settings: MlflowSettings, results: dict, run_dir: Path, here: Path) -> dict:
    """One MLflow run holding every cell, the run's parameters and, unless turned off, the run
    folder as artifacts. Returns where it went: tracking URI, experiment and run ids."""
    uri = mlflow_uri(settings, here) or os.environ.get("MLFLOW_TRACKING_URI")
    if uri and uri.startswith("file:"):
        # MLflow 3 refuses its file store unless asked for it; a file: URI in the registry is that
        # request (and the only store that works offline without a database).
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    from mlflow.entities import Metric, Param
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    name = settings.experiment or results["experiment"]
    experiment = client.get_experiment_by_name(name)
    experiment_id = experiment.experiment_id if experiment else client.create_experiment(name)
    tags = {"harness.version": __version__, "harness.run_dir": str(run_dir),
            "harness.registry_hash": results["provenance"]["config_hashes"].get("registry", ""), **settings.tags}
    run = client.create_run(experiment_id, run_name=settings.run_name or f"{results['experiment']} "
                            f"{time.strftime('%Y-%m-%d %H:%M:%S')}", tags=tags)
    run_id = run.info.run_id
    try:
        now = int(time.time() * 1000)
        metrics = [Metric(k, v, now, 0) for k, v in cell_metrics(results).items()]
        metrics.append(Metric("failures", float(len(results["failures"])), now, 0))
        params = [Param(k, v[:MLFLOW_PARAM_CHARS]) for k, v in run_params(results).items()]
        for i in range(0, len(metrics), MLFLOW_BATCH):
            client.log_batch(run_id, metrics=metrics[i:i + MLFLOW_BATCH])
        for i in range(0, len(params), MLFLOW_PARAMS_BATCH):
            client.log_batch(run_id, params=params[i:i + MLFLOW_PARAMS_BATCH])
        if settings.artifacts:
            client.log_artifacts(run_id, str(run_dir))
    except BaseException:
        client.set_terminated(run_id, status="FAILED")
        raise
    client.set_terminated(run_id, status="FINISHED")
    return {"tracking_uri": client.tracking_uri, "experiment_id": experiment_id, "run_id": run_id}


def log_wandb(settings: WandbSettings, results: dict, run_dir: Path, here: Path) -> dict:
    """One W&B run: the cells logged once (one step, so its summary holds each value), the parameters
    in its config, the run folder as an artifact of type ``harness-run``. Silent: the harness says
    where the run went in one line of its own."""
    import wandb

    folder = str(_local_path(settings.dir, here)) if settings.dir else None
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
    with wandb.init(project=settings.project or results["experiment"], entity=settings.entity,
                    name=settings.run_name, mode=settings.mode, dir=folder, tags=settings.tags or None,
                    config=run_params(results), settings=wandb.Settings(silent=True)) as run:
        run.log({**cell_metrics(results), "failures": len(results["failures"])})
        if settings.artifacts and settings.mode != "disabled":
            artifact = wandb.Artifact(f"{results['experiment']}-run", type="harness-run")  # a SAFE_NAME
            artifact.add_dir(str(run_dir))
            run.log_artifact(artifact)
        return {"mode": settings.mode, "run_id": run.id, "dir": getattr(run, "dir", None)}


def track_run(registry: Registry, results: dict, run_dir: Path, here: Path, console) -> tuple[dict, list[dict]]:
    """Send the finished run to every tracker the registry names. Returns what each logged and
    the failures (one per tracker that failed); never raises for a tracker's error."""
    done, failures = {}, []
    for name, settings, log in (("mlflow", registry.tracking.mlflow, log_mlflow),
                                ("wandb", registry.tracking.wandb, log_wandb)):
        if settings is None:
            continue
        try:
            done[name] = log(settings, results, run_dir, here)
            console.log(escape(f"Tracked in {name}: " + ", ".join(f"{k} {v}" for k, v in done[name].items() if v)))
        except Exception as exc:  # a tracking server down, bad credentials: the run folder is complete
            failures.append(failure_record("tracking", exc, tracker=name))
            console.log(f"[red]tracking in {name} failed:[/] {escape(describe(exc))}")
    return done, failures


def track_stage(registry: Registry, results: dict, run_dir: Path, registry_path: Path | None, console) -> list[dict]:
    """The tracking stage of a run, once its folder is complete: every tracker logged, then where
    each run went (``provenance.tracking``) and any tracking failure written into results.json,
    and the reports redrawn when a failure must show there. Returns the failures."""
    if registry.tracking.mlflow is None and registry.tracking.wandb is None:
        return []
    from harness.files import write_json_atomic
    from harness.stages.report import write_reports

    here = registry_path.parent if registry_path else Path.cwd()
    done, failures = track_run(registry, results, run_dir, here, console)
    results["provenance"]["tracking"] = done
    results["failures"] += [{k: v for k, v in f.items() if k != "traceback"} for f in failures]
    write_json_atomic(run_dir / "results.json", results)
    if failures:
        write_reports(run_dir, results)
    return failures
