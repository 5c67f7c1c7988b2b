"""`harness validate`: every broken registry exits 2 naming the field and its YAML line."""

from __future__ import annotations

import subprocess
import sys

import pytest

from harness.cli import main
from harness.config.registry import load_registry, parse_registry
from harness.errors import RegistryError
from helpers import ROOT

GOOD = """\
experiment: demo
base_model:
  path: /nonexistent/but/fine/for/validation
sources:
  - {task: sentiment, n_train: 16}
  - task: arithmetic
targets:
  - {task: sentiment, limit: 10}
  - {task: nli, limit: 10}
lora:
  rank: 4
"""


def problems(text: str) -> list:
    with pytest.raises(RegistryError) as exc:
        parse_registry(text, "reg.yaml")
    return exc.value.problems


def test_default_registry_is_valid():
    registry = load_registry(ROOT / "registry.yaml")
    assert len(registry.sources) >= 4 and len(registry.targets) >= 6


def test_good_registry_parses_with_defaults():
    registry = parse_registry(GOOD)
    assert registry.lora.rank == 4 and registry.lora.steps == 60
    assert [d.name for d in registry.decomposers] == ["pca"]


def test_bad_yaml_names_the_line():
    (p,) = problems(GOOD.replace("  rank: 4", "  rank: [4"))
    assert "not valid YAML" in p.message and p.line == 12


def test_missing_base_model():
    text = "\n".join(line for line in GOOD.splitlines() if "base_model" not in line and "/nonexistent" not in line)
    (p,) = problems(text)
    assert p.path == "base_model" and "required" in p.message.lower() and p.line == 1


def test_base_model_without_any_location():
    (p,) = problems(GOOD.replace("  path: /nonexistent/but/fine/for/validation", "  dtype: float32"))
    assert p.path == "base_model" and "hub_id, path or gguf" in p.message and p.line == 2


def test_unknown_task_suggests_the_closest():
    (p,) = problems(GOOD.replace("{task: nli, limit: 10}", "{task: sentimnt, limit: 10}"))
    assert p.path == "targets[1].task" and p.line == 9
    assert "did you mean 'sentiment'" in p.message


def test_negative_lora_rank():
    (p,) = problems(GOOD.replace("rank: 4", "rank: -2"))
    assert p.path == "lora.rank" and p.line == 11 and "greater than or equal to 1" in p.message


def test_target_listed_twice():
    (p,) = problems(GOOD.replace("{task: nli, limit: 10}", "{task: sentiment, limit: 20}"))
    assert p.path == "targets" and "listed twice" in p.message and p.line == 7


def test_unknown_option_and_several_problems_at_once():
    text = GOOD.replace("{task: sentiment, n_train: 16}", "{task: sentiment, n_train: 0, options: {colour: red}}")
    found = problems(text)
    paths = {p.path for p in found}
    assert "sources[0].n_train" in paths


def test_unknown_task_option_is_reported_with_its_path():
    (p,) = problems(GOOD.replace("{task: sentiment, n_train: 16}", "{task: sentiment, options: {colour: red}}"))
    assert p.path == "sources[0].options.colour" and p.line == 5


def test_misspelt_field():
    (p,) = problems(GOOD + "lorra: {}\n")
    assert p.path == "lorra" and p.line == 12 and "unknown field" in p.message


def test_unknown_decomposer_and_bad_parameters():
    found = problems(GOOD + "decomposers: [pcaa, {name: pca, params: {whiten: true}}]\n")
    assert [(p.path, p.line) for p in found] == [("decomposers[0]", 12), ("decomposers[1].params", 12)]
    assert "did you mean 'pca'" in found[0].message
    assert "whiten" in found[1].message


@pytest.mark.parametrize("entry, message", [
    ("{name: pca, n_components: 0}", "at least 1"),
    ("{name: pca, n_components: 1.5}", "threshold in (0, 1)"),
    ("{name: pca, n_components: several}", "parallel"),
    ("{name: pca, params: {n_components: 2}}", "not in params"),
    ("{name: pca, names: {first: x}}", "component ids C1"),
    ("{name: pca, names: {C1: maths, C3: maths}}", "names gives C1 and C3 the same name 'maths'"),
    ("{name: pca, normalisation: log}", "'raw', 'relative', 'zscore' or 'ordinal'"),
    ("pca, pca", "listed twice; give one an `alias`"),
])
def test_decomposer_entries_are_checked(entry, message):
    found = problems(GOOD + f"decomposers: [{entry}]\n")
    assert found and found[0].path.startswith("decomposers") and message in " ".join(p.message for p in found)


def test_decomposer_entry_choices_parse():
    reg = parse_registry(GOOD + "decomposers: [{name: pca, n_components: parallel, normalisation: zscore}, "
                         "{name: pca, alias: pca_raw, n_components: 0.8, names: {C1: maths}}]\n")
    assert [(d.key, d.n_components, d.normalisation) for d in reg.decomposers] == [
        ("pca", "parallel", "zscore"), ("pca_raw", 0.8, "raw")]
    assert reg.decomposers[1].names == {"C1": "maths"}


def test_validate_command_exits_2_with_file_line_and_field(tmp_path, capsys):
    bad = tmp_path / "reg.yaml"
    bad.write_text(GOOD.replace("rank: 4", "rank: -2"))
    assert main(["validate", str(bad)]) == 2
    err = capsys.readouterr().err
    assert f"{bad}:11: lora.rank" in err
    good = tmp_path / "good.yaml"
    good.write_text(GOOD)
    assert main(["validate", str(good)]) == 0


def test_validate_missing_file_exits_2(tmp_path):
    out = subprocess.run([sys.executable, "-m", "harness.cli", "validate", str(tmp_path / "nope.yaml")],
                         capture_output=True, text=True)
    assert out.returncode == 2 and "cannot read" in out.stderr


def test_a_source_cannot_take_the_base_models_name():
    found = problems(GOOD.replace("  - task: arithmetic\n", "  - {task: arithmetic, alias: base}\n"))
    assert [p.path for p in found] == ["sources"]
    assert "cannot be called 'base'" in found[0].message and "alias" in found[0].message
