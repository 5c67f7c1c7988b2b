"""Hostile and bad input: nothing lost, nobody in.

Data files that are too large, binary, not UTF-8 or not files at all are refused with what is
wrong, where, and how to fix it; names that would become paths cannot escape their folder; YAML
is loaded safely; markup from data is escaped in reports; nothing is ever unpickled.
"""

from __future__ import annotations

import csv
import json
import random
import re
import subprocess
import sys
from pathlib import Path

import pytest

from harness.api.filetasks import check_data_file, read_rows
from harness.cli import main
from harness.errors import DataError
from harness_plugins.tasks.file import FileDefinedTask
from helpers import ROOT, Structure, make_results

HOSTILE = "<script>alert(1)</script>"
ESCAPED = "&lt;script&gt;alert(1)&lt;/script&gt;"
GB = 1024**3


def file_task(path: Path, **options) -> FileDefinedTask:
    return FileDefinedTask(data_files={"test": str(path)}, text_columns=["text"], label_column="label",
                           labels=["negative", "positive"], label_values=["neg", "pos"], **options)


def registry_text(data_file: str, experiment: str = "hostile", extra_options: str = "",
                  model: str = "/nonexistent/model") -> str:
    return (f"experiment: {experiment}\n"
            f"base_model: {{path: {model}}}\n"
            "sources:\n"
            "  - {task: sentiment, n_train: 8}\n"
            "targets:\n"
            "  - task: file\n"
            "    alias: reviews\n"
            "    limit: 2\n"
            "    options:\n"
            f"      data_files: {{test: {data_file}}}\n"
            "      text_columns: [text]\n"
            "      label_column: label\n"
            "      labels: [negative, positive]\n"
            "      label_values: [neg, pos]\n"
            f"{extra_options}")


def cli(argv: list[str], capsys) -> tuple[int, str]:
    """Run the CLI in this process; its exit code and everything it printed."""
    code = main([str(a) for a in argv])
    out = capsys.readouterr()
    return code, out.out + out.err


def refused(argv: list[str], capsys, *expected: str) -> str:
    code, text = cli(argv, capsys)
    assert code == 2, text
    assert "Traceback" not in text
    for part in expected:
        assert part in text, (part, text)
    return text


# --- size: refused by os.stat, never read ----------------------------------------------------------
@pytest.fixture
def sparse_2gb(tmp_path) -> Path:
    path = tmp_path / "big.csv"
    with open(path, "wb") as fh:
        fh.truncate(2 * GB)  # a hole: no disk used, all zeros when read
    if path.stat().st_blocks * 512 > 1024**2:
        pytest.skip("this filesystem does not make sparse files")
    return path


def test_a_2gb_data_file_is_refused_by_size_without_being_read(sparse_2gb, tmp_path, monkeypatch, capsys):
    import harness.api.filetasks
    import harness.files

    def no_reading(*args, **kwargs):
        raise AssertionError(f"the file was opened: {args}")

    monkeypatch.setattr(harness.api.filetasks, "open", no_reading, raising=False)  # shadows the builtin there
    monkeypatch.setattr(harness.files, "file_sha256", no_reading)
    message = r"big\.csv: 2048\.0 MB, over the limit of 1024 MB .* raise `options\.max_file_mb` .* max_file_mb: 4096"
    with pytest.raises(DataError, match=message):
        read_rows(sparse_2gb)
    task = file_task(sparse_2gb)
    with pytest.raises(DataError, match=message):
        task.examples("test", 1)
    with pytest.raises(DataError, match=message):
        task.fingerprint()  # the cache key would hash the file: refused before that too
    (tmp_path / "r.yaml").write_text(registry_text("big.csv"))
    refused(["validate", tmp_path / "r.yaml"], capsys, "targets[0].options.data_files.test", "2048.0 MB",
            "options.max_file_mb")

    # Raising the limit lets it past the size check; it then fails for what it holds (zeros).
    monkeypatch.undo()
    with pytest.raises(DataError, match=r"big\.csv: looks binary \(a NUL byte at byte 0\)"):
        file_task(sparse_2gb, max_file_mb=4096).examples("test", 1)
    (tmp_path / "r4096.yaml").write_text(registry_text("big.csv", extra_options="      max_file_mb: 4096\n"))
    text = refused(["validate", tmp_path / "r4096.yaml"], capsys, "looks binary")
    assert "max_file_mb" not in text


def test_max_file_mb_is_checked_and_kept_out_of_cache_keys(tmp_path):
    from pydantic import ValidationError

    path = tmp_path / "small.csv"
    path.write_text("text,label\ngood,pos\nbad,neg\n")
    assert file_task(path, max_file_mb=0.5).fingerprint() == file_task(path).fingerprint()
    assert len(file_task(path, max_file_mb=0.001).examples("test", 2)) == 2  # 26 bytes < 1 KB
    with pytest.raises(DataError, match=r"over the limit of 1e-05 MB"):
        file_task(path, max_file_mb=0.00001).examples("test", 1)
    for bad in (0, -1, "lots", float("nan")):
        with pytest.raises(ValidationError, match="max_file_mb"):
            file_task(path, max_file_mb=bad)


# --- content: binary, not UTF-8, not what the suffix says ---------------------------------------------
def test_binary_file_is_refused(tmp_path):
    rng = random.Random(0)
    blob = bytes(rng.randrange(256) for _ in range(4096)) + b"\0" + bytes(rng.randrange(256) for _ in range(100))
    for suffix in (".csv", ".tsv", ".jsonl", ".json"):
        path = tmp_path / f"blob{suffix}"
        path.write_bytes(blob)
        with pytest.raises(DataError, match=rf"blob{re.escape(suffix)}: looks binary \(a NUL byte at byte \d+\), "
                                            r"not (CSV|TSV|JSONL) text; give a UTF-8 text file"):
            read_rows(path)
    # UTF-16 text has a NUL in every other byte: the same refusal, which says what to do with it.
    utf16 = tmp_path / "utf16.csv"
    utf16.write_text("text,label\ngood,pos\n", encoding="utf-16")
    with pytest.raises(DataError, match="re-save a UTF-16 file as UTF-8"):
        file_task(utf16).examples("test", 1)


def test_non_utf8_file_names_the_line(tmp_path):
    latin1 = tmp_path / "latin1.csv"
    latin1.write_bytes("text,label\nfine,pos\ncaf\u00e9 cr\u00e8me,neg\n".encode("latin-1"))
    with pytest.raises(DataError, match=r"latin1\.csv: line 3, column 4: not UTF-8 text \(byte 0xe9: .*\); "
                                        r"re-save the file as UTF-8"):
        read_rows(latin1)
    # Far past the first block the decoder reads at once: still the exact line.
    jsonl = tmp_path / "late.jsonl"
    jsonl.write_bytes(b"".join(json.dumps({"text": f"row {i}", "label": "pos"}).encode() + b"\n" for i in range(5000))
                      + '{"text": "na\u00efve", "label": "neg"}\n'.encode("latin-1"))
    with pytest.raises(DataError, match=r"late\.jsonl: line 5001, column 13: not UTF-8 text"):
        file_task(jsonl).examples("test", 1)
    # A byte-order mark (as Excel writes) is not part of the first column's name.
    bom = tmp_path / "bom.csv"
    bom.write_bytes("text,label\ngood,pos\n".encode("utf-8-sig"))
    assert read_rows(bom) == [{"text": "good", "label": "pos"}]


def test_other_malformed_files_are_data_errors(tmp_path):
    fake = tmp_path / "fake.parquet"
    fake.write_text("text,label\ngood,pos\n")
    with pytest.raises(DataError, match=r"fake\.parquet: not a Parquet file \(it does not start with Parquet's magic"):
        read_rows(fake)
    truncated = tmp_path / "truncated.parquet"
    truncated.write_bytes(b"PAR1" + b"x" * 100)
    with pytest.raises(DataError, match=r"truncated\.parquet: cannot be read as Parquet"):
        read_rows(truncated)
    huge_field = tmp_path / "huge_field.csv"  # past the csv module's field size limit (128 KiB)
    huge_field.write_text("text,label\ngood,pos\n" + "x" * 200_000 + ",neg\n")
    with pytest.raises(DataError, match=r"huge_field\.csv: line 3: not valid CSV \(field larger than field limit"):
        read_rows(huge_field)
    not_objects = tmp_path / "lists.jsonl"
    not_objects.write_text('{"text": "a", "label": "pos"}\n["b", "neg"]\n')
    with pytest.raises(DataError, match=r"lists\.jsonl: row 2: a JSON list, not an object"):
        read_rows(not_objects)


# --- paths: directories, and names that would escape their folder ----------------------------------------
def test_a_directory_as_data_file_is_refused(tmp_path, capsys):
    with pytest.raises(DataError, match=r"etc: is a directory, not a data file; give the path of a CSV"):
        read_rows(Path("/etc"))
    with pytest.raises(DataError, match="is a directory"):
        check_data_file(tmp_path)
    # `data_files: {test: ../../etc}`, relative to the registry's folder.
    (tmp_path / "etc").mkdir()
    folder = tmp_path / "a" / "b"
    folder.mkdir(parents=True)
    (folder / "r.yaml").write_text(registry_text("../../etc"))
    for argv in (["validate"], ["run", "--dry-run"], ["run"]):
        refused([*argv[:1], folder / "r.yaml", *argv[1:]], capsys, "targets[0].options.data_files.test",
                f"{tmp_path / 'etc'}: is a directory, not a data file")


@pytest.mark.parametrize("field, text, shown", [
    ("experiment", "experiment: ../../etc", "'../../etc' is not a plain name"),
    ("experiment", "experiment: a/b", "'a/b' is not a plain name"),
    ("sources[0].alias", "sources: [{task: sentiment, alias: ../x}]", "'../x' is not a plain name"),
    ("targets[0].alias", "targets: [{task: sentiment, alias: '..'}]", "'..' is not a plain name"),
    ("decomposers[0].alias", "decomposers: [{name: pca, alias: /tmp/x}]", "'/tmp/x' is not a plain name"),
])
def test_names_that_would_be_paths_are_refused(field, text, shown, tmp_path, capsys):
    lines = {"experiment": "experiment: ok", "base_model": "base_model: {path: /nonexistent}",
             "sources": "sources: [{task: sentiment}]", "targets": "targets: [{task: sentiment}]"}
    lines[text.split(":")[0]] = text
    (tmp_path / "r.yaml").write_text("\n".join(lines.values()) + "\n")
    for argv in (["validate", tmp_path / "r.yaml"], ["run", tmp_path / "r.yaml", "--dry-run"]):
        refused(argv, capsys, "r.yaml:", f": {field}: {shown}", "letters, digits")
    assert not (tmp_path / "runs").exists() and not (tmp_path.parent / "etc").exists()


def test_data_errors_while_planning_exit_2_without_traceback(tmp_path, capsys):
    """A file that passes validation but holds a bad row: `run` stops with exit 2 and the row
    before any model is loaded; `--dry-run` lists it as unavailable. A source file over its size
    limit is refused by `validate` and by `run --dry-run` alike."""
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text("{}")  # enough to be located; a real run stops before loading it
    data = tmp_path / "reviews.csv"
    data.write_text("text,label\ngood,pos\nodd,maybe\n")
    (tmp_path / "r.yaml").write_text(registry_text("reviews.csv", model=str(model)) + "cache_dir: cache\n")
    code, text = cli(["validate", tmp_path / "r.yaml"], capsys)
    assert code == 0, text
    refused(["run", tmp_path / "r.yaml", "--quiet"], capsys,
            f"error: {data}: row 2, column 'label': label 'maybe' is not in the label set")
    code, text = cli(["run", tmp_path / "r.yaml", "--dry-run"], capsys)
    assert code == 0 and "Traceback" not in text
    text = " ".join(text.split())  # the plan's table and notes are wrapped to the terminal's width
    assert "not available here: target reviews:" in text and "row 2, column 'label'" in text

    big = tmp_path / "big.csv"
    big.write_text("text,label\n" + "word,pos\n" * 200_000)  # 1.7 MB
    (tmp_path / "s.yaml").write_text(registry_text("reviews.csv", model=str(model)).replace(
        "  - {task: sentiment, n_train: 8}",
        "  - {task: file, alias: big, n_train: 8, options: {data_files: {train: big.csv}, text_columns: [text], "
        "label_column: label, labels: [negative, positive], label_values: [neg, pos], max_file_mb: 1}}")
        + "cache_dir: cache\n")
    for argv in (["validate"], ["run", "--dry-run"]):
        refused([*argv[:1], tmp_path / "s.yaml", *argv[1:]], capsys, "sources[0].options.data_files.train",
                "1.7 MB, over the limit of 1 MB")
    assert not (tmp_path / "runs").exists()


# --- YAML: safe loading, and documents built to exhaust the loader ----------------------------------------
def test_yaml_tags_that_run_code_are_refused(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    text = registry_text("x.csv").replace("experiment: hostile",
                                          'experiment: !!python/object/apply:os.system ["touch PWNED"]')
    (tmp_path / "r.yaml").write_text(text)
    for argv in (["validate"], ["run", "--dry-run"], ["run"]):
        refused([*argv[:1], "r.yaml", *argv[1:]], capsys, "r.yaml:1: (top level): not valid YAML",
                "python/object/apply:os.system")
    # And through a subprocess, the way a user runs it.
    done = subprocess.run([sys.executable, "-m", "harness.cli", "validate", "r.yaml"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "not valid YAML" in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "PWNED").exists()


SSTI = ("{% for c in text.__class__.__mro__[1].__subclasses__() %}{% if c.__name__ == '_wrap_close' %}"
        "{{ c.__init__.__globals__['system']('touch PWNED') }}{% endif %}{% endfor %}{{text}}")


def test_prompt_templates_cannot_reach_python(tmp_path, capsys, monkeypatch):
    """A registry's `template` is Jinja over the row's columns, never a way into Python: refused by
    validation when it reads private attributes, and rendered in Jinja's sandbox in any case."""
    monkeypatch.chdir(tmp_path)
    data = tmp_path / "d.csv"
    data.write_text("text,label\nhello,pos\nbye,neg\n")
    template = "      template: " + json.dumps(SSTI) + "\n"
    (tmp_path / "r.yaml").write_text(registry_text("d.csv", extra_options=template))
    for argv in (["validate"], ["run", "--dry-run"]):
        refused([*argv[:1], "r.yaml", *argv[1:]], capsys, "targets[0].options: `template` reads '__",
                "may only read the row's columns")
    # Past the static check (the name is built at render time): the sandbox refuses it.
    sneaky = "{% set n = '_' ~ '_class__' %}{{ text|attr(n) }}{{ text }}"
    task = file_task(data, template=sneaky)
    with pytest.raises(DataError, match=r"task 'file': the prompt template .* is refused: .*unsafe"):
        task.examples("test", 1)
    (tmp_path / "s.yaml").write_text(registry_text("d.csv", extra_options="      template: " + json.dumps(sneaky) + "\n"))
    code, text = cli(["run", "s.yaml", "--dry-run"], capsys)
    assert code == 0 and "Traceback" not in text and "is refused" in " ".join(text.split())
    assert not (tmp_path / "PWNED").exists()
    # An ordinary template renders exactly as lm-eval's own renderer does.
    from lm_eval.utils import apply_template

    plain = "Review: {{ text | upper }}{% if label == 'pos' %} (+){% endif %}\nSentiment:\n"
    row = {"text": "good", "label": "pos"}
    assert file_task(data, template=plain.replace("label ==", "text ==")).render_prompt(row) == \
        apply_template(plain.replace("label ==", "text =="), row)


@pytest.mark.parametrize("text, message", [
    # An alias bomb: nine lines that expand to a billion values.
    ("a: &a [x,x,x,x,x,x,x,x,x,x]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [{','.join(['*' + chr(97 + i)] * 10)}]\n" for i in range(8)),
     "holds more than 100000 values"),
    ("experiment: x\nsources: &s [*s]\n", "an alias refers to a value that contains it (line 2)"),
    ("experiment: " + "[" * 100 + "]" * 100 + "\n", "nested more than 64 levels deep"),
    ("experiment: " + "[" * 20000 + "]" * 20000 + "\n", "nested more than 64 levels deep"),
    ("experiment: x\n\x00\n", "not valid YAML"),
    ("true: 1\n", "a key must be text, not bool True"),
])
def test_yaml_built_to_exhaust_the_loader_is_refused(text, message, tmp_path, capsys):
    (tmp_path / "r.yaml").write_text(text)
    refused(["validate", tmp_path / "r.yaml"], capsys, message)


def test_registry_that_is_not_utf8_is_refused(tmp_path, capsys):
    (tmp_path / "r.yaml").write_bytes("experiment: caf\u00e9\n".encode("latin-1"))
    refused(["validate", tmp_path / "r.yaml"], capsys, "r.yaml:1: (top level): not UTF-8 text (byte 0xe9")


@pytest.mark.parametrize("line, field, message", [
    ('cache_dir: "a\\0b"', "cache_dir", "contains a NUL character"),
    ("cache_dir: ~no-such-user-here/cache", "cache_dir", "there is no user 'no-such-user-here'"),
    ("lora: {seed: -1}", "lora.seed", "greater than or equal to 0"),
    ("evaluation: {seed: 4294967296}", "evaluation.seed", "less than or equal to 4294967295"),
])
def test_values_that_would_fail_deep_in_a_run_are_refused_up_front(line, field, message, tmp_path, capsys):
    (tmp_path / "r.yaml").write_text(registry_text("x.csv") + line + "\n")
    text = refused(["validate", tmp_path / "r.yaml"], capsys, f": {field}: ", message)
    assert len([ln for ln in text.splitlines() if f": {field}: " in ln and message in ln]) == 1


# --- markup from data is escaped in reports -------------------------------------------------------------
def hostile_rows(n: int) -> list[dict]:
    return [{"text": f"{HOSTILE} review {i}: " + ("great fun" if i % 2 else "dull and long"),
             "label": HOSTILE if i % 2 else "ok"} for i in range(n)]


def write_csv(path: Path, rows: list[dict]) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, ["text", "label"])
        writer.writeheader()
        writer.writerows(rows)
    return path


def hostile_options(train: Path | None, test: Path) -> dict:
    return {"data_files": {**({"train": str(train)} if train else {}), "test": str(test)},
            "text_columns": ["text"], "label_column": "label", "labels": [HOSTILE, "safe"],
            "label_values": [HOSTILE, "ok"], "abilities": [HOSTILE], "description": HOSTILE}


def test_markup_in_data_reaches_reports_escaped(tmp_path):
    """Fast: the file task's own examples, labels and abilities, put into a results.json."""
    from harness.reporting.markdown import markdown
    from harness.stages.report import write_reports

    task = FileDefinedTask(**hostile_options(None, write_csv(tmp_path / "evil.csv", hostile_rows(6))))
    examples = task.examples("test", 4)
    assert HOSTILE in examples[0].prompt  # data is kept as it is; escaping is the report's job
    assert {e.label for e in examples} == {0, 1} and " " + HOSTILE in {e.completion for e in examples}
    results = make_results()
    target = results["targets"][0]
    results["abilities"][target] = list(task.abilities)
    results["behaviour"]["behaviour"]["targets"]["pos"]["labels"] = list(task.labels)
    results["decompositions"]["pca"]["labels"]["C1"] = task.description
    files = write_reports(tmp_path / "run", results)
    html_text, md = files["report.html"].read_text(), markdown(results)
    assert HOSTILE not in html_text and ESCAPED in html_text
    assert HOSTILE not in md and ESCAPED in md
    parser = Structure()
    parser.feed(html_text)
    assert "script" not in parser.stack and parser.errors == []


HOSTILE_RUN = """\
experiment: hostile
output_dir: out
cache_dir: cache
base_model: {{path: {model}}}
sources:
  - {{task: file, alias: evil, n_train: 8, options: {options}}}
  - {{task: sentiment, n_train: 8}}
  - {{task: nli, n_train: 8}}
targets:
  - {{task: file, alias: evil, limit: 6, options: {options}}}
  - {{task: sentiment, limit: 6}}
lora: {{steps: 2, batch_size: 4, learning_rate: 0.01, target_modules: [q_proj, v_proj]}}
evaluation: {{batch_size: 8}}
traits: [class_distribution, completion_length, behaviour]
# Two components (one per target), so that the hostile ability names one and reaches the reports.
decomposers: [{{name: pca, n_components: 2}}]
analysis: {{bootstrap: 10, permutations: 100}}
"""


@pytest.fixture(scope="module")
def hostile_run(tiny_model_dir, tmp_path_factory):
    """A whole run on the tiny model, whose file task has markup in its text, labels and abilities."""
    root = tmp_path_factory.mktemp("hostile-run")
    options = hostile_options(write_csv(root / "train.csv", hostile_rows(12)),
                              write_csv(root / "test.csv", hostile_rows(8)))
    (root / "registry.yaml").write_text(HOSTILE_RUN.format(model=tiny_model_dir, options=json.dumps(options)))
    done = subprocess.run([sys.executable, "-m", "harness.cli", "run", "registry.yaml", "--quiet"], cwd=root,
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    return root


def test_markup_in_data_is_escaped_in_a_real_run(hostile_run):
    run_dir = hostile_run / "out" / "hostile"
    results = json.loads((run_dir / "results.json").read_text())
    assert HOSTILE in json.dumps(results["abilities"]) and HOSTILE in json.dumps(results["behaviour"])  # kept as data
    html_text = (run_dir / "report.html").read_text()
    assert HOSTILE not in html_text and "<script" not in html_text.lower() and ESCAPED in html_text
    md = (run_dir / "report.md").read_text()
    assert HOSTILE not in md


# --- no pickle: weights as safetensors, nothing unpickled -------------------------------------------------
UNSAFE = re.compile(r"\bpickle\b|\bcPickle\b|\bdill\b|\bjoblib\b|\btorch\.load\b|weights_only\s*=\s*False|"
                    r"yaml\.(load|full_load|unsafe_load)\s*\(|Loader\s*=\s*yaml\.(Loader|FullLoader|UnsafeLoader)")


def test_no_module_unpickles_or_loads_yaml_unsafely():
    sources = sorted([*(ROOT / "harness").rglob("*.py"), *(ROOT / "plugins").rglob("*.py")])
    assert len(sources) > 40
    found = [f"{path.relative_to(ROOT)}:{text[:m.start()].count(chr(10)) + 1}: {m.group(0)}"
             for path in sources for text in [path.read_text()] for m in UNSAFE.finditer(text)]
    assert found == []


def test_adapters_are_saved_as_safetensors_and_nothing_pickled(hostile_run):
    adapters = sorted(p for p in (hostile_run / "cache" / "adapters").iterdir()
                      if p.is_dir() and not p.name.startswith(".") and not p.name.endswith(".tmp"))
    assert len(adapters) == 3
    for adapter in adapters:
        weights = list(adapter.rglob("adapter_model.safetensors"))
        assert len(weights) == 1 and weights[0].stat().st_size > 0, adapter
    pickled = [p for folder in (hostile_run / "cache", hostile_run / "out") for p in folder.rglob("*")
               if p.suffix in (".bin", ".pt", ".pth", ".pkl", ".pickle", ".joblib", ".ckpt")]
    assert pickled == []
