"""`harness cache ls | du | prune` on small synthetic caches: no model is ever loaded."""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import pytest

from harness.cli import cache as cache_admin
from harness.cli.cache import cli

DAY = 86400
A1, A2 = "a1" * 10, "a2" * 10  # adapters
C1, C2, C3 = "c1" * 10, "c2" * 10, "c3" * 10  # cells
T1, T2 = "71" * 10, "72" * 10  # traits
M1 = "0e" * 10  # models
D1, D2 = "nli-0123456789abcdef.jsonl", "sentiment-fedcba9876543210.jsonl"  # data


def put(root: Path, kind: str, key: str, files: dict[str, str], age_days: float = 0.0) -> Path:
    """An entry written ``age_days`` ago: a folder of files, or for "data" one file."""
    when = time.time() - age_days * DAY
    if kind == "data":
        path = root / "data" / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(files[""])
        os.utime(path, (when, when))
        return path
    path = root / kind / key
    path.mkdir(parents=True)
    for name, text in files.items():
        (path / name).write_text(text)
        os.utime(path / name, (when, when))
    os.utime(path, (when, when))
    return path


def adapter(source: str, steps: int = 6) -> dict[str, str]:
    log = {"steps": [{"step": i + 1, "loss": 2.0 - i / 10} for i in range(steps)], "total_steps": steps,
           "first_loss": 2.0, "last_loss": 1.5, "source": source, "examples": 32, "seconds": 1.0}
    return {"train_log.json": json.dumps(log), "adapter_model.safetensors": "x" * 3000}


def cell(model: str, target: str, value: float, metric: str = "acc,none") -> dict[str, str]:
    return {"cell.json": json.dumps({"model": model, "target": target, "value": value, "stderr": 0.1,
                                     "metric": metric, "n": 4, "seconds": 0.5}),
            "samples.jsonl": '{"doc_id": 0}\n' * 4}


@pytest.fixture
def cache(tmp_path) -> Path:
    root = tmp_path / "cache"
    put(root, "models", M1, {"config.json": json.dumps({"_name_or_path": "tiny-llama", "model_type": "llama"}),
                             "model.safetensors": "w" * 10000}, age_days=40)
    put(root, "adapters", A1, adapter("sentiment"), age_days=30)
    put(root, "adapters", A2, adapter("nli"), age_days=1)
    put(root, "cells", C1, cell("base", "nli", 0.5), age_days=30)
    put(root, "cells", C2, cell("sentiment", "nli", 0.75), age_days=2)
    put(root, "cells", C3, cell("nli", "arithmetic", 0.25, "exact_match,extract"), age_days=0)
    put(root, "traits", T1, {"values.json": json.dumps({"type_token_ratio": 0.1, "mean_word_length": 4.0,
                                                        "hapax_share": 0.0})}, age_days=20)
    put(root, "traits", T2, {"values.json": json.dumps({"made_up": 1.0})}, age_days=0)
    put(root, "data", D1, {"": '{"prompt": "a"}\n{"prompt": "b"}\n{"prompt": "c"}\n'}, age_days=25)
    put(root, "data", D2, {"": '{"prompt": "a"}\n'}, age_days=0)
    # Not entries: a run's in-progress write and a stray file. Never listed, never removed.
    (root / "cells" / f".{C1}.abc.tmp").mkdir()
    (root / "cells" / f".{C1}.abc.tmp" / "cell.json").write_text("{}")
    (root / "cells" / "notes.txt").write_text("mine")
    return root


def files_under(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): p.stat().st_size for p in root.rglob("*") if p.is_file()}


def size_of(path: Path) -> int:
    return path.stat().st_size if path.is_file() else sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def run(capsys, *argv) -> tuple[int, str, str]:
    code = cli([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(autouse=True)
def columns(monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")


# --- ls ---------------------------------------------------------------------------------------------

def test_ls_table_describes_every_entry_in_80_columns(cache, capsys):
    code, out, err = run(capsys, "ls", "--cache-dir", cache)
    assert code == 0, err
    lines = out.splitlines()
    assert max(len(line) for line in lines if str(cache) not in line) <= 80  # paths are never broken
    body = [line for line in lines if line.strip().startswith(cache_admin.KINDS)]
    assert len(body) == 10  # the temporary folder and the stray file are no entries
    text = "\n".join(lines)
    for expected in ("tiny-llama (llama", "sentiment: 6 steps, loss 2→1.5", "base on nli: 0.500 acc (n=4)",
                     "nli on arithmetic: 0.250 exact", "lexical: type_token_ratio", "made_up",
                     "nli test rows: 3", A1[:8]):
        assert expected in text, expected
    assert D1 not in text and "01234567" in text  # data rows show the content hash, shortened
    assert "10 entries" in lines[-1] and str(cache) in lines[-1]
    # newest first within a kind, kinds in a fixed order
    kinds = [line.split()[0] for line in body]
    assert kinds == ["models", "adapters", "adapters", "cells", "cells", "cells", "traits", "traits", "data", "data"]
    cells = [line for line in body if line.split()[0] == "cells"]
    assert [c.split()[1] for c in cells] == [C3[:8], C2[:8], C1[:8]]


def test_ls_json_has_full_keys_sizes_and_details(cache, capsys):
    code, out, _ = run(capsys, "ls", "--cache-dir", cache, "--json")
    assert code == 0
    rows = json.loads(out)
    assert {(r["kind"], r["key"]) for r in rows} == {
        ("models", M1), ("adapters", A1), ("adapters", A2), ("cells", C1), ("cells", C2), ("cells", C3),
        ("traits", T1), ("traits", T2), ("data", D1), ("data", D2)}
    by_key = {r["key"]: r for r in rows}
    for r in rows:
        assert set(r) == {"kind", "key", "path", "bytes", "size", "files", "mtime", "age_days", "description",
                          "details", "symlink"}
        assert r["bytes"] == size_of(Path(r["path"])) and Path(r["path"]).parent.parent == cache
    assert by_key[A1]["details"]["source"] == "sentiment" and by_key[A1]["details"]["steps"] == 6
    assert by_key[A1]["files"] == 2 and 29.9 < by_key[A1]["age_days"] < 30.1
    assert by_key[C2]["details"] == {"model": "sentiment", "target": "nli", "value": 0.75, "metric": "acc,none",
                                     "n": 4, "seconds": 0.5}
    assert by_key[T1]["details"]["trait"] == "lexical" and by_key[T2]["details"]["trait"] is None
    assert by_key[D1]["details"] == {"task": "nli", "rows": 3}
    assert by_key[M1]["details"]["name"] == "tiny-llama"

    code, out, _ = run(capsys, "ls", "--cache-dir", cache, "--json", "--kind", "cells", "--kind", "data")
    assert [r["kind"] for r in json.loads(out)] == ["cells"] * 3 + ["data"] * 2


def test_ls_survives_broken_entries(cache, capsys):
    (cache / "cells" / C1 / "cell.json").write_text("{not json")
    (cache / "adapters" / A1 / "train_log.json").unlink()
    code, out, _ = run(capsys, "ls", "--cache-dir", cache, "--json")
    by_key = {r["key"]: r for r in json.loads(out)}
    assert code == 0
    assert by_key[C1]["description"].startswith("unreadable: JSONDecodeError")
    assert by_key[A1]["description"] == "incomplete: no train_log.json"


# --- du ---------------------------------------------------------------------------------------------

def test_du_totals_are_the_sums_of_file_sizes(cache, capsys):
    code, out, _ = run(capsys, "du", "--cache-dir", cache, "--json")
    assert code == 0
    usage = json.loads(out)
    assert usage["cache_dir"] == str(cache.resolve())
    for kind in cache_admin.KINDS:
        entries = [p for p in (cache / kind).iterdir() if not p.name.startswith(".") and p.name != "notes.txt"]
        assert usage["kinds"][kind]["entries"] == len(entries)
        assert usage["kinds"][kind]["bytes"] == sum(size_of(p) for p in entries)
    assert usage["total"]["entries"] == 10
    assert usage["total"]["bytes"] == sum(files_under(cache).values())  # temporary and other included
    assert usage["temporary"] == {"items": 1, "bytes": 2, "size": "2 B"}
    assert usage["other"] == {"items": 1, "bytes": 4, "size": "4 B"}

    code, out, _ = run(capsys, "du", "--cache-dir", cache)
    assert code == 0 and max(len(line) for line in out.splitlines()) <= 80
    total = next(line for line in out.splitlines() if line.split()[:1] == ["total"])
    assert total.split()[1] == "10" and f"{usage['total']['bytes']:,}" in total


def test_human_sizes():
    assert [cache_admin.human_size(n) for n in (0, 1023, 1024, 1536, 5 << 20, 3 << 30)] == [
        "0 B", "1023 B", "1.0 KiB", "1.5 KiB", "5.0 MiB", "3.0 GiB"]


# --- usage errors -----------------------------------------------------------------------------------

def test_unknown_kind_suggests_the_right_one(cache, capsys):
    code, _, err = run(capsys, "ls", "--cache-dir", cache, "--kind", "cell")
    assert code == 2 and "unknown kind 'cell'" in err and "did you mean 'cells'" in err
    code, _, err = run(capsys, "prune", "--cache-dir", cache, "--kind", "adaptors", "--dry-run")
    assert code == 2 and "did you mean 'adapters'" in err


def test_missing_cache_dir_is_a_clear_error(tmp_path, capsys, monkeypatch):
    code, _, err = run(capsys, "du", "--cache-dir", tmp_path / "nowhere")
    assert code == 2 and f"no cache at {tmp_path / 'nowhere'}" in err and "--cache-dir" in err
    monkeypatch.setenv("HARNESS_CACHE_DIR", str(tmp_path / "env-cache"))
    code, _, err = run(capsys, "ls")
    assert code == 2 and "env-cache" in err and "HARNESS_CACHE_DIR" in err


def test_registry_selects_its_cache_and_a_bad_one_prints_its_problems(tmp_path, capsys):
    model = fake_model(tmp_path)
    (tmp_path / "cache" / "cells").mkdir(parents=True)
    (tmp_path / "r.yaml").write_text(REGISTRY.format(model=model))
    code, out, err = run(capsys, "du", "--registry", tmp_path / "r.yaml", "--json")
    assert code == 0, err and json.loads(out)["cache_dir"] == str((tmp_path / "cache").resolve())
    (tmp_path / "bad.yaml").write_text("experiment: x\nbase_model: {path: m}\nsources: []\ntargets: []\nbogus: 1\n")
    for argv in (["ls", "--registry", tmp_path / "bad.yaml"],
                 ["prune", "--cache-dir", tmp_path / "cache", "--keep", tmp_path / "bad.yaml", "--dry-run"]):
        code, _, err = run(capsys, *argv)
        assert code == 2 and "problem(s) in" in err and "bogus: unknown field" in err, err


def test_prune_needs_a_filter(cache, capsys):
    before = files_under(cache)
    code, _, err = run(capsys, "prune", "--cache-dir", cache, "--yes")
    assert code == 2 and "--all" in err and "--kind" in err
    code, _, err = run(capsys, "prune", "--cache-dir", cache, "--older-than", "-1", "--yes")
    assert code == 2 and "--older-than" in err
    assert files_under(cache) == before


# --- prune ------------------------------------------------------------------------------------------

def test_prune_refuses_without_yes_and_dry_run_deletes_nothing(cache, capsys):
    before = files_under(cache)
    code, out, err = run(capsys, "prune", "--cache-dir", cache, "--all")
    assert code == 2 and "--yes" in err and "10 entries" in err
    assert "Would remove 10 entries" in out
    code, out, err = run(capsys, "prune", "--cache-dir", cache, "--all", "--dry-run")
    assert code == 0 and "Would remove 10 entries" in out and err == ""
    assert max(len(line) for line in out.splitlines()) <= 80
    code, out, _ = run(capsys, "prune", "--cache-dir", cache, "--kind", "cells", "--dry-run", "--yes", "--json")
    result = json.loads(out)
    assert code == 0 and result["dry_run"] is True and result["removed"] == 0 and result["bytes_freed"] == 0
    assert sorted(e["key"] for e in result["selected"]) == sorted([C1, C2, C3])
    assert result["selected_bytes"] == sum(size_of(cache / "cells" / k) for k in (C1, C2, C3))
    assert files_under(cache) == before


def test_prune_by_kind(cache, capsys):
    freed = sum(size_of(cache / "cells" / k) for k in (C1, C2, C3))
    code, out, err = run(capsys, "prune", "--cache-dir", cache, "--kind", "cells", "--yes", "--json")
    assert code == 0, err
    result = json.loads(out)
    assert result["removed"] == 3 and result["bytes_freed"] == freed and result["dry_run"] is False
    assert set(result) == {"cache_dir", "dry_run", "selected", "selected_bytes", "removed", "bytes_freed",
                           "protected", "skipped", "errors"}
    left = sorted(p.name for p in (cache / "cells").iterdir())
    assert left == sorted([f".{C1}.abc.tmp", "notes.txt"])  # no .deleting- leftovers, foreign files kept
    assert (cache / "adapters" / A1).is_dir() and (cache / "data" / D1).is_file()


def test_prune_by_age_prints_bytes_freed(cache, capsys):
    old = [cache / "models" / M1, cache / "adapters" / A1, cache / "cells" / C1, cache / "traits" / T1,
           cache / "data" / D1]
    freed = sum(size_of(p) for p in old)
    code, out, err = run(capsys, "prune", "--cache-dir", cache, "--older-than", "10", "--yes")
    assert code == 0, err
    assert f"Removed 5 entries, freed {cache_admin.human_size(freed)}" in out
    assert not any(p.exists() for p in old)
    assert all((cache / k).exists() for k in (f"adapters/{A2}", f"cells/{C2}", f"cells/{C3}", f"traits/{T2}",
                                              f"data/{D2}"))
    # kind and age together: only old cells
    put(cache, "cells", "c9" * 10, cell("base", "x", 0.1), age_days=50)
    code, out, _ = run(capsys, "prune", "--cache-dir", cache, "--older-than", "1.5", "--kind", "cells", "--yes",
                       "--json")
    assert [e["key"] for e in json.loads(out)["selected"]] == [C2, "c9" * 10]  # newest first


def test_interrupted_removal_never_leaves_a_valid_looking_entry(cache, capsys, monkeypatch):
    from harness.cache import admin
    from harness.cache.store import Cache

    def boom(path, *a, **k):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(admin.shutil, "rmtree", boom)
    code, _, err = run(capsys, "prune", "--cache-dir", cache, "--kind", "adapters", "--yes")
    assert code == 1 and f"could not remove adapters/{A1}" in err
    assert not Cache(cache).has("adapters", A1) and not Cache(cache).has("adapters", A2)
    assert sorted(p.name for p in (cache / "adapters").iterdir()) == sorted(
        f".deleting-{k}-{os.getpid()}" for k in (A1, A2))
    monkeypatch.undo()
    code, out, _ = run(capsys, "ls", "--cache-dir", cache, "--json", "--kind", "adapters")
    assert json.loads(out) == []  # the leftovers are temporary, not entries
    code, out, _ = run(capsys, "du", "--cache-dir", cache, "--json")
    assert json.loads(out)["temporary"]["items"] == 3


def test_symlinks_are_never_followed(cache, tmp_path, capsys):
    outside = tmp_path / "precious"
    (outside / "inner").mkdir(parents=True)
    (outside / "inner" / "file.bin").write_text("keep me" * 100)
    (outside / "cell.json").write_text(json.dumps({"model": "base", "target": "nli", "value": 1.0}))
    link = cache / "cells" / ("c4" * 10)
    link.symlink_to(outside, target_is_directory=True)
    (cache / "cells" / C2 / "escape").symlink_to(outside, target_is_directory=True)  # a link inside an entry
    elsewhere = tmp_path / "elsewhere-traits"
    elsewhere.mkdir()
    (elsewhere / T1).mkdir()
    (elsewhere / T1 / "values.json").write_text("{}")
    os.rename(cache / "traits", tmp_path / "old-traits")
    (cache / "traits").symlink_to(elsewhere, target_is_directory=True)  # a whole kind folder elsewhere
    before_outside = files_under(outside) | {f"e/{k}": v for k, v in files_under(elsewhere).items()}

    code, out, _ = run(capsys, "du", "--cache-dir", cache, "--json")
    usage = json.loads(out)
    assert usage["kinds"]["cells"]["bytes"] == sum(size_of(cache / "cells" / k) for k in (C1, C2, C3))
    code, out, err = run(capsys, "prune", "--cache-dir", cache, "--all", "--yes", "--json")
    assert code == 0, err
    result = json.loads(out)
    skipped = {s["key"]: s["reason"] for s in result["skipped"]}
    assert "symlink" in skipped["c4" * 10] and "symlink" in skipped[T1] and "outside the cache" in skipped[T1]
    assert "skipped cells/" + "c4" * 10 in err and "never pruned" in err
    assert files_under(outside) | {f"e/{k}": v for k, v in files_under(elsewhere).items()} == before_outside
    assert link.is_symlink() and not (cache / "cells" / C2).exists()
    assert result["removed"] == 8  # everything but the two symlinked entries (T2 went with the old traits)


def test_foreign_names_are_never_removed(cache, capsys):
    (cache / "adapters" / "my-notes").mkdir()
    (cache / "adapters" / "my-notes" / "a.txt").write_text("x")
    (cache / "data" / "train.csv").write_text("a,b\n")
    (cache / "hub").mkdir()
    (cache / "hub" / "big.bin").write_text("y" * 50)
    code, _, _ = run(capsys, "prune", "--cache-dir", cache, "--all", "--yes")
    assert code == 0
    assert sorted(files_under(cache)) == sorted([f"cells/.{C1}.abc.tmp/cell.json", "cells/notes.txt",
                                                 "adapters/my-notes/a.txt", "data/train.csv", "hub/big.bin"])


# --- prune --keep REGISTRY ------------------------------------------------------------------------

REGISTRY = """\
experiment: tiny
cache_dir: cache
base_model: {{path: {model}}}
sources:
  - {{task: sentiment, n_train: 8}}
  - {{task: nli, n_train: 8}}
targets:
  - {{task: sentiment, limit: 4}}
  - {{task: arithmetic, limit: 3}}
traits: [{{name: lexical}}, {{name: class_distribution}}, {{name: completion_length}}]
"""


def fake_model(tmp_path: Path) -> Path:
    """Enough of a model folder for planning: locate() hashes its files and loads nothing."""
    model = tmp_path / "model"
    model.mkdir(exist_ok=True)
    (model / "config.json").write_text('{"model_type": "llama"}')
    return model


def plan_of(registry_path: Path, root: Path):
    from harness.api.plugins import catalog
    from harness.cache.store import Cache
    from harness.config.registry import load_registry
    from harness.model import loading as models
    from harness.stages.plan import make_plan

    registry = load_registry(registry_path)
    location = models.locate(registry.base_model, Cache(root), download=False)
    return registry, make_plan(registry, catalog(), Cache(root), location, dry_run=True)


def test_keep_protects_what_the_registry_plan_uses(cache, tmp_path, capsys):
    (tmp_path / "r.yaml").write_text(REGISTRY.format(model=fake_model(tmp_path)))
    _, plan = plan_of(tmp_path / "r.yaml", tmp_path / "scratch")
    for job in plan.adapters:
        put(cache, "adapters", job.key, adapter(job.source), age_days=100)
    for job in plan.cells:
        put(cache, "cells", job.key, cell(job.model, job.target, 0.5), age_days=100)
    data = {Path(c["dataset_kwargs"]["data_files"]["test"]).name for c in plan.target_configs.values()}
    for name in data:
        put(cache, "data", name, {"": "{}\n"}, age_days=100)
    before = files_under(tmp_path)
    needed = cache_admin.needed_keys(tmp_path / "r.yaml")
    assert files_under(tmp_path) == before  # planning wrote nothing, in the cache or elsewhere
    assert needed.cache_root == cache.resolve()  # r.yaml's cache_dir is this cache
    assert needed.keys["adapters"] == {a.key for a in plan.adapters} and len(needed.keys["adapters"]) == 2
    assert needed.keys["cells"] == {c.key for c in plan.cells} and len(needed.keys["cells"]) == 6
    assert needed.keys["data"] == data and needed.keys["models"] == set()  # a path model has no cache entry
    assert len(needed.keys["traits"]) == 2 * 3
    for key in sorted(needed.keys["traits"])[:2]:
        put(cache, "traits", key, {"values.json": "{}"}, age_days=100)
    kept = needed.keys["adapters"] | needed.keys["cells"] | data | set(sorted(needed.keys["traits"])[:2])
    before = files_under(cache)

    code, out, err = run(capsys, "prune", "--cache-dir", cache, "--keep", tmp_path / "r.yaml", "--dry-run",
                         "--json")
    assert code == 0, err
    result = json.loads(out)
    assert result["protected"] == len(kept) == 2 + 6 + 2 + 2
    assert {e["key"] for e in result["selected"]} == {M1, A1, A2, C1, C2, C3, T1, T2, D1, D2}
    assert files_under(cache) == before

    code, out, err = run(capsys, "prune", "--cache-dir", cache, "--keep", tmp_path / "r.yaml", "--yes")
    assert code == 0, err
    assert "Removed 10 entries" in out and f"{len(kept)} kept for {tmp_path / 'r.yaml'}" in out
    left = {p.name for kind in cache_admin.KINDS for p in (cache / kind).iterdir() if not p.name.startswith(".")}
    assert left == kept | {"notes.txt"}
    # with --keep alone, the cache is the registry's own: nothing is left to remove there
    code, out, err = run(capsys, "prune", "--keep", tmp_path / "r.yaml", "--yes")
    assert code == 0 and f"Nothing to remove in {cache.resolve()}; {len(kept)} kept" in out


def test_trait_keys_match_the_ones_the_traits_stage_writes(tmp_path):
    """needed_keys restates harness.api.traits' key: check it against compute_all itself."""
    from harness.api.plugins import catalog
    from harness.cache.store import Cache
    from harness.stages import traits

    text = REGISTRY.format(model=fake_model(tmp_path)).replace(", {name: completion_length}", "")
    (tmp_path / "r.yaml").write_text(text + "candidates: [{task: arithmetic, n_train: 8}]\n")
    registry, plan = plan_of(tmp_path / "r.yaml", tmp_path / "scratch")
    written = Cache(tmp_path / "written")
    result = traits.compute_all(registry, plan, catalog(), None, cache=written, scopes=("source",))
    assert not result.failures
    # the candidates as `harness recommend` plans them: a sibling registry whose sources they are
    sibling = registry.model_copy(update={"sources": registry.candidates})
    from harness.model import loading as models
    from harness.stages.plan import make_plan

    location = models.locate(registry.base_model, written, download=False)
    cand_plan = make_plan(sibling, catalog(), Cache(tmp_path / "scratch"), location, dry_run=True)
    traits.compute_all(sibling, cand_plan, catalog(), None, cache=written, scopes=("source",))
    on_disk = {p.name for p in (tmp_path / "written" / "traits").iterdir()}
    assert len(on_disk) == 3 * 2
    assert cache_admin.needed_keys(tmp_path / "r.yaml").keys["traits"] == on_disk


def test_keep_without_the_model_is_refused(cache, tmp_path, capsys):
    (tmp_path / "r.yaml").write_text(REGISTRY.format(model=tmp_path / "no-model"))
    before = files_under(cache)
    code, _, err = run(capsys, "prune", "--cache-dir", cache, "--keep", tmp_path / "r.yaml", "--yes")
    assert code == 2 and "cannot tell which entries it uses" in err and "base model not found" in err
    assert files_under(cache) == before


def test_keep_uses_the_registries_cache_when_none_is_named(tmp_path, capsys):
    model = fake_model(tmp_path)
    (tmp_path / "r.yaml").write_text(REGISTRY.format(model=model))
    (tmp_path / "s.yaml").write_text(REGISTRY.format(model=model).replace("cache_dir: cache", "cache_dir: other"))
    root = tmp_path / "cache"
    put(root, "cells", C1, cell("base", "nli", 0.5))
    code, out, err = run(capsys, "prune", "--keep", tmp_path / "r.yaml", "--dry-run", "--json")
    assert code == 0, err
    assert json.loads(out)["cache_dir"] == str(root.resolve()) and json.loads(out)["selected"][0]["key"] == C1
    code, _, err = run(capsys, "prune", "--keep", tmp_path / "r.yaml", tmp_path / "s.yaml", "--dry-run")
    assert code == 2 and "different caches" in err


def test_hub_targets_keep_their_cells_by_name(cache, tmp_path, capsys):
    """A target read from the hub has no data in a dry run, so its cell keys are unknown: every cell
    scored on a target of that name is kept instead, and a note says so."""
    text = REGISTRY.format(model=fake_model(tmp_path)).replace("  - {task: arithmetic, limit: 3}\n",
                                                                "  - {task: sst2, limit: 3}\n")
    (tmp_path / "r.yaml").write_text(text)
    put(cache, "cells", "c5" * 10, cell("nli", "sst2", 0.5), age_days=3)
    code, out, err = run(capsys, "prune", "--cache-dir", cache, "--keep", tmp_path / "r.yaml", "--kind", "cells",
                         "--dry-run", "--json")
    assert code == 0, err
    assert "target sst2" in err and "keeping every cell scored on 'sst2'" in err
    result = json.loads(out)
    assert result["protected"] == 1 and "c5" * 10 not in {e["key"] for e in result["selected"]}


# --- wiring -----------------------------------------------------------------------------------------

def test_add_parser_and_main_plug_into_a_cli(cache, capsys):
    parser = argparse.ArgumentParser(prog="harness")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("run")
    cache_admin.add_parser(sub)
    args = parser.parse_args(["cache", "du", "--cache-dir", str(cache), "--json"])
    assert args.command == "cache" and cache_admin.main(args) == 0
    assert json.loads(capsys.readouterr().out)["total"]["entries"] == 10
    with pytest.raises(SystemExit) as exc:  # argparse's own usage errors exit 2 as well
        parser.parse_args(["cache", "ls", "--cache-dir", "x", "--registry", "y"])
    assert exc.value.code == 2


def test_verify_finds_damaged_entries_and_fix_removes_them(tmp_path, capsys):
    from harness import cli
    from harness.cache.store import Cache

    cache = Cache(tmp_path, warn=lambda message: None)
    for key in ("good", "bad"):
        with cache.entry("cells", key) as tmp:
            (tmp / "cell.json").write_text('{"value": 0.5}')
    (tmp_path / "cells" / "bad" / "cell.json").write_text('{"value": 0.9}')  # same size, other bytes
    assert cli.main(["cache", "verify", "--cache-dir", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "cells/bad: cell.json does not match its checksum" in out and "2 entries checked, 1 damaged" in out
    assert cli.main(["cache", "verify", "--cache-dir", str(tmp_path), "--fix", "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["damaged"] == [{"kind": "cells", "key": "bad",
                                  "problem": "cell.json does not match its checksum (damaged or changed)"}]
    assert not (tmp_path / "cells" / "bad").exists() and (tmp_path / "cells" / "good").is_dir()
    assert cli.main(["cache", "verify", "--cache-dir", str(tmp_path)]) == 0
