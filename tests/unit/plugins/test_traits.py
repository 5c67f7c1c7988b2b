"""Trait extractors on hand-computable fixtures."""

from __future__ import annotations

import math

import pytest

from harness.api.tasks import Example, GeneratedTask, classification_example
from harness.api.traits import SourceData
from harness.stages.traits import compute_all
from harness_plugins.traits.class_distribution import ClassDistribution
from harness_plugins.traits.completion_length import CompletionLength


class ThreeWay(GeneratedTask):
    name = "three_way"
    kind = "multiple_choice"
    labels = ("a", "b", "c")


def source(labels: list[int]) -> SourceData:
    examples = [classification_example("p", ThreeWay.labels, y) for y in labels]
    return SourceData("s", ThreeWay(), examples)


def test_class_entropy_of_a_known_distribution():
    out = ClassDistribution().compute(source([0, 0, 1, 2]))  # shares 1/2, 1/4, 1/4
    assert out["class_entropy"] == pytest.approx(1.5)
    assert out["class_entropy_normalised"] == pytest.approx(1.5 / math.log2(3))
    assert out["majority_share"] == pytest.approx(0.5)
    assert out["class_count"] == 2 + 1


def test_single_class_has_zero_entropy_and_generation_has_none():
    out = ClassDistribution().compute(source([1, 1, 1]))
    assert out["class_entropy"] == 0 and out["majority_share"] == 1
    gen = SourceData("g", ThreeWay(), [Example("p", " 4\n", answer="4")])
    gen.task.labels = ()
    assert set(ClassDistribution().compute(gen).values()) == {None}


def test_completion_length_counts_base_model_tokens(real_tokenizer_dir):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(real_tokenizer_dir)
    examples = [Example("Review: fine\nSentiment:", " positive"), Example("x", " negative and more words")]
    lengths = [len(tok(e.completion, add_special_tokens=False)["input_ids"]) for e in examples]
    out = CompletionLength().compute(SourceData("s", ThreeWay(), examples, tok))
    assert out["completion_tokens_mean"] == pytest.approx(sum(lengths) / 2)
    assert lengths[1] > lengths[0]


def test_failing_trait_is_recorded_and_others_go_on():
    class Broken(ClassDistribution):
        name = "broken"

        def compute(self, source):
            return {"oops": float("nan")}

    class Raising(ClassDistribution):
        name = "raising"

        def compute(self, source):
            raise RuntimeError("no luck")

    classes = {"broken": Broken, "raising": Raising, "class_distribution": ClassDistribution}

    class FakeCatalog:
        def get(self, kind, name):
            return type("E", (), {"obj": classes[name]})

    class Use:
        def __init__(self, name):
            self.name, self.params = name, {}

    from harness.stages.plan import AdapterJob
    from harness_plugins.tasks.sentiment import Sentiment

    registry = type("R", (), {"traits": [Use("broken"), Use("raising"), Use("class_distribution")]})
    plan = type("P", (), {"adapters": [AdapterJob("s1", Sentiment(), 20, "k", True)], "tasks": {},
                          "target_configs": {}, "model": None})
    out = compute_all(registry, plan, FakeCatalog(), None)
    assert out.values["s1"]["class_count"] == 2  # the good trait still ran
    assert "oops" not in out.values["s1"]  # NaN never enters the values
    broken, raising = out.failures
    assert broken["plugin"] == "broken" and broken["source"] == "s1" and "nan" in broken["error"]
    assert raising["plugin"] == "raising" and "no luck" in raising["error"]
