"""`twin_of`: each refusal names the field, its line and the fix; valid pairs give their statistic;
the twin options keep default fingerprints and change the statistic they claim."""

from __future__ import annotations

import statistics

import pytest

from harness.api.plugins import catalog
from harness.config.registry import parse_registry, twin_pairs
from harness.errors import RegistryError

HEAD = """\
experiment: demo
base_model:
  path: /nonexistent/but/fine/for/validation
targets:
  - {task: sentiment, limit: 10}
sources:
"""


def problems(sources: str) -> list:
    with pytest.raises(RegistryError) as exc:
        parse_registry(HEAD + sources, "reg.yaml")
    return exc.value.problems


def test_valid_twins_give_the_statistic_of_the_option_that_differs():
    registry = parse_registry(HEAD + """\
  - {task: sentiment}
  - {task: sentiment, alias: skewed, options: {class_balance: 0.9}, twin_of: sentiment}
  - {task: nli}
  - {task: nli, alias: nli_digits, options: {label_form: numbers}, twin_of: nli}
  - {task: nli, alias: nli_skewed, options: {label_shares: [0.8, 0.1, 0.1]}, twin_of: nli}
  - {task: word_problems}
  - {task: word_problems, alias: wp_long, options: {rationale: true}, twin_of: word_problems}
  - {task: word_problems, alias: wp_mixed, options: {rationale: true, steps: 3}, n_train: 50, twin_of: word_problems}
""")
    pairs = {p["source"]: p for p in twin_pairs(registry)}
    assert pairs["skewed"] == {"source": "skewed", "twin_of": "sentiment", "statistic": "class_balance",
                               "differs": {"class_balance": [0.9, 0.5]}, "note": None}
    assert pairs["nli_digits"]["statistic"] == "label_form"
    assert pairs["nli_skewed"]["statistic"] == "class_balance"
    assert pairs["nli_skewed"]["differs"] == {"label_shares": [[0.8, 0.1, 0.1], None]}
    assert pairs["wp_long"]["statistic"] == "completion_length"
    # Several statistics at once: allowed, flagged, each named (steps falls back to its own name).
    mixed = pairs["wp_mixed"]
    assert mixed["statistic"] == "completion_length+n_train+steps"
    assert set(mixed["differs"]) == {"rationale", "steps", "n_train"} and "3 statistics" in mixed["note"]


@pytest.mark.parametrize(("entry", "words"), [
    ("{task: sentiment, alias: b, twin_of: nope}", "twin_of 'nope' names no source"),
    ("{task: sentiment, alias: b, options: {class_balance: 0.9}, twin_of: b}", "cannot be its own twin"),
    ("{task: nli, alias: b, twin_of: a}", "is a source of task 'sentiment', not 'nli'"),
    ("{task: sentiment, alias: b, options: {class_balance: 0.5}, twin_of: a}", "identical options, so they are not twins"),
    ("{alias: b, adapter: /tmp, twin_of: a}", "has brought weights and no `task`"),
])
def test_each_refusal_names_field_line_and_fix(entry, words):
    (p,) = problems(f"  - {{task: sentiment, alias: a}}\n  - {entry}\n")
    assert p.path == "sources[1].twin_of" and p.line == 8 and words in p.message


def test_new_options_keep_default_fingerprints_and_data():
    cat = catalog()
    nli, wp = cat.get("task", "nli").obj, cat.get("task", "word_problems").obj
    # The fingerprints from before the options existed (they key every cached adapter and cell).
    assert nli().fingerprint() == nli(label_shares=None).fingerprint() == "2d2cfd3d6e903b47"
    assert wp().fingerprint() == wp(rationale=False).fingerprint() == "4c662eaecde027bf"
    assert nli(label_shares=[0.8, 0.1, 0.1]).fingerprint() != nli().fingerprint()
    assert wp(rationale=True).fingerprint() != wp().fingerprint()
    assert wp().max_gen_toks == 8 and wp().answer_regex == r"(-?\d+)"


def test_label_shares_set_the_class_shares_of_generated_rows():
    nli = catalog().get("task", "nli").obj
    rows = nli(label_shares=[0.8, 0.1, 0.1]).examples("train", 100)
    assert [sum(ex.label == i for ex in rows) for i in range(3)] == [80, 10, 10]
    balanced = nli().examples("train", 300)
    assert all(70 <= sum(ex.label == i for ex in balanced) <= 130 for i in range(3))
    with pytest.raises(ValueError, match="summing to 1"):
        nli(label_shares=[0.5, 0.1, 0.1])


def test_rationale_lengthens_completions_and_scores_under_its_own_regex(real_tokenizer_dir):
    from transformers import AutoTokenizer

    from harness.api.tasks import first_match

    wp = catalog().get("task", "word_problems").obj
    short, long = wp().examples("train", 50), wp(rationale=True).examples("train", 50)
    assert [ex.prompt for ex in short] == [ex.prompt for ex in long]  # same problems, same split
    assert [ex.answer for ex in short] == [ex.answer for ex in long]
    tok = AutoTokenizer.from_pretrained(real_tokenizer_dir)
    n = lambda exs: statistics.fmean(len(tok(e.completion, add_special_tokens=False)["input_ids"]) for e in exs)  # noqa: E731
    assert n(long) > 4 * n(short)
    task = wp(rationale=True)
    assert task.max_gen_toks == 64
    # Its own gold completion, as lm-eval's regex filter reads it, is the answer.
    assert all(first_match(task.answer_regex, ex.completion) == ex.answer for ex in long)
