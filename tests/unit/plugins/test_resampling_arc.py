"""Training rows resampled to chosen label shares (the real-data class-balance twin), and the
arc_easy task on its official schema and on the shared ARC-Easy copy. No model."""

from __future__ import annotations

from collections import Counter

import pytest

from harness.errors import DataError
from harness_plugins.tasks.ag_news import AGNews
from harness_plugins.tasks.arc_easy import ARCEasy
from harness_plugins.tasks.file import FileDefinedTask
from harness_plugins.tasks.sst2 import SST2
from helpers import SHARED_DATA, write


def phrases(n_negative: int, n_positive: int) -> list[dict]:
    return ([{"sentence": f"a dull, tired film ({i})", "label": 0} for i in range(n_negative)]
            + [{"sentence": f"a moving, superb film ({i})", "label": 1} for i in range(n_positive)])


def test_class_balance_resamples_training_rows_to_the_share(tmp_path):
    files = {"train": str(write(tmp_path / "train.tsv", phrases(100, 100))),
             "test": str(write(tmp_path / "test.tsv", phrases(30, 30)))}
    twin = SST2(data_files=files, class_balance=0.9)
    for n in (10, 37, 100):  # every size holds the share as nearly as whole rows allow
        labels = Counter(e.label for e in twin.examples("train", n))
        assert labels[1] == round(0.9 * n) and labels[0] == n - round(0.9 * n)
    # Deterministic by the task seed; another seed draws other rows at the same shares.
    first = twin.examples("train", 50)
    assert first == SST2(data_files=files, class_balance=0.9).examples("train", 50)
    other = SST2(data_files=files, class_balance=0.9, seed=3).examples("train", 50)
    assert Counter(e.label for e in other) == Counter(e.label for e in first)
    assert {e.prompt for e in other} != {e.prompt for e in first}
    assert len({e.prompt for e in first}) == 50  # drawn without replacement
    # Test rows are never resampled: the twin scores on what its balanced twin scores on.
    assert twin.examples("test", 20) == SST2(data_files=files).examples("test", 20)
    # Without n: as many rows as the rarer label allows (100 positives at 0.9: 111 rows, 11 negative).
    every = Counter(e.label for e in twin.examples("train", None))
    assert every == {1: 100, 0: 11}


def test_label_shares_on_four_labels_and_the_file_task(tmp_path):
    names = ["World", "Sports", "Business", "Sci/Tech"]
    rows = [{"text": f"{name} story {i}", "label": name} for name in names for i in range(40)]
    task = AGNews(data_files={"train": str(write(tmp_path / "ag.tsv", rows))}, label_shares=[0.7, 0.1, 0.1, 0.1])
    assert Counter(e.label for e in task.examples("train", 50)) == {0: 35, 1: 5, 2: 5, 3: 5}
    file_task = FileDefinedTask(data_files={"train": str(write(tmp_path / "r.csv", phrases(20, 20)))},
                                text_columns=["sentence"], label_column="label", labels=["bad", "good"],
                                class_balance=0.25)
    assert Counter(e.label for e in file_task.examples("train", 20)) == {0: 15, 1: 5}


def test_resampling_refuses_what_the_file_cannot_supply(tmp_path):
    files = {"train": str(write(tmp_path / "train.tsv", phrases(100, 20)))}
    with pytest.raises(DataError, match=r"need 45 rows labelled 'positive', but the file has 20; lower n_train to "
                                        r"at most 22"):
        SST2(data_files=files, class_balance=0.9).examples("train", 50)
    rows = [{"text": f"story {i}", "label": "World"} for i in range(10)]
    with pytest.raises(DataError, match="task has 4 labels"):
        AGNews(data_files={"train": str(write(tmp_path / "ag.tsv", rows))}, class_balance=0.9).examples("train", 5)
    with pytest.raises(ValueError, match="summing to 1"):
        SST2(label_shares=[0.5, 0.6])
    with pytest.raises(ValueError, match="not both"):
        SST2(label_shares=[0.5, 0.5], class_balance=0.5)


def test_default_leaves_the_fingerprint_and_rows_unchanged(tmp_path):
    files = {"train": str(write(tmp_path / "train.tsv", phrases(60, 40)))}
    plain = SST2(data_files=files)
    # The options dump without the new fields is what fingerprints were made of before they existed.
    import hashlib
    import json

    from harness.api.filetasks import FileTask

    options = {k: v for k, v in plain.options.model_dump(mode="json").items()
               if k not in ("class_balance", "label_shares")}
    before = hashlib.sha256(json.dumps({"task": "sst2", "version": plain.version, "options": options},
                                       sort_keys=True).encode()).hexdigest()[:16]
    assert plain.fingerprint_options() == options
    assert FileTask.fingerprint(plain) != SST2(data_files=files, class_balance=0.6).fingerprint()
    assert super(FileTask, plain).fingerprint() == before
    assert Counter(e.label for e in plain.examples("train", 20)) == {0: 12, 1: 8}  # the file's own shares
    schema = SST2.Options.model_json_schema()["properties"]
    assert schema["class_balance"]["statistic"] == schema["label_shares"]["statistic"] == "class_balance"


OFFICIAL = [
    {"id": "q1", "question": {"stem": "Which is a mammal?", "choices": [
        {"text": "shark", "label": "A"}, {"text": "whale", "label": "B"}, {"text": "trout", "label": "C"}]},
     "answerKey": "B"},
    {"id": "q2", "question": {"stem": "What do plants need for photosynthesis?", "choices": [
        {"text": "sunlight", "label": "1"}, {"text": "sand", "label": "2"}, {"text": "salt", "label": "3"},
        {"text": "smoke", "label": "4"}]}, "answerKey": "1"},
]


def test_arc_easy_reads_the_official_schema_and_loads_in_lm_eval(tmp_path):
    from lm_eval.tasks import TaskManager

    path = write(tmp_path / "arc.jsonl", OFFICIAL)
    task = ARCEasy(data_files={"test": str(path)})
    by_id = {row["id"]: row for row in task.clean_rows("test")}
    assert by_id["q1"]["label"] == 1 and by_id["q2"]["label"] == 0  # digit keys: the position counts
    config = task.lm_eval_config(tmp_path / "data", 2)
    lm_task = TaskManager(include_defaults=False).load([config])["tasks"][config["task"]]
    doc = next(iter(lm_task.test_docs()))
    row = next(r for r in task.clean_rows("test") if r["id"] == doc["id"])
    assert lm_task.doc_to_text(doc) == f"Question: {row['question']}\nAnswer:" == task.render_prompt(row)
    assert lm_task.doc_to_choice(doc) == row["choices"]["text"] and lm_task.doc_to_target(doc) == row["label"]
    assert task.metric() == "acc,none"
    pairs = dict((p.split("\n")[0], c) for p, c in
                 ARCEasy(data_files={"train": str(write(tmp_path / "t.jsonl", OFFICIAL))}).train_pairs(2))
    assert pairs == {"Question: Which is a mammal?": " whale", "Question: What do plants need for photosynthesis?": " sunlight"}


def test_arc_easy_bad_rows_name_row_and_column(tmp_path):
    bad = [{**OFFICIAL[0], "answerKey": "D"}]
    with pytest.raises(DataError, match=r"row 1, column 'answerKey': 'D' is not one of the option labels"):
        ARCEasy(data_files={"test": str(write(tmp_path / "bad.jsonl", bad))}).examples("test", 1)
    empty = [{**OFFICIAL[0], "question": {"stem": " ", "choices": OFFICIAL[0]["question"]["choices"]}}]
    with pytest.raises(DataError, match=r"row 1, column 'question': empty value"):
        ARCEasy(data_files={"test": str(write(tmp_path / "e.jsonl", empty))}).examples("test", 1)


def test_arc_easy_on_the_shared_copy(tmp_path):
    train, test = SHARED_DATA / "arc_easy" / "train.jsonl", SHARED_DATA / "arc_easy" / "test.jsonl"
    if not (train.is_file() and test.is_file()):
        pytest.skip(f"real data not available: {SHARED_DATA / 'arc_easy'} is absent (see ../shared/data/README.md)")
    task = ARCEasy(data_files={"train": str(train), "test": str(test)})
    assert len(task.clean_rows("train")) == 2251 and len(task.clean_rows("test")) == 1000
    examples = task.examples("test", 100)
    assert len({e.prompt for e in examples}) == 100 and len({e.label for e in examples}) >= 3
    assert all(e.prompt.startswith("Question: ") and e.prompt.endswith("\nAnswer:") for e in examples)
    from lm_eval.tasks import TaskManager

    config = task.lm_eval_config(tmp_path / "data", 100)
    lm_task = TaskManager(include_defaults=False).load([config])["tasks"][config["task"]]
    docs = list(lm_task.test_docs())
    assert len(docs) == 100
    assert [lm_task.doc_to_text(d) for d in docs] == [e.prompt for e in examples]
    assert [lm_task.doc_to_target(d) for d in docs] == [e.label for e in examples]
    # Train pairs answer with the right option's own text.
    rows = task.clean_rows("train", 5)
    assert [c for _, c in task.train_pairs(5)] == [" " + r["choices"]["text"][r["label"]] for r in rows]
