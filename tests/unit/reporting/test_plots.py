"""Report figures: fixed pixel sizes, valid PNGs, literal names, and failures kept contained."""

from __future__ import annotations

import copy
import struct
from pathlib import Path

import pytest

from harness.reporting import plots

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
XSS = "<script>alert(1)</script>"
MATH = "$x$"


def png_size(path: Path) -> tuple[int, int]:
    """Width and height from a PNG's IHDR chunk (the first one, right after the signature)."""
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE, f"{path.name} is not a PNG"
    length, kind = struct.unpack(">I4s", data[8:16])
    assert kind == b"IHDR" and length == 13
    return struct.unpack(">II", data[16:24])


def synthetic_results() -> dict:
    """4 sources x 3 targets, one two-component decomposition, correlations, behaviour for one
    classification and one generation target, a null cell and a significant cell; two names
    that matplotlib or a browser could misread."""
    sources = ["arith", "senti", XSS, "long_" + "x" * 80]
    targets = ["nli", MATH, "gen"]
    transfer = {s: {t: 0.1 * (i - j) for j, t in enumerate(targets)} for i, s in enumerate(sources)}
    transfer["senti"]["gen"] = None
    cell_tests = {s: {t: {"method": "mcnemar", "p": 0.5, "q": 0.6, "significant": False} for t in targets}
                  for s in sources}
    cell_tests["arith"]["nli"].update(p=0.001, q=0.01, significant=True)
    loadings = {"C1": {"nli": 0.7, MATH: -0.5, "gen": 0.2}, "C2": {"nli": 0.1, MATH: 0.6, "gen": -0.8}}
    scores = {s: {"C1": 0.3 * i - 0.4, "C2": 0.2 - 0.15 * i} for i, s in enumerate(sources)}
    decomposition = {
        "explained_variance_ratio": [0.6, 0.3],
        "loadings": loadings,
        "scores": scores,
        "labels": {"C1": "nlu", "C2": "price in $"},
        "normalisation": "raw",
        "n_components": {"k": 2, "method": "parallel analysis", "eigenvalues": [0.5, 0.25, 0.08],
                         "explained_variance_ratio": [0.6, 0.3, 0.1],
                         "correlation_eigenvalues": [1.8, 0.9, 0.3], "parallel_thresholds": [1.5, 1.1, 0.8]},
        "label_evidence": {},
        "stability": {"bootstrap": None, "leave_one_source_out": None, "verdict": {}},
    }
    correlations = [{"decomposer": "pca", "trait": trait, "component": c, "spearman": rho, "p": 0.2, "q": q, "n": 4}
                    for trait, rho0, q in (("type_token_ratio", 0.4, 0.8), (XSS, -0.9, 0.04), ("missing", None, None))
                    for c, rho in (("C1", rho0), ("C2", None if rho0 is None else -rho0 / 2))]
    models = ["base", *sources]
    behaviour = {"behaviour": {"models": models, "missing": [], "targets": {
        "nli": {"kind": "multiple_choice", "missing": [], "labels": ["yes", "no", MATH],
                "models": {m: {"n": 12, "invalid": i % 2, "accuracy": 0.5,
                               "confusion": [[3, 1, 0], [1, 2 + i, 1], [0, 1, 3]]}
                           for i, m in enumerate(models)}},
        "gen": {"kind": "generation", "missing": [], "length_bin_edges": [0, 2, 4, 8],
                "models": {m: {"n": 10, "output_length_histogram": [5 - i, 3, 2 + i]} for i, m in enumerate(models)}},
    }}}
    return {
        "sources": sources,
        "targets": targets,
        "metrics": {t: "acc,none" for t in targets},
        "base": {"nli": {"value": 0.4, "stderr": 0.05}, MATH: {"value": 0.7, "stderr": None}, "gen": None},
        "transfer": transfer,
        "cell_tests": cell_tests,
        "decompositions": {"pca": decomposition},
        "correlations": correlations,
        "behaviour": behaviour,
    }


def check_written(written: list[plots.Plot], out: Path) -> None:
    ids = [p.id for p in written]
    assert len(ids) == len(set(ids))
    for p in written:
        assert p.path.is_file() and p.path.parent == out and p.path.name == f"{p.id}.png"
        assert p.path.stat().st_size > 0
        assert png_size(p.path) == (p.width, p.height), p.id
        assert set(p.id) <= set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-")
        assert b"http" not in p.path.read_bytes()  # no matplotlib URL in the PNG's text chunks


@pytest.fixture(autouse=True)
def no_open_figures():
    yield
    # Only checked if pyplot was loaded by someone; this module never loads it.
    import matplotlib.pyplot as plt

    assert plt.get_fignums() == []


def test_every_figure_written_with_its_fixed_size(tmp_path):
    failures: list[dict] = []
    written = plots.render_all(synthetic_results(), tmp_path / "plots", failures=failures)
    assert failures == []
    assert [p.id for p in written] == [
        "transfer_heatmap", "base_scores", "scree_pca", "loadings_pca", "biplot_pca", "traitcorr_pca",
        "confusion_nli", "lengths_gen"]
    check_written(written, tmp_path / "plots")
    sections = {p.id: p.section for p in written}
    assert sections["transfer_heatmap"] == "transfer" and sections["base_scores"] == "base"
    assert sections["biplot_pca"] == "components" and sections["lengths_gen"] == "side_effects"
    assert sections["traitcorr_pca"] == "traits"
    assert [(p.kind, p.key) for p in written][::3] == [("transfer_heatmap", None), ("loadings", "pca"),
                                                        ("confusion", "nli")]
    assert {p.key for p in written if p.kind == "loadings"} == {"pca"}
    # Single-row figures are exactly their kind's figsize x dpi.
    by_id = {p.id: p for p in written}
    for plot_id, kind in (("transfer_heatmap", "transfer_heatmap"), ("scree_pca", "scree"),
                          ("biplot_pca", "biplot"), ("lengths_gen", "lengths")):
        w, h = plots.SIZES[kind]
        assert (by_id[plot_id].width, by_id[plot_id].height) == (round(w * plots.DPI), round(h * plots.DPI))
    # Five models in the confusion grid fit one row; the significance marker is announced.
    assert by_id["confusion_nli"].height == round(plots.SIZES["confusion"][1] * plots.DPI)
    assert "significant" in by_id["transfer_heatmap"].title


def minimal(results: dict) -> dict:
    """Only the parts every run has (transfer and base): cheap to render."""
    return {k: v for k, v in results.items() if k in ("sources", "targets", "metrics", "base", "transfer")}


def test_rendering_is_deterministic(tmp_path):
    a = plots.render_all(minimal(synthetic_results()), tmp_path / "a")
    b = plots.render_all(minimal(synthetic_results()), tmp_path / "b")
    assert len(a) == 2
    assert [p.path.read_bytes() for p in a] == [p.path.read_bytes() for p in b]


def test_minimal_results_give_transfer_and_base_only(tmp_path):
    results = minimal(synthetic_results())
    written = plots.render_all(results, tmp_path)
    assert [p.id for p in written] == ["transfer_heatmap", "base_scores"]
    assert "significant" not in written[0].title
    check_written(written, tmp_path)


def test_null_and_broken_parts_are_skipped(tmp_path):
    results = synthetic_results()
    results.update(cell_tests=None, decompositions={"pca": None, "ica": {}}, correlations=[], behaviour=None)
    results["base"] = {t: None for t in results["targets"]}
    failures: list[dict] = []
    written = plots.render_all(results, tmp_path, failures=failures)
    assert [p.id for p in written] == ["transfer_heatmap"]
    assert failures == []


def test_one_component_gives_a_strip_plot(tmp_path):
    results = synthetic_results()
    results.pop("behaviour")
    dec = results["decompositions"]["pca"]
    dec["loadings"].pop("C2")
    dec["explained_variance_ratio"] = [0.6]
    for row in dec["scores"].values():
        row.pop("C2")
    written = plots.render_all(results, tmp_path)
    assert "biplot_pca" in [p.id for p in written]
    check_written(written, tmp_path)


def test_a_failing_plot_is_reported_and_the_rest_go_on(tmp_path, monkeypatch, caplog):
    def boom(*args, **kwargs):
        raise RuntimeError("drawing broke")

    monkeypatch.setattr(plots, "_loadings", boom)
    results = synthetic_results()
    results.pop("correlations")
    results["behaviour"]["behaviour"]["targets"].pop("nli")  # fewer figures: a faster test
    failures: list[dict] = []
    written = plots.render_all(results, tmp_path, failures=failures)
    ids = [p.id for p in written]
    assert "loadings_pca" not in ids and not (tmp_path / "loadings_pca.png").exists()
    assert ids[0] == "transfer_heatmap" and "biplot_pca" in ids and "lengths_gen" in ids
    assert failures == [{"stage": "plot", "plot": "loadings_pca", "error": "RuntimeError: drawing broke"}]
    assert "loadings_pca" in caplog.text
    check_written(written, tmp_path)


def test_many_models_wrap_into_rows(tmp_path):
    results = {**minimal(synthetic_results()), "behaviour": synthetic_results()["behaviour"]}
    entry = results["behaviour"]["behaviour"]["targets"]["nli"]
    results["behaviour"]["behaviour"]["targets"].pop("gen")
    for i in range(2):
        entry["models"][f"extra{i}"] = copy.deepcopy(entry["models"]["base"])
    written = {p.id: p for p in plots.render_all(results, tmp_path)}
    # 5 + 2 = 7 models: two rows of at most five.
    expected = round((plots.SIZES["confusion"][1] + plots.ROW_HEIGHT) * plots.DPI)
    assert written["confusion_nli"].height == expected
    check_written(list(written.values()), tmp_path)


def test_slug_and_collisions():
    assert plots.slug(XSS) == "_script_alert_1___script_"
    assert plots.slug("") == "_" and plots.slug("é-ok_1") == "_-ok_1"
    assert len(plots.slug("a" * 500)) == 60
    ids = plots._Ids()
    first, second, third = ids.get("confusion", "a b"), ids.get("confusion", "a/b"), ids.get("confusion", "a b")
    assert first == "confusion_a_b"
    assert second.startswith("confusion_a_b-") and second != first
    assert third not in (first, second)
    # Same names in the same order give the same ids.
    again = plots._Ids()
    assert [again.get("confusion", n) for n in ("a b", "a/b", "a b")] == [first, second, third]


def test_colliding_names_get_distinct_files(tmp_path, monkeypatch):
    for name in ("_loadings", "_biplot", "_traitcorr"):  # ids are the point here, not drawing
        monkeypatch.setattr(plots, name, lambda *args: None)
    results = synthetic_results()
    results.pop("behaviour")
    results["decompositions"]["p c a"] = results["decompositions"]["pca"]
    results["decompositions"]["p/c/a"] = results["decompositions"]["pca"]
    written = plots.render_all(results, tmp_path)
    scree = {p.key: p.id for p in written if p.kind == "scree"}
    assert list(scree) == ["pca", "p c a", "p/c/a"] and len(set(scree.values())) == 3
    assert scree["pca"] == "scree_pca" and scree["p c a"] == "scree_p_c_a" and scree["p/c/a"].startswith("scree_p_c_a-")
    check_written(written, tmp_path)


def test_labels_render_literally():
    from matplotlib.text import Text

    for name in (MATH, r"\$5 and $6$", "a$b$c$", XSS):
        text = Text(0, 0, plots.label(name, max_len=100))
        assert text._preprocess_math(text.get_text()) == (name, False)
    short = plots.label("start_" + "m" * 100 + "_end")
    assert len(short) == plots.MAX_LABEL and short.startswith("start_") and short.endswith("_end")


def test_unchanged_figures_are_kept_and_changed_ones_redrawn(tmp_path):
    results = synthetic_results()
    first = {p.id: p for p in plots.render_all(results, tmp_path)}
    stamps = {i: p.path.stat().st_mtime_ns for i, p in first.items()}
    # A new generation target's lengths change: its figure and every run-wide figure are drawn
    # again; the classification target's confusion matrices, which read nothing of it, are kept.
    changed = copy.deepcopy(results)
    gen = changed["behaviour"]["behaviour"]["targets"]["gen"]
    for row in gen["models"].values():
        row["mean_length"] = row.get("mean_length", 0) + 1
    changed["transfer"]["arith"]["nli"] = 0.42
    second = {p.id: p for p in plots.render_all(changed, tmp_path, drawn_before=list(first.values()))}
    assert set(second) == set(first)
    kept = {i for i in second if second[i].path.stat().st_mtime_ns == stamps[i]}
    confusion = next(i for i, p in first.items() if p.kind == "confusion")
    lengths = next(i for i, p in first.items() if p.kind == "lengths")
    assert confusion in kept
    assert "transfer_heatmap" not in kept and lengths not in kept
    assert second[confusion] == first[confusion]
    # A file removed by hand is drawn again even though its fingerprint is unchanged.
    first_path = second[confusion].path
    first_path.unlink()
    third = {p.id: p for p in plots.render_all(changed, tmp_path, drawn_before=list(second.values()))}
    assert third[confusion].path.is_file()
