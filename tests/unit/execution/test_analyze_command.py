"""`harness analyze` (harness.execution.analyze) on a bare matrix.csv and on a run folder, from
the synthetic runs of helpers.py."""

from __future__ import annotations

import json

import pytest

from harness.cli import main
from helpers import ABILITIES, TARGETS, synthetic_run


def write_csvs(tmp_path, data):
    matrix = tmp_path / "matrix.csv"
    matrix.write_text("source," + ",".join(data.targets) + "\n" + "".join(
        s + "," + ",".join(repr(data.transfer[s][t]) for t in data.targets) + "\n" for s in data.sources))
    traits = tmp_path / "traits.csv"
    names = ["maths_share", "noise_a", "noise_b"]
    traits.write_text("source," + ",".join(names) + "\n" + "".join(
        s + "," + ",".join(repr(data.traits[s][k]) for k in names) + "\n" for s in data.sources))
    return matrix, traits


def test_analyze_a_bare_matrix(tmp_path, capsys):
    data, *_ = synthetic_run()
    matrix, traits = write_csvs(tmp_path, data)
    assert main(["analyze", str(matrix), "--traits", str(traits), "--n-components", "2", "--json",
                 "--decomposer", "pca", "--decomposer", "factor_analysis"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out["decompositions"]) == {"pca", "factor_analysis"}
    assert out["decompositions"]["pca"]["stability"]["bootstrap"] is None  # no per-sample logs
    # Without ability tags, components are named after their targets.
    assert set(out["decompositions"]["pca"]["labels"]["C1"].split("+")) <= set(TARGETS)
    row = out["correlations"][0]
    assert {"trait", "component", "spearman", "p", "q"} <= set(row)
    assert out["cell_tests"] is None
    assert main(["analyze", str(matrix), "--traits", str(traits)]) == 0  # the terminal form
    text = capsys.readouterr().out
    assert "pca on raw transfer" in text and "maths_share" in text


def test_analyze_a_one_source_matrix_skips_and_exits_0(tmp_path, capsys):
    data, *_ = synthetic_run(n_sources=1)
    matrix, traits = write_csvs(tmp_path, data)
    assert main(["analyze", str(matrix), "--traits", str(traits), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert {s["analysis"] for s in out["skipped"]} == {"decompose", "target_trait_tests", "cell_tests", "prediction"}
    assert main(["analyze", str(matrix)]) == 0  # the terminal form, without traits
    text = capsys.readouterr().out
    assert "Skipped decompose (pca)" in text and "Skipped target trait tests: no source traits" in text


@pytest.mark.parametrize("args, message", [
    (["--decomposer", "pcaa"], "did you mean 'pca'"),
    (["--normalisation", "ordinal"], "needs per-sample logs"),
    (["--n-components", "two"], "--n-components 'two'"),
    (["--n-components", "1.5"], "threshold in (0, 1)"),
])
def test_analyze_usage_errors_exit_2(tmp_path, capsys, args, message):
    data, *_ = synthetic_run(n_sources=4)
    matrix, _ = write_csvs(tmp_path, data)
    assert main(["analyze", str(matrix), *args]) == 2
    assert message in capsys.readouterr().err


def test_analyze_reports_bad_rows_with_file_and_line(tmp_path, capsys):
    bad = tmp_path / "matrix.csv"
    bad.write_text("source,a,b\ns1,0.1,0.2\ns2,0.3,lots\n")
    assert main(["analyze", str(bad)]) == 2
    assert f"{bad}:3: column 'b': 'lots' is not a number" in capsys.readouterr().err


def test_analyze_a_run_folder_uses_its_samples(tmp_path, capsys):
    data, samples, mean, _ = synthetic_run()
    run = tmp_path / "run"
    for model, by_target in samples.items():
        for t, records in by_target.items():
            path = run / "samples" / model / f"{t}.jsonl"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("".join(json.dumps(r) + "\n" for r in records))
    results = {"sources": data.sources, "targets": TARGETS, "transfer": data.transfer,
               "base": {t: {"value": mean["base"][t], "stderr": 0.04} for t in TARGETS},
               "scores": {s: {t: {"value": mean[s][t], "stderr": 0.04} for t in TARGETS} for s in data.sources},
               "abilities": {t: list(v) for t, v in ABILITIES.items()}, "traits": data.traits,
               "trait_scopes": {"maths_share": "source", "noise_a": "source", "noise_b": "behaviour"}}
    (run / "results.json").write_text(json.dumps(results))
    assert main(["analyze", str(run), "--bootstrap", "20", "--normalisation", "ordinal", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["decompositions"]["pca"]["stability"]["bootstrap"]["n"] == 20
    assert out["cell_tests"]["src5"]["add"]["significant"]
    assert "source:noise_b" not in out["prediction"]["features"]  # a behaviour trait: not a predictor
