"""What each cache entry holds on disk, in one place: the files of an adapter, a scored cell and a
trait value, how they are written into an entry and read back.

The store (:mod:`harness.cache.store`) knows entries only as folders; the stages and the reports
go through these functions, so the layout of an entry is defined once.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from harness.cache.store import Cache
from harness.files import write_json_atomic

CELL_FILE = "cell.json"  # the score: model, target, value, stderr, metric, n, aggregation, seconds
SAMPLES_FILE = "samples.jsonl"  # one record per scored document (lm-eval's per-sample log, trimmed)
TRAIN_LOG = "train_log.json"  # loss per step, tokens, seconds, dropped_too_long, source
TRAIT_VALUES = "values.json"  # a source trait's outputs for one source: {output: value}
TRAIT_PAIRS = "pairs.json"  # a pair trait's tables: {output: {source: {target: value}}}


def store_cell(cache: Cache, cell, result, seconds: float) -> None:
    """File a scored cell (a ``CellJob`` and its ``CellResult``) under the cell's key, atomically."""
    with cache.entry("cells", cell.key) as tmp:
        write_json_atomic(tmp / CELL_FILE, {"model": cell.model, "target": cell.target, "value": result.value,
                                            "stderr": result.stderr, "metric": result.metric, "n": result.n,
                                            "aggregation": result.aggregation, "seconds": round(seconds, 3)})
        with open(tmp / SAMPLES_FILE, "w") as fh:
            for sample in result.samples:
                fh.write(json.dumps(sample) + "\n")
    cell.cached = True


def read_cell(cache: Cache, key: str) -> dict | None:
    """A cell's score record, or None when the cache does not hold it."""
    path = cache.path("cells", key) / CELL_FILE
    if not path.is_file():
        return None
    return json.loads(path.read_text())


def samples_path(cache: Cache, key: str) -> Path:
    return cache.path("cells", key) / SAMPLES_FILE


def read_samples(cache: Cache, key: str) -> list[dict]:
    """A cell's per-sample records; empty when it has none."""
    path = samples_path(cache, key)
    return [json.loads(line) for line in path.read_text().splitlines()] if path.is_file() else []


def train_log_path(cache: Cache, key: str) -> Path:
    return cache.path("adapters", key) / TRAIN_LOG


def read_train_log(cache: Cache, key: str) -> dict:
    return json.loads(train_log_path(cache, key).read_text())


def write_train_log(folder: Path, log: dict) -> None:
    """The training log beside the adapter's weights, in the entry being built."""
    write_json_atomic(folder / TRAIN_LOG, log)


def cached_trait(cache: Cache | None, key: str, filename: str, compute: Callable[[], Any]) -> Any:
    """The JSON in the cache's ``traits/key/filename``, or ``compute()``'s result, filed there."""
    if cache is None:
        return compute()
    if cache.has("traits", key):
        return json.loads((cache.path("traits", key) / filename).read_text())
    value = compute()
    with cache.entry("traits", key) as tmp:
        write_json_atomic(tmp / filename, value)
    return value
