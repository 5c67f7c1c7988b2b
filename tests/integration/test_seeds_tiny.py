"""Seed replication end to end on a tiny random Llama: lora.seeds [0, 1, 2] gives every cell's mean
and between-seed SE from the replicates' own cells; adding a fourth seed trains and scores only it."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from harness.reporting.results_schema import validate_results
from helpers import ROOT

REGISTRY = """\
experiment: seeds
output_dir: out
cache_dir: cache
base_model: {{path: {model}}}
sources:
  - {{task: sentiment, n_train: 16}}
targets:
  - {{task: sentiment, limit: 10}}
  - {{task: nli, limit: 10}}
lora: {{steps: 3, batch_size: 4, learning_rate: 0.05, target_modules: [q_proj, v_proj], seeds: {seeds}}}
evaluation: {{batch_size: 8}}
analysis: {{bootstrap: 20, permutations: 200}}
"""


def harness(root, *args):
    # The harness of this checkout (not whichever one is installed), as the tests import it.
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    out = subprocess.run([sys.executable, "-m", "harness.cli", *args], cwd=root, capture_output=True, text=True,
                         env=env)
    assert out.returncode == 0, out.stderr[-3000:]
    return out


def run(root, model, seeds):
    (root / "registry.yaml").write_text(REGISTRY.format(model=model, seeds=seeds))
    out = harness(root, "run", "registry.yaml")
    return json.loads((root / "out" / "seeds" / "results.json").read_text()), out


def test_seeds_give_mean_and_se_and_a_new_seed_trains_only_itself(tiny_model_dir, tmp_path):
    results, _ = run(tmp_path, tiny_model_dir, "[0, 1, 2]")
    validate_results(results)
    run_dir = tmp_path / "out" / "seeds"
    models = ["sentiment@seed0", "sentiment@seed1", "sentiment@seed2"]
    assert results["sources"] == ["sentiment"] and list(results["replicates"]) == models
    assert results["replicate_of"]["sentiment@seed1"] == {"source": "sentiment", "seed": 1}
    assert results["provenance"]["computed"] == {"adapters": 3, "cells": 2 + 3 * 2}
    assert set(results["provenance"]["config_hashes"]["adapters"]) == set(models)
    # Different seeds train different adapters: their per-sample loglikelihoods differ.
    lls = [[json.loads(r)["loglikelihoods"] for r in (run_dir / "samples" / m / "sentiment.jsonl").read_text().splitlines()]
           for m in models]
    assert lls[0] != lls[1] != lls[2]
    with open(run_dir / "matrix_seed_se.csv") as fh:
        se_rows = {r["source"]: r for r in csv.DictReader(fh)}
    for t in results["targets"]:
        # Read the replicate cells back: the source's cell is their mean, SD and SE.
        values = np.array([results["replicates"][m][t]["value"] for m in models])
        cell = results["scores"]["sentiment"][t]
        assert cell["seeds"] == [0, 1, 2] and cell["seed_values"] == pytest.approx(values.tolist())
        assert cell["value"] == pytest.approx(values.mean(), abs=1e-12)
        assert cell["seed_sd"] == pytest.approx(values.std(ddof=1), abs=1e-12)
        assert cell["seed_se"] == pytest.approx(values.std(ddof=1) / np.sqrt(3), abs=1e-12)
        assert results["transfer"]["sentiment"][t] == pytest.approx(values.mean() - results["base"][t]["value"], abs=1e-9)
        assert float(se_rows["sentiment"][t]) == pytest.approx(cell["seed_se"])
        # The cell test is the seeds+documents one, on the replicates' per-sample logs.
        assert results["cell_tests"]["sentiment"][t]["method"] == "seeds+documents_t"
        assert results["cell_tests"]["sentiment"][t]["n_seeds"] == 3
    report = (run_dir / "report.md").read_text()
    assert "mean over 3 training seeds (seeds 0, 1, 2)" in report
    se = results["scores"]["sentiment"]["nli"]["seed_se"]
    assert f"± {se:.3f}" in report
    # `harness analyze` on the run folder reads the replicates' logs and gives the same cell tests.
    analysed = json.loads(harness(tmp_path, "analyze", "out/seeds", "--json").stdout)
    for t in results["targets"]:
        again = analysed["cell_tests"]["sentiment"][t]
        assert again["method"] == "seeds+documents_t" and again["p"] == pytest.approx(results["cell_tests"]["sentiment"][t]["p"])

    again, _ = run(tmp_path, tiny_model_dir, "[0, 1, 2, 3]")
    validate_results(again)
    assert again["provenance"]["computed"] == {"adapters": 1, "cells": len(again["targets"])}
    assert again["provenance"]["reused"] == {"adapters": 3, "cells": 2 + 3 * 2}
    for m in models:  # the first three replicates are the very same cells
        assert again["replicates"][m] == results["replicates"][m]
    for t in again["targets"]:
        values = [again["replicates"][f"sentiment@seed{s}"][t]["value"] for s in range(4)]
        assert again["scores"]["sentiment"][t]["value"] == pytest.approx(np.mean(values), abs=1e-12)
        assert again["scores"]["sentiment"][t]["n_seeds"] == 4
