"""End to end on a tiny random Llama: the four outputs, the schema, re-runs that redo nothing."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys

import pytest

from harness.reporting.results_schema import validate_results

REGISTRY = """\
experiment: tiny
output_dir: out
cache_dir: cache
base_model: {{path: {model}}}
sources:
  - {{task: sentiment, n_train: 32}}
  - {{task: nli, n_train: 32}}
  - {{task: arithmetic, n_train: 32}}
targets:
  - {{task: sentiment, limit: 12}}
  - {{task: nli, limit: 12}}
  - {{task: arithmetic, limit: 4}}
lora: {{steps: 6, batch_size: 4, learning_rate: 0.01, target_modules: [q_proj, v_proj, up_proj]}}
evaluation: {{batch_size: 8}}
"""


def harness(*args, cwd):
    return subprocess.run([sys.executable, "-m", "harness.cli", *args], cwd=cwd, capture_output=True, text=True)


@pytest.fixture(scope="module")
def tiny_run(tiny_model_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny-run")
    (root / "registry.yaml").write_text(REGISTRY.format(model=tiny_model_dir))
    first = harness("run", "registry.yaml", cwd=root)
    assert first.returncode == 0, first.stderr[-3000:]
    return root, first


def test_writes_the_four_outputs_and_results_validate(tiny_run):
    root, _ = tiny_run
    run_dir = root / "out" / "tiny"
    for name in ("results.json", "matrix.csv", "traits.csv", "report.md", "report.html", "plots/transfer_heatmap.png"):
        assert (run_dir / name).is_file(), name
    results = json.loads((run_dir / "results.json").read_text())
    validate_results(results)
    assert results["sources"] == ["sentiment", "nli", "arithmetic"]
    assert results["metrics"]["arithmetic"] == "exact_match,extract"
    for s in results["sources"]:  # transfer is exactly adapter minus base
        for t in results["targets"]:
            expected = results["scores"][s][t]["value"] - results["base"][t]["value"]
            assert results["transfer"][s][t] == pytest.approx(expected, abs=1e-9)
    # A random two-layer model rarely flips an answer in 6 steps, but the adapters must change
    # what it computes: the per-sample loglikelihoods differ from the base model's.
    def lls(model):
        rows = (run_dir / "samples" / model / "sentiment.jsonl").read_text().splitlines()
        return [json.loads(r)["loglikelihoods"] for r in rows]
    assert lls("sentiment") != lls("base") and len(lls("base")) == 12
    with open(run_dir / "matrix.csv") as fh:
        rows = list(csv.reader(fh))
    assert rows[0] == ["source", "sentiment", "nli", "arithmetic"] and len(rows) == 4
    assert float(rows[1][1]) == pytest.approx(results["transfer"]["sentiment"]["sentiment"])
    with open(run_dir / "traits.csv") as fh:
        traits = list(csv.DictReader(fh))
    assert traits[0]["source"] == "sentiment" and float(traits[0]["class_entropy"]) > 0.5
    assert traits[2]["class_entropy"] == ""  # arithmetic has no classes
    pca = results["decompositions"]["pca"]
    ratios = pca["explained_variance_ratio"]
    assert all(0 <= r <= 1 for r in ratios) and ratios == sorted(ratios, reverse=True) and sum(ratios) <= 1 + 1e-9
    assert set(pca["scores"]) == {"sentiment", "nli", "arithmetic"} and set(pca["labels"]) == set(pca["loadings"])
    assert (run_dir / "samples" / "base" / "nli.jsonl").is_file()
    assert json.loads((run_dir / "training" / "nli.json").read_text())["total_steps"] == 6
    prov = results["provenance"]
    assert prov["computed"] == {"adapters": 3, "cells": 12} and prov["versions"]["lm_eval"]
    assert "Transfer (adapter − base)" in (run_dir / "report.md").read_text()


def test_results_carry_the_analysis(tiny_run):
    root, _ = tiny_run
    results = json.loads((root / "out" / "tiny" / "results.json").read_text())
    pca = results["decompositions"]["pca"]
    assert pca["stability"]["bootstrap"]["n"] + pca["stability"]["bootstrap"]["n_failed"] == 200
    assert set(pca["stability"]["leave_one_source_out"]["congruence"]["C1"]) == set(results["sources"])
    assert {r["component"] for r in results["correlations"]} <= set(pca["labels"])
    assert all(0 <= r["p"] <= r["q"] <= 1 for r in results["correlations"] if r["p"] is not None)
    assert set(results["cell_tests"]) == set(results["sources"])
    assert results["cell_tests"]["nli"]["sentiment"]["method"] == "mcnemar"
    with open(root / "out" / "tiny" / "cell_tests.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 9 and {r["method"] for r in rows} == {"mcnemar"}
    nli = next(r for r in rows if (r["source"], r["target"]) == ("nli", "sentiment"))
    assert float(nli["p"]) == results["cell_tests"]["nli"]["sentiment"]["p"]
    assert results["analysis_settings"]["bootstrap"] == 200
    pred = results["prediction"]
    assert pred["n_sources"] == 3 and "score" in pred
    for t in results["targets"]:  # accuracy and exact match: held-out predictions within [-base, 1 - base]
        base = results["base"][t]["value"]
        assert pred["bounds"][t] == pytest.approx([-base, 1 - base])
        assert all(-base <= p["predicted"][t] <= 1 - base for p in pred["per_source"].values())
    vague = [t for t, v in pred["informative"].items() if v is False]
    html = (root / "out" / "tiny" / "report.html").read_text()
    assert ("not informative with 3 sources" in html) == bool(vague)
    assert results["trait_scopes"]["class_entropy"] == "source"
    assert results["trait_scopes"]["behaviour_tv_from_base"] == "behaviour"


def test_recommend_ranks_sources_and_a_candidate(tiny_run):
    root, _ = tiny_run
    out = harness("recommend", "registry.yaml", "--target", "sentiment", "--candidates", "topic", "--json", cwd=root)
    assert out.returncode == 0, out.stderr[-2000:]
    result = json.loads(out.stdout)
    ranking = {row["source"]: row for row in result["ranking"]}
    assert set(ranking) == {"sentiment", "nli", "arithmetic", "topic"}
    results = json.loads((root / "out" / "tiny" / "results.json").read_text())
    assert ranking["nli"]["measured"] == results["transfer"]["nli"]["sentiment"] and ranking["nli"]["fine_tuned"]
    topic = ranking["topic"]
    assert not topic["fine_tuned"] and topic["measured"] is None
    base = results["base"]["sentiment"]["value"]
    assert result["bounds"] == pytest.approx([-base, 1 - base]) and result["n_sources"] == 3
    for row in result["ranking"]:  # accuracy: transfer within [-base, 1 - base], and so the intervals
        assert -base <= row["interval"][0] <= row["predicted"] <= row["interval"][1] <= 1 - base
    # Three sources cannot pin a candidate down: its interval spans most of that range.
    assert topic["informative"] is False and topic["expected"] is None
    assert result["ranking"][-1]["source"] == "topic"
    expected = [row["expected"] for row in result["ranking"] if row["expected"] is not None]
    assert expected == sorted(expected, reverse=True) and len(expected) == 3
    text = harness("recommend", "registry.yaml", "--target", "sentiment", "--candidates", "topic", cwd=root)
    assert text.returncode == 0 and "candidate" in text.stdout and "not informative with 3 sources" in text.stdout
    bad = harness("recommend", "registry.yaml", "--target", "sentimnt", cwd=root)
    assert bad.returncode == 2 and "did you mean 'sentiment'" in bad.stderr
    bad = harness("recommend", "registry.yaml", "--target", "nli", "--candidates", "nli", cwd=root)
    assert bad.returncode == 2 and "already fine-tuned" in bad.stderr


def test_analyze_reads_the_run_folder(tiny_run):
    root, _ = tiny_run
    out = harness("analyze", "out/tiny", "--decomposer", "factor_analysis", "--bootstrap", "20", "--json", cwd=root)
    assert out.returncode == 0, out.stderr[-2000:]
    analysed = json.loads(out.stdout)
    assert analysed["decompositions"]["factor_analysis"]["stability"]["bootstrap"]["n"] > 0
    assert analysed["cell_tests"]["nli"]["nli"]["method"] == "mcnemar"


def test_rerun_reuses_every_adapter_and_cell(tiny_run):
    root, first = tiny_run
    before = json.loads((root / "out" / "tiny" / "results.json").read_text())
    dry = harness("run", "registry.yaml", "--dry-run", cwd=root)
    assert dry.returncode == 0 and "0 of 3 adapters and 0 of 12 cells would run" in dry.stdout
    again = harness("run", "registry.yaml", "--quiet", "--json", cwd=root)
    assert again.returncode == 0, again.stderr[-2000:]
    assert again.stderr == ""  # --quiet: nothing printed but the JSON summary on stdout
    summary = json.loads(again.stdout)
    assert summary["computed"] == {"adapters": 0, "cells": 0} and summary["failures"] == []
    assert {"results.json", "report.html", "matrix.csv"} <= set(summary["files"])
    after = json.loads((root / "out" / "tiny" / "results.json").read_text())
    assert after["provenance"]["computed"] == {"adapters": 0, "cells": 0}
    assert after["provenance"]["reused"] == {"adapters": 3, "cells": 12}
    assert "load_model" not in after["provenance"]["seconds"]  # no model was loaded
    assert after["transfer"] == before["transfer"] and after["base"] == before["base"]


def test_terminal_output_fits_80_columns(tiny_run):
    root, _ = tiny_run
    import os

    out = subprocess.run([sys.executable, "-m", "harness.cli", "report", "out/tiny"], cwd=root, capture_output=True,
                         text=True, env={**os.environ, "COLUMNS": "80"})
    assert out.returncode == 0, out.stderr[-2000:]
    lines = (out.stdout + out.stderr).splitlines()
    assert len(lines) > 10 and max(len(line) for line in lines) <= 80


def test_changing_one_target_reruns_only_its_column(tiny_run):
    root, _ = tiny_run
    text = (root / "registry.yaml").read_text().replace("{task: nli, limit: 12}", "{task: nli, limit: 10}")
    (root / "changed.yaml").write_text(text.replace("experiment: tiny", "experiment: tiny2"))
    dry = harness("run", "changed.yaml", "--dry-run", cwd=root)
    assert "0 of 3 adapters and 4 of 12 cells would run" in dry.stdout


def test_missing_model_offline_is_a_clear_error(tmp_path):
    (tmp_path / "r.yaml").write_text(REGISTRY.format(model=tmp_path / "nowhere").replace(
        "base_model: {path: " + str(tmp_path / "nowhere") + "}",
        "base_model: {hub_id: nobody/not-a-model, path: " + str(tmp_path / "nowhere") + "}"))
    out = harness("run", "r.yaml", cwd=tmp_path)
    assert out.returncode == 2
    assert "base model not found" in out.stderr and "HF_HUB_OFFLINE" in out.stderr


def test_vllm_backend_is_refused_without_a_gpu(tiny_model_dir, tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA: the refusal is for machines without it")
    (tmp_path / "registry.yaml").write_text(REGISTRY.format(model=tiny_model_dir).replace(
        "evaluation: {batch_size: 8}", "evaluation: {batch_size: 8, backend: vllm}"))
    out = harness("run", "registry.yaml", cwd=tmp_path)
    assert out.returncode == 2 and "backend vllm needs a CUDA GPU" in out.stderr
    assert not (tmp_path / "cache" / "adapters").exists()  # refused before any training


def test_one_source_skips_what_needs_more_and_exits_0(tiny_run):
    """A registry with one source (a first plugin; CI scoring one checkpoint): decompositions, trait
    tests and prediction do not apply, and that is said in results.json and the reports, not
    counted as a failure."""
    root, _ = tiny_run
    text = (root / "registry.yaml").read_text().replace("experiment: tiny", "experiment: one")
    text = text.replace("  - {task: nli, n_train: 32}\n  - {task: arithmetic, n_train: 32}\n", "")
    (root / "one.yaml").write_text(text)
    out = harness("run", "one.yaml", cwd=root)  # the sentiment adapter and its cells come from the cache
    assert out.returncode == 0, out.stderr[-3000:]
    run_dir = root / "out" / "one"
    results = json.loads((run_dir / "results.json").read_text())
    validate_results(results)
    assert results["sources"] == ["sentiment"] and results["failures"] == []
    skipped = {(s["analysis"], s.get("plugin")): s["reason"] for s in results["skipped"]}
    assert "needs at least 2 sources" in skipped["decompose", "pca"]
    assert "needs at least 3" in skipped["prediction", None] and results["prediction"] is None
    assert "needs at least 3 sources" in skipped["target_trait_tests", None]
    assert results["decompositions"] == {} and results["cell_tests"]["sentiment"]["nli"]["method"] == "mcnemar"
    report = (run_dir / "report.md").read_text()
    assert "## Skipped analyses" in report and skipped["decompose", "pca"] in report
    assert "## Failures" not in report
    assert "Skipped analyses" in (run_dir / "report.html").read_text()
    assert "Skipped decompose (pca)" in out.stderr and "failure" not in out.stderr


def test_a_real_analysis_error_still_exits_1(tiny_run):
    """Next to the skips, an analysis that raises (here names for a component PCA of two sources
    cannot have) is a failure: exit 1."""
    root, _ = tiny_run
    text = (root / "registry.yaml").read_text().replace("experiment: tiny", "experiment: broken")
    text = text.replace("  - {task: arithmetic, n_train: 32}\n", "")
    (root / "broken.yaml").write_text(text + "decomposers: [{name: pca, names: {C5: five}}]\n")
    out = harness("run", "broken.yaml", cwd=root)
    assert out.returncode == 1
    results = json.loads((root / "out" / "broken" / "results.json").read_text())
    assert [f["stage"] for f in results["failures"]] == ["decompose"]
    assert "names given for C5" in results["failures"][0]["error"]
    assert any(s["analysis"] == "prediction" for s in results["skipped"])  # still skipped, not failed


def test_run_outputs_are_readable_like_any_other_file(tiny_run):
    """Atomic writes go through a 0600 temporary file; the files renamed into place get the mode
    a plain write would (0666 less the umask: 0644 under 022), so others can read a shared run."""
    root, _ = tiny_run
    mask = os.umask(0o022)
    os.umask(mask)
    run_dir = root / "out" / "tiny"
    files = [p for p in run_dir.rglob("*") if p.is_file()]
    assert len(files) > 10
    assert {p.relative_to(run_dir).as_posix(): oct(p.stat().st_mode & 0o777) for p in files
            if p.stat().st_mode & 0o777 != 0o666 & ~mask} == {}
