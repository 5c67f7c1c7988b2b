"""End to end on the tiny random Llama: brought adapters and a checkpoint beside a source trained
here, in one registry; content keys (a moved folder reuses every cell, a changed weight re-scores
only that model); every refusal, before any work, with exit 2; --adapter and --checkpoint."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

from harness.reporting.results_schema import validate_results
from helpers import save_adapter, save_checkpoint

REGISTRY = """\
experiment: brought
output_dir: out
cache_dir: cache
base_model: {{path: {model}}}
sources:
  - {{task: sentiment, n_train: 16}}
  - {{adapter: adapters/lora4, alias: lora4}}
  - {{adapter: adapters/lora16, task: nli, n_train: 16, alias: lora16}}
  - {{checkpoint: checkpoint, alias: tuned}}
  - {{adapter: adapters/ia3, alias: ia3}}
targets:
  - {{task: sentiment, limit: 6}}
  - {{task: arithmetic, limit: 3}}
lora: {{steps: 2, batch_size: 4, target_modules: [q_proj, v_proj]}}
evaluation: {{batch_size: 8}}
analysis: {{bootstrap: 0, permutations: 100}}
"""


def harness(*args, cwd):
    return subprocess.run([sys.executable, "-m", "harness.cli", *args], cwd=cwd, capture_output=True, text=True)


@pytest.fixture(scope="module")
def weights(tiny_model_dir, tmp_path_factory):
    from peft import IA3Config, LoraConfig

    root = tmp_path_factory.mktemp("weights")
    return {
        "lora4": save_adapter(tiny_model_dir, root / "lora4", LoraConfig(r=4, target_modules=["q_proj", "v_proj"])),
        "lora16": save_adapter(tiny_model_dir, root / "lora16", LoraConfig(
            r=16, lora_alpha=32, target_modules=["k_proj", "o_proj", "up_proj"]), seed=1),
        "ia3": save_adapter(tiny_model_dir, root / "ia3", IA3Config(target_modules=["k_proj", "down_proj"],
                                                                     feedforward_modules=["down_proj"])),
        "checkpoint": save_checkpoint(tiny_model_dir, root / "checkpoint", noise=0.1),
        "vocab": save_checkpoint(tiny_model_dir, root / "vocab", extra_tokens=["<made-up-token>"]),
    }


def _lay_out(root, weights, model):
    (root / "adapters").mkdir(parents=True, exist_ok=True)
    for name in ("lora4", "lora16", "ia3"):
        shutil.copytree(weights[name], root / "adapters" / name, dirs_exist_ok=True)
    shutil.copytree(weights["checkpoint"], root / "checkpoint", dirs_exist_ok=True)
    (root / "registry.yaml").write_text(REGISTRY.format(model=model))


def _results(root):
    return json.loads((root / "out" / "brought" / "results.json").read_text())


@pytest.fixture(scope="module")
def brought_run(tiny_model_dir, weights, tmp_path_factory):
    root = tmp_path_factory.mktemp("brought-run")
    _lay_out(root, weights, tiny_model_dir)
    dry = harness("run", "registry.yaml", "--dry-run", cwd=root)
    assert dry.returncode == 0, dry.stderr[-3000:]
    first = harness("run", "registry.yaml", "--json", cwd=root)
    assert first.returncode == 0, first.stderr[-3000:]
    return root, dry, json.loads(first.stdout)


def test_one_registry_scores_trained_brought_and_checkpoint_sources(brought_run):
    root, dry, summary = brought_run
    assert "bring" in dry.stdout and "a second model load" in dry.stdout and "1 of 1 adapters" in dry.stdout
    results = _results(root)
    validate_results(results)
    assert results["sources"] == ["sentiment", "lora4", "lora16", "tuned", "ia3"]
    kinds = results["source_weights"]
    assert kinds["sentiment"] == {"kind": "trained", "task": "sentiment"}
    assert kinds["lora4"] == {"kind": "adapter", "task": None, "path": str(root / "adapters" / "lora4")}
    assert kinds["lora16"]["task"] == "nli" and kinds["tuned"]["kind"] == "checkpoint"
    for s in results["sources"]:
        for t in results["targets"]:
            assert results["scores"][s][t] is not None, (s, t)
    assert summary["computed"] == {"adapters": 1, "cells": 12} and not summary["failures"]
    report = (root / "out" / "brought" / "report.md").read_text()
    assert "Brought in, not trained here: lora4 (adapter), lora16 (adapter), tuned (checkpoint), ia3 (adapter)." in report
    for s in results["sources"]:  # a row of the transfer table each, with a number in every cell
        transfer = report[report.index("## Transfer"):].splitlines()
        row = next(line for line in transfer if line.startswith(f"| {s} | "))
        assert "n/a" not in row, row
    assert "tuned (checkpoint)" in (root / "out" / "brought" / "report.html").read_text()

    def lls(model):
        rows = (root / "out" / "brought" / "samples" / model / "sentiment.jsonl").read_text().splitlines()
        return [json.loads(r)["loglikelihoods"] for r in rows]
    base = lls("base")  # every brought model computes something else than the base
    # (an IA3 adapter after LoRA ones: one peft model holds one type, so the host swaps the kind too)
    assert all(lls(m) != base for m in ("lora4", "lora16", "tuned", "ia3")) and lls("lora4") != lls("lora16")


def test_cache_prune_keeps_what_brought_sources_use(brought_run):
    root, _, _ = brought_run
    out = harness("cache", "prune", "--keep", "registry.yaml", "--dry-run", "--json", cwd=root)
    assert out.returncode == 0, out.stderr[-2000:]
    result = json.loads(out.stdout)
    assert result["selected"] == [] and result["protected"] >= 12  # every cell, the trained adapter, the traits


def test_source_traits_are_na_without_task_and_say_why(brought_run):
    root, _, _ = brought_run
    results = _results(root)
    traits = results["traits"]
    assert traits["lora16"].get("class_entropy") is not None  # it names its data: source traits apply
    assert "class_entropy" not in traits["lora4"] and "class_entropy" not in traits["tuned"]
    assert any(k.startswith("behaviour") for k in traits["lora4"])  # behaviour traits still work
    skipped = {(i["analysis"], i.get("plugin")) for i in results["skipped"]}
    assert {("source_traits", "lora4"), ("source_traits", "tuned")} <= skipped
    assert "lora16" not in {p for _, p in skipped}
    for pair in results["pair_traits"].values():
        assert "lora4" not in pair and "lora16" in pair
    report = (root / "out" / "brought" / "report.md").read_text()
    assert "source lora4 brings weights (adapter) without a task: source and pair traits n/a" in report


def test_moving_a_folder_reuses_every_cell_and_a_changed_weight_rescores_only_that_model(brought_run, tiny_model_dir,
                                                                                          weights, tmp_path):
    root, _, _ = brought_run
    moved = tmp_path / "moved"
    shutil.copytree(root / "adapters", moved / "elsewhere")
    shutil.copytree(root / "checkpoint", moved / "tuned-copy")
    text = (root / "registry.yaml").read_text().replace("adapters/", "elsewhere/").replace(
        "checkpoint: checkpoint", "checkpoint: tuned-copy").replace("cache_dir: cache", f"cache_dir: {root / 'cache'}")
    (moved / "registry.yaml").write_text(text)
    again = harness("run", "registry.yaml", "--json", cwd=moved)
    assert again.returncode == 0, again.stderr[-3000:]
    summary = json.loads(again.stdout)
    assert summary["computed"] == {"adapters": 0, "cells": 0} and summary["reused"] == {"adapters": 1, "cells": 12}
    # One bit of one weight of lora16: only its 2 cells are scored again.
    file = moved / "elsewhere" / "lora16" / "adapter_model.safetensors"
    data = bytearray(file.read_bytes())
    data[-1] ^= 1
    file.write_bytes(bytes(data))
    changed = harness("run", "registry.yaml", "--json", cwd=moved)
    assert changed.returncode == 0, changed.stderr[-3000:]
    summary = json.loads(changed.stdout)
    assert summary["computed"] == {"adapters": 0, "cells": 2} and summary["reused"]["cells"] == 10
    before, after = _results(root), json.loads((moved / "out" / "brought" / "results.json").read_text())
    keys = lambda r: r["provenance"]["config_hashes"]["cells"]  # noqa: E731
    assert {k for k in keys(after) if keys(after)[k] != keys(before)[k]} == {"lora16/sentiment", "lora16/arithmetic"}


def test_command_line_sources_join_the_registry(brought_run, weights, tmp_path):
    root, _, _ = brought_run
    out = harness("run", "registry.yaml", "--json", "--out", "extra", "--adapter", f"again={weights['lora4']}",
                  "--checkpoint", f"tuned2={weights['checkpoint']}", cwd=root)
    assert out.returncode == 0, out.stderr[-3000:]
    summary = json.loads(out.stdout)
    assert summary["computed"]["cells"] == 0  # the same weights as lora4 and tuned: their cells, by content
    results = json.loads((root / "extra" / "brought" / "results.json").read_text())
    assert results["sources"][-2:] == ["again", "tuned2"]
    assert results["scores"]["again"] == results["scores"]["lora4"]
    # A new checkpoint: only its cells to score, on it alone; the base model is not even loaded.
    fresh = save_checkpoint(weights["checkpoint"], tmp_path / "fresh", noise=0.1, seed=3)
    out = harness("run", "registry.yaml", "--json", "--out", "fresh", "--checkpoint", f"fresh={fresh}", cwd=root)
    assert out.returncode == 0, out.stderr[-3000:]
    assert json.loads(out.stdout)["computed"] == {"adapters": 0, "cells": 2}
    assert "Loading checkpoint fresh" in out.stderr and "Loading base model" not in out.stderr
    clash = harness("run", "registry.yaml", "--adapter", f"lora4={weights['lora4']}", cwd=root)
    assert clash.returncode == 2 and "--adapter lora4: the name 'lora4' is already taken by sources[1]" in clash.stderr
    bad = harness("run", "registry.yaml", "--checkpoint", "nothing", cwd=root)
    assert bad.returncode == 2 and "give NAME=PATH" in bad.stderr


REFUSALS = {
    # what the registry's third source is, what the message must say
    "missing": ("{adapter: adapters/none-such/x, alias: gone}", "sources[2].adapter: no folder"),
    "other_base": ("{adapter: for-other, alias: other}", "made for another base model"),
    "vocabulary": ("{checkpoint: vocab, alias: vocab}", "vocabulary differs"),
    "not_an_adapter": ("{adapter: vocab, alias: notadapter}", "not a peft adapter folder"),
    "vllm_rank": ("{adapter: big, alias: big}", "rank is 1024, above the largest vLLM serves"),
}


@pytest.mark.parametrize("case", sorted(REFUSALS))
def test_refusals_exit_2_before_any_work(case, tiny_model_dir, weights, tmp_path):
    from peft import LoraConfig
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    entry, message = REFUSALS[case]
    shutil.copytree(weights["vocab"], tmp_path / "vocab")
    if case == "other_base":
        other = tmp_path / "other-base"
        LlamaForCausalLM(LlamaConfig(vocab_size=len(AutoTokenizer.from_pretrained(tiny_model_dir)), hidden_size=48,
                                     intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                                     num_key_value_heads=2)).save_pretrained(other)
        save_adapter(other, tmp_path / "for-other", LoraConfig(r=4, target_modules=["q_proj"]))
    if case == "vllm_rank":
        save_adapter(tiny_model_dir, tmp_path / "big", LoraConfig(r=1024, target_modules=["q_proj"]))
    backend = ", backend: vllm" if case == "vllm_rank" else ""
    (tmp_path / "registry.yaml").write_text(
        f"experiment: refused\ncache_dir: cache\nbase_model: {{path: {tiny_model_dir}}}\n"
        f"sources:\n  - {{task: sentiment, n_train: 8}}\n  - {{task: nli, n_train: 8}}\n  - {entry}\n"
        f"targets:\n  - {{task: sentiment, limit: 2}}\nevaluation: {{batch_size: 8{backend}}}\n")
    for command in (("run", "registry.yaml"), ("validate", "registry.yaml")):
        out = harness(*command, cwd=tmp_path)
        assert out.returncode == 2, out.stderr[-2000:]
        assert message in out.stderr and "registry.yaml:7: sources[2]" in out.stderr, out.stderr[-2000:]
        assert "Traceback" not in out.stderr
    assert not (tmp_path / "cache" / "adapters").exists() and not (tmp_path / "cache" / "cells").exists()


COLOURS_YAML = """\
task: colour_mc
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}
test_split: test
output_type: multiple_choice
doc_to_text: "Is {{{{thing}}}} warm or cold?\\nAnswer:"
doc_to_choice: ["cold", "warm"]
doc_to_target: label
metric_list:
  - metric: acc
"""

ALL_KINDS = """\
experiment: all_kinds
output_dir: out
cache_dir: cache
base_model: {{path: {model}}}
sources:
  - {{adapter: {lora4}, alias: lora4}}
  - {{adapter: {lora16}, task: nli, n_train: 16, alias: lora16}}
  - {{task: sentiment, n_train: 16}}
  - {{checkpoint: {checkpoint}, alias: tuned}}
targets:
  - {{task: sentiment, limit: 5}}
  - {{lm_eval: {colours}, limit: 6}}
  - lm_eval: arc_easy
    alias: arc
    limit: 4
    overrides:
      dataset_path: json
      dataset_name: null
      dataset_kwargs: {{data_files: {{train: {arc}/train.jsonl, test: {arc}/test.jsonl}}}}
      validation_split: null
      doc_to_text: "Question: {{{{question.stem}}}}\\nAnswer:"
      doc_to_choice: "{{{{question.choices | map(attribute='text') | list}}}}"
      doc_to_target: "{{{{(question.choices | map(attribute='label') | list).index(answerKey)}}}}"
lora: {{steps: 2, batch_size: 4, target_modules: [q_proj, v_proj]}}
evaluation: {{batch_size: 8}}
analysis: {{bootstrap: 0, permutations: 100}}
"""


def test_brought_and_trained_sources_on_builtin_yaml_and_bundled_lm_eval_targets(tiny_model_dir, weights, tmp_path):
    """The issue's registry: 2 brought adapters, 1 source trained here and 1 checkpoint, scored on a
    built-in task, an lm-eval YAML file and lm-eval's bundled arc_easy over local rows."""
    from helpers import SHARED_DATA

    arc = SHARED_DATA / "arc_easy"
    if not (arc / "test.jsonl").is_file():
        pytest.skip(f"no ARC-Easy rows at {arc}")
    things = [("fire", 1), ("ice", 0), ("the sun", 1), ("snow", 0), ("soup", 1), ("a glacier", 0)]
    (tmp_path / "colours.jsonl").write_text("".join(json.dumps({"thing": t, "label": y}) + "\n" for t, y in things))
    (tmp_path / "colour_mc.yaml").write_text(COLOURS_YAML.format(data=tmp_path / "colours.jsonl"))
    (tmp_path / "registry.yaml").write_text(ALL_KINDS.format(
        model=tiny_model_dir, lora4=weights["lora4"], lora16=weights["lora16"], checkpoint=weights["checkpoint"],
        colours=tmp_path / "colour_mc.yaml", arc=arc))
    out = harness("run", "registry.yaml", "--json", cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    assert json.loads(out.stdout)["computed"] == {"adapters": 1, "cells": 15}
    run_dir = tmp_path / "out" / "all_kinds"
    results = json.loads((run_dir / "results.json").read_text())
    validate_results(results)
    assert results["targets"] == ["sentiment", "colour_mc", "arc"]
    assert [results["source_weights"][s]["kind"] for s in results["sources"]] == [
        "adapter", "adapter", "trained", "checkpoint"]
    for t in results["targets"]:
        assert results["base"][t] is not None
        for s in results["sources"]:
            assert results["scores"][s][t] is not None and results["transfer"][s][t] is not None, (s, t)
            assert (run_dir / "samples" / s / f"{t}.jsonl").is_file()
    report = (run_dir / "report.md").read_text()
    for s in results["sources"]:
        row = next(line for line in report[report.index("## Transfer"):].splitlines() if line.startswith(f"| {s} | "))
        assert row.count("|") == 5 and "n/a" not in row, row
    assert "colour_mc" in (run_dir / "report.html").read_text()
