"""Reports from results.json alone: the self-contained HTML, Markdown, plots, `harness report`
and `harness check`, including hostile names from data."""

from __future__ import annotations

import json
import re
import shutil
import struct
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from harness.cli import main
from harness.reporting.markdown import markdown
from harness.stages.report import write_reports
from helpers import HOSTILE, Structure, make_results


def png_size(path) -> tuple[int, int]:
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", head[16:24])


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("run")
    results = make_results()
    (run_dir / "results.json").write_text(json.dumps(results))
    return run_dir, results, write_reports(run_dir, results)


def test_html_is_self_contained_and_has_every_section(written):
    run_dir, results, files = written
    text = (run_dir / "report.html").read_text()
    assert "http://" not in text and "https://" not in text
    parser = Structure()
    parser.feed(text)
    assert parser.errors == [] and parser.stack == []
    assert parser.sections == ["provenance", "transfer", "base", "components", "traits", "twins", "side_effects",
                               "recommendations"]
    assert parser.images and all(src.startswith("data:image/png;base64,") for src in parser.images)
    plots = {name for name in files if name.startswith("plots/")}
    for expected in ("transfer_heatmap", "base_scores", "scree_pca", "loadings_pca", "biplot_pca",
                     "traitcorr_pca", "confusion_pos", "lengths_words"):
        assert any(expected in name for name in plots), expected
    assert len(parser.images) == len(plots)  # every plot is embedded
    for name in ("Strongest trait", "Does surface similarity", "bootstrap φ", "best source"):
        assert name in text


def test_plot_files_are_images_of_their_stated_size(written):
    run_dir, _, files = written
    for name, path in files.items():
        if name.startswith("plots/"):
            width, height = png_size(path)
            assert width >= 400 and height >= 250 and path.stat().st_size > 2000, name


def test_hostile_names_are_escaped_in_html_and_markdown(tmp_path):
    results = make_results(rename={"src3": HOSTILE})
    files = write_reports(tmp_path, results)
    html_text = files["report.html"].read_text()
    md = markdown(results)
    assert HOSTILE not in html_text and HOSTILE not in md
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html_text and "&lt;script&gt;alert(1)&lt;/script&gt;" in md
    parser = Structure()
    parser.feed(html_text)
    assert "script" not in parser.stack and parser.errors == []


def _transfer_row(md: str, source: str) -> list[str]:
    line = next(line for line in md.splitlines() if line.startswith(f"| {source} |"))
    return [cell.strip() for cell in line.strip("|").split("|")][1:]


def test_markdown_star_without_cell_tests_uses_the_stderr_of_the_difference():
    """Without paired tests a cell is starred when |adapter - base| exceeds twice the standard
    error of the difference, sqrt(0.03^2 + 0.04^2) = 0.05, not twice the adapter's 0.03 alone."""
    targets = ["a", "b", "c"]
    base = {"a": 0.50, "b": 0.50, "c": 0.50}
    adapter = {"a": 0.57, "b": 0.62, "c": 0.43}  # deltas +0.07 (within 0.10), +0.12 and -0.07
    results = {
        "experiment": "stars", "base_model": {"name": "tiny"}, "sources": ["src"], "targets": targets,
        "metrics": {t: "acc,none" for t in targets},
        "base": {t: {"value": base[t], "stderr": 0.04} for t in targets},
        "scores": {"src": {t: {"value": adapter[t], "stderr": 0.03} for t in targets}},
        "transfer": {"src": {t: adapter[t] - base[t] for t in targets}},
        "decompositions": {}, "traits": {}, "failures": [],
    }
    md = markdown(results)
    assert _transfer_row(md, "src") == ["+0.070", "+0.120*", "-0.070"]
    assert "√(adapter stderr² + base stderr²)" in md
    results["base"]["c"]["stderr"] = None  # a missing base stderr leaves the adapter's alone
    assert _transfer_row(markdown(results), "src")[2] == "-0.070*"
    # With paired cell tests the star is theirs, whatever the stderrs say.
    results["cell_tests"] = {"src": {"a": {"significant": True}, "b": {"significant": False}}}
    assert _transfer_row(markdown(results), "src") == ["+0.070*", "+0.120", "-0.070"]


# Headless Chromium, kept off the network: no host name resolves (the report is a local file and
# must need nothing else), and no background update or sync traffic is started.
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-sync",
                  "--disable-background-networking", "--disable-component-update",
                  "--host-resolver-rules=MAP * ~NOTFOUND"]
# Run by the page once it has loaded: how many images it has, how many decoded, and how many
# resources it fetched from anywhere but itself (data: URIs and the file).
PROBE = ("<script>window.addEventListener('load', () => { const imgs = [...document.images];"
         " const fetched = performance.getEntriesByType('resource').map(e => e.name)"
         ".filter(n => !/^(data|file|blob):/.test(n));"
         " document.title = 'images ' + imgs.length + ' loaded '"
         " + imgs.filter(i => i.complete && i.naturalWidth > 0).length + ' fetched ' + fetched.length; });</script>")


def chromium() -> str:
    browser = next((shutil.which(b) for b in ("chromium", "chromium-browser", "google-chrome", "chrome")
                    if shutil.which(b)), None)
    if browser is None:
        pytest.skip("no Chromium here (.ci/run installs Debian's chromium); the HTML is checked by parsing "
                    "instead (test_html_is_self_contained...)")
    return browser


def probe(browser: str, page: Path, tmp_path: Path) -> tuple[int, int, int]:
    """(images, images decoded, resources fetched from elsewhere) of ``page`` in a real browser."""
    copy = tmp_path / f"probe-{page.name}"
    copy.write_text(page.read_text().replace("</body>", PROBE + "</body>"))
    dom = subprocess.run([browser, *CHROMIUM_FLAGS, "--virtual-time-budget=10000", "--dump-dom", copy.as_uri()],
                         check=True, timeout=120, capture_output=True, text=True).stdout
    found = re.search(r"<title>images (\d+) loaded (\d+) fetched (\d+)</title>", dom)
    assert found, dom[-2000:]
    return tuple(int(g) for g in found.groups())


def test_renders_in_headless_chromium_where_installed(written, tmp_path):
    browser = chromium()
    run_dir, _, _ = written
    shot = tmp_path / "shot.png"
    subprocess.run([browser, *CHROMIUM_FLAGS, f"--screenshot={shot}", "--window-size=1200,3000",
                    (run_dir / "report.html").as_uri()], check=True, timeout=120, capture_output=True)
    assert png_size(shot) == (1200, 3000) and shot.stat().st_size > 10_000
    # Every figure loads, and the page asks for nothing outside itself.
    images, loaded, fetched = probe(browser, run_dir / "report.html", tmp_path)
    assert images == len(list((run_dir / "plots").glob("*.png"))) > 0
    assert (loaded, fetched) == (images, 0)


def test_the_browser_probe_sees_a_missing_figure_and_an_outside_request(tmp_path):
    """The probe itself: a page with a figure it cannot load from elsewhere fails both checks."""
    browser = chromium()
    page = tmp_path / "bad.html"
    page.write_text('<html><body><img src="https://example.invalid/figure.png"></body></html>')
    assert probe(browser, page, tmp_path) == (1, 0, 1)


def test_report_command_rebuilds_from_results_json_alone(written, capsys):
    run_dir, _, _ = written
    (run_dir / "report.html").unlink()
    shutil.rmtree(run_dir / "plots")
    assert main(["report", str(run_dir), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert (run_dir / "report.html").is_file() and "report.md" in out and any(k.startswith("plots/") for k in out)
    (run_dir.parent / "bad.json").write_text(json.dumps({"sources": []}))
    assert main(["report", str(run_dir.parent / "bad.json")]) == 2
    assert "error:" in capsys.readouterr().err


def test_check_passes_on_an_identical_baseline_and_fails_on_a_doctored_one(written, tmp_path, capsys):
    run_dir, results, _ = written
    assert main(["check", str(run_dir), "--baseline", str(run_dir / "results.json")]) == 0
    assert "**PASS**" in capsys.readouterr().out
    doctored = json.loads(json.dumps(results))
    doctored["scores"]["src2"]["nli"]["value"] = results["scores"]["src2"]["nli"]["value"] + 0.5
    (tmp_path / "baseline.json").write_text(json.dumps(doctored))
    junit = tmp_path / "junit.xml"
    assert main(["check", str(run_dir), "--baseline", str(tmp_path / "baseline.json"), "--junit", str(junit)]) == 1
    out = capsys.readouterr().out
    assert "**FAIL**" in out and out.index("src2") < out.index("src0")  # the failing row comes first
    failures = [case for case in ET.parse(junit).getroot().iter("testcase") if case.find("failure") is not None]
    assert [(c.get("classname"), c.get("name")) for c in failures] == [("src2", "nli")]
    assert main(["check", str(run_dir), "--baseline", str(tmp_path / "nowhere.json")]) == 2


def test_plots_are_redrawn_only_when_what_they_show_changes(tmp_path):
    results = make_results()
    write_reports(tmp_path, results)
    heatmap = tmp_path / "plots" / "transfer_heatmap.png"
    first = heatmap.stat().st_mtime_ns
    results["provenance"]["seconds"]["plan"] = 9.9  # timings appear in no figure
    write_reports(tmp_path, results)
    assert heatmap.stat().st_mtime_ns == first
    results["transfer"]["src0"]["add"] += 0.1
    write_reports(tmp_path, results)
    assert heatmap.stat().st_mtime_ns != first
