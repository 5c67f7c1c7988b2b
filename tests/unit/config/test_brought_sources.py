"""Registry fields of sources that bring their own weights: adapter, checkpoint, revision, task
optional; what is refused at parse time (with field path and line), and command-line sources."""

from __future__ import annotations

import pytest

from harness.config.registry import SourceConfig, parse_registry
from harness.errors import RegistryError

HEAD = "experiment: x\nbase_model: {path: /models/base}\ntargets:\n  - {task: sentiment}\nsources:\n"


def problems(sources: str, extra=(), base_dir=None) -> list[str]:
    with pytest.raises(RegistryError) as info:
        parse_registry(HEAD + sources, "reg.yaml", base_dir=base_dir, extra_sources=extra)
    return [p.format("reg.yaml") for p in info.value.problems]


@pytest.fixture
def folders(tmp_path):
    for name in ("adapter", "model"):
        (tmp_path / name).mkdir()
    (tmp_path / "a-file").write_text("x")
    return tmp_path


def test_brought_sources_parse_with_relative_folders_made_absolute(folders):
    reg = parse_registry(HEAD + "  - {task: nli}\n  - {adapter: adapter, alias: mine}\n"
                         "  - {checkpoint: ./model, task: sentiment, n_train: 50, alias: tuned}\n"
                         "  - {adapter: someone/their-adapter, revision: v1, alias: hub}\n", "reg.yaml", base_dir=folders)
    trained, adapter, checkpoint, hub = reg.sources
    assert [s.kind for s in reg.sources] == ["trained", "adapter", "checkpoint", "adapter"]
    assert adapter.adapter == str(folders / "adapter") and adapter.key == "mine" and adapter.task is None
    assert checkpoint.checkpoint == str(folders / "model") and checkpoint.n_train == 50 and checkpoint.key == "tuned"
    assert hub.adapter == "someone/their-adapter" and hub.revision == "v1"  # a hub id: resolved at plan time
    assert trained.weights is None and adapter.weights == str(folders / "adapter")


@pytest.mark.parametrize("entry, message", [
    ("{adapter: adapter}", "reg.yaml:6: sources[0]: a source with `adapter` and no `task` needs an `alias`"),
    ("{adapter: adapter, checkpoint: model, alias: both}", "sources[0]: give `adapter` or `checkpoint`, not both"),
    ("{alias: nothing}", "sources[0]: give `task` (a dataset to fine-tune on), or `adapter`/`checkpoint`"),
    ("{adapter: adapter, alias: a, n_train: 10}", "sources[0]: `options` and `n_train` describe a `task`'s data"),
    ("{checkpoint: model, alias: c, revision: main}", "sources[0]: `revision` is the hub revision of `adapter`"),
    ("{adapter: gone/away/x, alias: g}", "reg.yaml:6: sources[0].adapter: no folder "),
    ("{checkpoint: gone, alias: g}", "reg.yaml:6: sources[0].checkpoint: no folder "),
    ("{checkpoint: a-file, alias: f}", "sources[0].checkpoint: {root}/a-file is a file; give the folder"),
    ("{adapter: adapter, alias: base}", "a source cannot be called 'base'"),
])
def test_bad_brought_sources_are_refused_with_field_and_line(folders, entry, message):
    found = problems(f"  - {entry}\n", base_dir=folders)
    assert any(message.format(root=folders) in p for p in found), found


def test_a_brought_source_is_no_candidate(folders):
    with pytest.raises(RegistryError, match="candidate is a dataset"):
        parse_registry(HEAD + "  - {task: nli}\ncandidates:\n  - {adapter: adapter, alias: c}\n", base_dir=folders)


def test_command_line_sources_are_checked_like_the_files_own(folders):
    reg = parse_registry(HEAD + "  - {task: nli}\n", "reg.yaml", base_dir=folders,
                         extra_sources=[("--adapter mine", {"alias": "mine", "adapter": str(folders / "adapter")})])
    assert [s.key for s in reg.sources] == ["nli", "mine"] and reg.sources[1].origin(1) == "--adapter mine"
    gone = problems("  - {task: nli}\n", [("--checkpoint c", {"alias": "c", "checkpoint": str(folders / "gone")})],
                    base_dir=folders)
    assert gone == [f"reg.yaml: --checkpoint c: no folder {folders / 'gone'}; give the path of a model folder (config.json, "
                    "weights, tokenizer, as save_pretrained writes them), absolute or relative to the current folder"]
    clash = problems("  - {task: nli}\n", [("--adapter nli", {"alias": "nli", "adapter": str(folders / "adapter")})])
    assert clash == ["reg.yaml: --adapter nli: the name 'nli' is already taken by sources[0] (line 6); choose another NAME"]
    bad = problems("  - {task: nli}\n", [("--adapter x y", {"alias": "x y", "adapter": str(folders / "adapter")})])
    assert bad[0].startswith("reg.yaml: --adapter x y.alias: 'x y' is not a plain name")


def test_a_registry_of_command_line_sources_only(folders):
    """A suite registry lists no sources of its own; --checkpoint gives it its one."""
    text = "experiment: x\nbase_model: {path: /models/base}\ntargets:\n  - {task: sentiment}\n"
    reg = parse_registry(text, extra_sources=[("--checkpoint c", {"alias": "c", "checkpoint": str(folders / "model")})])
    assert [s.kind for s in reg.sources] == ["checkpoint"]


def test_plan_time_problems_carry_the_entrys_line(folders):
    reg = parse_registry(HEAD + "  - {task: nli}\n  - alias: mine\n    adapter: adapter\n", "reg.yaml", base_dir=folders)
    problem = reg.sources[1].problem(1, "adapter", "does not fit")
    assert (problem.path, problem.line, reg.sources[1].filename) == ("sources[1].adapter", 8, "reg.yaml")
    made = SourceConfig(adapter=str(folders), alias="a")  # made in code: no file, no line
    assert made.problem(0, "adapter", "x").format(made.filename) == "<registry>: sources[0].adapter: x"
