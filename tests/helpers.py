"""What several test modules share: the repository's paths, synthetic runs and results, file-task
fixture rows, an HTML structure checker and a private pip install. Fixtures are in conftest.py.

Test modules import from here (``from helpers import ...``; pyproject's ``pythonpath`` puts tests/
on sys.path), never from each other.
"""

from __future__ import annotations

import csv
import importlib.util
import itertools
import json
import os
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import numpy as np

from harness.analysis.outcomes import collect
from harness.api.plugins import catalog
from harness.config.registry import AnalysisSettings, DecomposerUse
from harness.reporting.results_schema import validate_results
from harness.stages.analyse import TransferData, analyse
from harness_plugins.tasks.ag_news import AGNews
from harness_plugins.tasks.amazon_polarity import AmazonPolarity
from harness_plugins.tasks.arc_easy import ARCEasy
from harness_plugins.tasks.boolq import BoolQ
from harness_plugins.tasks.code import Code
from harness_plugins.tasks.goat import Goat
from harness_plugins.tasks.gsm8k import GSM8K
from harness_plugins.tasks.imdb import IMDB
from harness_plugins.tasks.mnli import MNLI
from harness_plugins.tasks.paws import PAWS
from harness_plugins.tasks.sst2 import SST2
from harness_plugins.tasks.toxicity import Toxicity


def _repository_root() -> Path:
    """The folder holding pyproject.toml above this file: the same whatever folder a test sits in."""
    here = Path(__file__).resolve()
    for folder in here.parents:
        if (folder / "pyproject.toml").is_file():
            return folder
    raise RuntimeError(f"no pyproject.toml above {here}: tests/helpers.py must stay inside the transfer-harness checkout")


ROOT = _repository_root()
# Real data copies (SST-2, AG News, GSM8K, ...) live in shared/data beside the checkout, not in it;
# tests that read them skip where the folder is absent.
# HARNESS_SHARED_DATA points elsewhere (a git worktree is not beside the folder).
SHARED_DATA = Path(os.environ.get("HARNESS_SHARED_DATA") or ROOT.parent / "shared" / "data")


# --- file tasks: fixture rows, written as any file type ------------------------------------------

def write(path: Path, rows: list[dict]) -> Path:
    """Rows as a CSV, TSV, JSONL or Parquet file, by suffix (None in a row: the key is left out)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    kind = path.suffix.lstrip(".")
    if kind == "jsonl":
        path.write_text("".join(json.dumps({k: v for k, v in r.items() if v is not None}) + "\n" for r in rows))
    elif kind == "parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.Table.from_pylist(rows), path)
    else:
        columns = list(dict.fromkeys(k for r in rows for k in r))
        with open(path, "w", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, columns, delimiter="\t" if kind == "tsv" else ",")
            writer.writeheader()
            writer.writerows(rows)
    return path


# --- fixtures for every file task: its class, the file type the rows are written as, the rows
CASES = {
    "sst2": (SST2, "tsv", [
        {"sentence": "a gripping , beautifully acted film", "label": 1},
        {"sentence": "tedious , shapeless and far too long", "label": 0},
    ]),
    "gsm8k": (GSM8K, "jsonl", [
        {"question": "Tom has 3 apples and buys 4 more. How many apples does he have?",
         "answer": "Tom has 3 + 4 = <<3+4=7>>7 apples.\n#### 7"},
        {"question": "A shop sells 250 pens a day. How many in 4 days?",
         "answer": "It sells 250 * 4 = <<250*4=1000>>1000 pens.\n#### 1,000"},
        {"question": "It is 5 degrees and falls by 8. What is the temperature?",
         "answer": "5 - 8 = <<5-8=-3>>-3\n#### -3"},
    ]),
    "imdb": (IMDB, "csv", [
        {"text": "A wonderful, moving film with a superb cast.", "label": 1},
        {"text": "Dull, predictable and far too long.", "label": 0},
        {"text": "I loved every minute of it.", "label": "pos"},
    ]),
    "amazon_polarity": (AmazonPolarity, "parquet", [
        {"title": "Broke in a week", "content": "The handle snapped after two uses.", "label": 0},
        {"title": "", "content": "Works exactly as described, great value.", "label": 1},
        {"title": "Great", "content": "My kids love it.", "label": 1},
    ]),
    "ag_news": (AGNews, "tsv", [
        {"text": "Stocks rallied on Wall Street as oil prices fell.", "label": "Business"},
        {"text": "The home side won the final 3-1 after extra time.", "label": "Sports"},
        {"text": "NASA probe sends first images from Saturn's moon.", "label": "Sci/Tech"},
        {"text": "Leaders meet in Geneva for talks on the ceasefire.", "label": "0"},
    ]),
    "mnli": (MNLI, "jsonl", [
        {"premise": "A man is playing a guitar on stage.", "hypothesis": "A man is performing music", "label": 0},
        {"premise": "Two dogs run across a field.", "hypothesis": "The dogs are asleep.", "label": 2},
        {"premise": "A woman reads a book.", "hypothesis": "The book is a novel.", "label": "neutral"},
    ]),
    "paws": (PAWS, "parquet", [
        {"sentence1": "The cat sat on the mat.", "sentence2": "On the mat sat the cat.", "label": 1},
        {"sentence1": "Flights from New York to Florida.", "sentence2": "Flights from Florida to New York.", "label": 0},
    ]),
    "boolq": (BoolQ, "csv", [
        {"passage": "Water boils at 100 degrees Celsius at sea level.", "question": "does water boil at 100 degrees",
         "label": 1},
        {"passage": "Penguins are flightless birds of the southern hemisphere.", "question": "can penguins fly",
         "label": 0},
    ]),
    "goat": (Goat, "tsv", [
        {"instruction": "What is 94140209+73?", "input": "94140209 + 73", "output": "94140209 + 73 = 94140282",
         "answer": "94140282"},
        {"instruction": "Compute 8914 divided by 386.", "input": "8914 / 386",
         "output": "8914 - 386 * 20 = 1194\n1194 - 386 * 3 = 36\nTherefore, 8914 / 386 = 23 R 36", "answer": "23 R 36"},
        {"instruction": "Subtract 900 from 12.", "input": "12 - 900", "output": "12 - 900 = -888", "answer": "-888"},
    ]),
    # A 0/1 `label`, or none and the hub's scores (hateful when toxicity_ai + toxicity_human > 5.5).
    "toxicity": (Toxicity, "csv", [
        {"text": "Everyone deserves to be treated with respect.", "label": 0},
        {"text": "People like them should not be allowed in our town.", "label": 1},
        {"text": "Immigrants enrich the culture of a country.", "toxicity_ai": 1.2, "toxicity_human": 1.0},
        {"text": "Those people are all criminals.", "toxicity_ai": 4.1, "toxicity_human": 4.3},
        {"text": "Some of them live next door.", "toxicity_ai": 2.75, "toxicity_human": 2.75},  # 5.5: not hateful
    ]),
    "code": (Code, "jsonl", [
        {"instruction": "Write a function that returns the square of a number.", "input": "",
         "output": "def square(x):\n    return x * x"},
        {"instruction": "Reverse the given list in place.", "input": "nums = [1, 2, 3]", "output": "nums.reverse()"},
        {"instruction": "Print a greeting.", "input": "", "output": "\n  print('Hello, world!')\n"},
    ]),
    # ARC in the hub schema (question text, choices {text, label}, answerKey), choices varying per row.
    "arc_easy": (ARCEasy, "jsonl", [
        {"id": "a1", "question": "Which gas do plants take in for photosynthesis?", "answerKey": "B",
         "choices": {"text": ["oxygen", "carbon dioxide", "helium", "neon"], "label": ["A", "B", "C", "D"]}},
        {"id": "a2", "question": "What melts ice fastest?", "answerKey": "A",
         "choices": {"text": ["salt", "sand", "sawdust"], "label": ["A", "B", "C"]}},
        {"id": "a3", "question": "Which is a mammal?", "answerKey": "4",
         "choices": {"text": ["shark", "trout", "frog", "whale"], "label": ["1", "2", "3", "4"]}},
    ]),
}


def write_splits(name: str, folder: Path, n_train: int, n_test: int) -> dict[str, str]:
    """``data_files`` for task ``name`` with ``n_train`` and ``n_test`` rows: its CASES rows in turn,
    the first text column numbered so that every prompt differs (train and test are disjoint)."""
    cls, fmt, rows = CASES[name]
    column = cls.text_columns[0]
    numbered = [{**row, column: f"{row[column]} ({i})"}
                for i, row in zip(range(n_train + n_test), itertools.cycle(rows))]
    return {split: str(write(folder / f"{split}.{fmt}", part))
            for split, part in (("train", numbered[:n_train]), ("test", numbered[n_train:]))}


# --- synthetic runs: planted transfer, per-sample outcomes, traits ---------------------------

TARGETS = ["add", "words", "pos", "nli", "order"]
ABILITIES = {"add": ("arithmetic",), "words": ("arithmetic", "reasoning"), "pos": ("sentiment",),
             "nli": ("nlu",), "order": ("reasoning",)}


def synthetic_run(n_sources=6, n_docs=120, seed=0):
    """Binary per-sample outcomes: the base at fixed accuracies; each source gains on the targets of
    its own ability, so the transfer matrix has two planted components (maths, language)."""
    rng = np.random.default_rng(seed)
    sources = [f"src{i}" for i in range(n_sources)]
    base_acc = {"add": 0.3, "words": 0.2, "pos": 0.6, "nli": 0.4, "order": 0.4}
    maths = np.linspace(0.0, 0.4, n_sources)
    language = rng.permutation(np.linspace(0.0, 0.2, n_sources))
    effect = {"add": maths, "words": 0.8 * maths, "pos": language, "nli": 0.9 * language, "order": 0.5 * maths}
    samples = {"base": {}}
    base_draws = {}
    for t in TARGETS:
        u = rng.random(n_docs)  # one uniform per document, shared: models agree where they can
        base_draws[t] = u
        samples["base"][t] = [{"doc_id": d, "correct": float(u[d] < base_acc[t])} for d in range(n_docs)]
    for i, s in enumerate(sources):
        samples[s] = {t: [{"doc_id": d, "correct": float(base_draws[t][d] < base_acc[t] + effect[t][i])}
                          for d in range(n_docs)] for t in TARGETS}
    mean = {m: {t: float(np.mean([r["correct"] for r in samples[m][t]])) for t in TARGETS} for m in samples}
    transfer = {s: {t: mean[s][t] - mean["base"][t] for t in TARGETS} for s in sources}
    traits = {s: {"maths_share": float(maths[i] + 0.02 * rng.normal()), "noise_a": float(rng.normal()),
                  "noise_b": float(rng.normal())} for i, s in enumerate(sources)}
    pairs = {"similarity": {s: {t: float(rng.random()) for t in TARGETS} for s in sources}}
    cells = {m: {t: {"value": mean[m][t]} for t in TARGETS} for m in samples}
    data = TransferData(sources=sources, targets=TARGETS, transfer=transfer, base=mean["base"],
                        abilities=ABILITIES, traits=traits, source_trait_names=["maths_share", "noise_a", "noise_b"],
                        pair_traits=pairs, outcomes=collect(samples, sources, TARGETS, cells))
    return data, samples, mean, effect


USES = [DecomposerUse(name="pca", n_components=2),
        DecomposerUse(name="pca", alias="pca_ordinal", normalisation="ordinal", n_components=2),
        DecomposerUse(name="factor_analysis", params={"rotation": "varimax"}, normalisation="zscore", n_components=2),
        DecomposerUse(name="nmf", n_components=2, names={"C1": "maths"}),
        DecomposerUse(name="ica", n_components="parallel", normalisation="relative")]


# --- reports ------------------------------------------------------------------------------------

HOSTILE = "<script>alert(1)</script>"
VOID = {"meta", "img", "br", "hr", "input", "link"}


def make_results(rename: dict[str, str] | None = None) -> dict:
    """A schema-valid results.json of a synthetic run (6 sources, 5 targets, per-sample outcomes),
    with sources optionally renamed."""
    data, samples, mean, _ = synthetic_run()
    analysed, failures = analyse(data, USES[:3], catalog(), AnalysisSettings(bootstrap=20, permutations=720))
    assert not failures
    results = {
        "experiment": "synthetic", "base_model": {"name": "tiny", "resolved_from": "test"},
        "sources": data.sources, "targets": TARGETS, "metrics": {t: "acc,none" for t in TARGETS},
        "abilities": {t: list(v) for t, v in ABILITIES.items()},
        "base": {t: {"value": mean["base"][t], "stderr": 0.04} for t in TARGETS},
        "scores": {s: {t: {"value": mean[s][t], "stderr": 0.04} for t in TARGETS} for s in data.sources},
        "transfer": data.transfer, "traits": data.traits, "pair_traits": data.pair_traits,
        "trait_scopes": {k: "source" for k in ("maths_share", "noise_a", "noise_b")},
        "behaviour": {"behaviour": {"targets": {
            "pos": {"kind": "multiple_choice", "labels": ["negative", HOSTILE], "missing": [],
                    "models": {m: {"confusion": [[40, 20], [10, 50]], "n": 120} for m in ["base", *data.sources]}},
            "words": {"kind": "generation", "length_bin_edges": [0, 2, 4, 6], "missing": [],
                      "models": {m: {"output_length_histogram": [50, 60, 10], "n": 120} for m in ["base", *data.sources]}}}}},
        **analysed, "failures": [],
        "provenance": {"versions": {k: "0" for k in ("harness", "lm_eval", "transformers", "peft", "torch")},
                       "seeds": {}, "config_hashes": {"registry": "abc"}, "seconds": {"plan": 0.1}},
    }
    validate_results(results)
    if rename:  # rename sources everywhere by a JSON round trip of the names
        text = json.dumps(results)
        for old, new in rename.items():
            text = text.replace(json.dumps(old), json.dumps(new))
        results = json.loads(text)
    return results


class Structure(HTMLParser):
    """Checks that tags nest properly, and collects section ids, image sources and any URL."""

    def __init__(self):
        super().__init__()
        self.stack, self.sections, self.images, self.errors = [], [], [], []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "section":
            self.sections.append(attrs.get("id"))
        if tag == "img":
            self.images.append(attrs.get("src", ""))
        if tag not in VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag):
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes {self.stack[-1:]}")
        else:
            self.stack.pop()


# --- authoring --------------------------------------------------------------------------------

def pip_install(pkg: Path, site: Path) -> None:
    """pip-install a scaffolded package (no deps) into a private target folder."""
    cmd = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--disable-pip-version-check",
           "--target", str(site), str(pkg)]
    if importlib.util.find_spec("setuptools") is not None:
        cmd.insert(4, "--no-build-isolation")  # build with the installed setuptools: no index needed
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr



# --- brought weights: peft adapters and checkpoints made in the test ------------------------------

def save_adapter(base_dir: Path, out: Path, peft_config, seed: int = 0, scale: float = 0.5) -> Path:
    """A peft adapter of ``peft_config`` on the model in ``base_dir``, with random (non-zero)
    weights of standard deviation ``scale`` so that it changes what the model computes, saved as
    peft's save_pretrained does."""
    import torch
    from peft import get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(base_dir), peft_config)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if param.requires_grad:  # the adapter's own tensors
                param.copy_(torch.randn_like(param) * scale + (1.0 if "ia3" in name else 0.0))
    model.save_pretrained(out)
    return out


def save_checkpoint(base_dir: Path, out: Path, noise: float = 0.05, extra_tokens: list[str] = (), seed: int = 0) -> Path:
    """The model in ``base_dir`` with its weights perturbed, saved with its tokenizer (to which
    ``extra_tokens`` are added: a checkpoint whose vocabulary differs from the base's)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_pretrained(base_dir)
    tokenizer = AutoTokenizer.from_pretrained(base_dir)
    with torch.no_grad():
        for param in model.parameters():
            param.add_(torch.randn_like(param) * noise)
    if extra_tokens:
        tokenizer.add_tokens(list(extra_tokens))
        model.resize_token_embeddings(len(tokenizer))
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out
