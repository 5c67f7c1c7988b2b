"""lora.seeds and lora.replicates: what they give, and the messages when they are wrong."""

from __future__ import annotations

import pytest

from harness.config.registry import MAX_SEED, parse_registry
from harness.errors import RegistryError

REGISTRY = """\
experiment: demo
base_model: {{path: /nonexistent}}
sources:
  - {{task: sentiment, n_train: 16}}
targets:
  - {{task: sentiment, limit: 10}}
lora: {{{lora}}}
"""


def lora(text: str):
    return parse_registry(REGISTRY.format(lora=text), "reg.yaml").lora


def problem(text: str):
    with pytest.raises(RegistryError) as exc:
        lora(text)
    (p,) = exc.value.problems
    return p


def test_seed_list_from_seeds_replicates_or_seed():
    assert lora("rank: 4").seed_list == [0]
    assert lora("seed: 7").seed_list == [7]
    assert lora("seeds: [3, 1, 2]").seed_list == [3, 1, 2]
    assert lora("replicates: 3, seed: 10").seed_list == [10, 11, 12]
    assert lora("replicates: 1").seed_list == [0]


def test_both_seeds_and_replicates_refused_with_the_fix():
    p = problem("seeds: [0, 1], replicates: 2")
    assert p.path == "lora" and "give seeds or replicates, not both" in p.message
    assert "keep `seeds: [0, 1]` or `replicates: 2`" in p.message


def test_seed_and_seeds_refused():
    assert "give seed or seeds, not both" in problem("seed: 4, seeds: [0, 1]").message


def test_duplicated_seeds_named():
    p = problem("seeds: [0, 1, 1, 2, 2]")
    assert "lists [1, 2] more than once" in p.message and "list each seed once" in p.message


@pytest.mark.parametrize("seeds", ["[-1, 2]", f"[0, {MAX_SEED + 1}]"])
def test_out_of_range_seeds_named(seeds):
    p = problem(f"seeds: {seeds}")
    assert "out of range" in p.message and f"0 to {MAX_SEED}" in p.message


def test_empty_seeds_and_bad_replicates():
    assert "lora.seeds is empty" in problem("seeds: []").message
    assert problem("replicates: 0").path == "lora.replicates"
    assert "runs past" in problem(f"replicates: 3, seed: {MAX_SEED - 1}").message


def test_for_seed_and_key_dump_leave_out_seeds_and_replicates():
    settings = lora("seeds: [5, 6], rank: 4")
    one = settings.for_seed(6)
    assert one.seed == 6 and one.seeds is None and one.seed_list == [6]
    dump = settings.key_dump(6)
    assert "seeds" not in dump and "replicates" not in dump and dump["seed"] == 6 and dump["rank"] == 4
