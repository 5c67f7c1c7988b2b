"""Real-data task plugins (FileTask subclasses) on tiny fixture files: reading every file type,
the lm-eval configs they produce, bad-data messages, and the registry-only `file` task. No model."""

from __future__ import annotations

import json
import warnings
from collections import Counter
from pathlib import Path

import pytest

from harness.api.filetasks import FileTask
from harness.errors import DataError
from harness_plugins.tasks.ag_news import AGNews
from harness_plugins.tasks.amazon_polarity import AmazonPolarity
from harness_plugins.tasks.boolq import BoolQ
from harness_plugins.tasks.code import Code
from harness_plugins.tasks.file import FileDefinedTask
from harness_plugins.tasks.goat import Goat
from harness_plugins.tasks.gsm8k import GSM8K, final_answer
from harness_plugins.tasks.imdb import IMDB
from harness_plugins.tasks.mnli import MNLI
from harness_plugins.tasks.toxicity import Toxicity
from helpers import CASES, SHARED_DATA, write


def in_file_order(task, split: str = "test") -> list:
    """Every example of ``split`` in the order of its file's rows: a task gives its rows in its seeded
    sample order, and the expectations here are written row by row."""
    _, rows = task.usable_rows(split)
    by_prompt = {e.prompt: e for e in task.examples(split, None)}
    return [by_prompt[task.render_prompt(row)] for row in rows]


def own_train_file(path: Path) -> dict[str, str]:
    """``data_files`` with ``path`` as test and a copy of it as train: two files, so the task reads
    every row of each (one file for both would be divided between the splits)."""
    train = path.with_name(f"train-{path.name}")
    train.write_bytes(path.read_bytes())
    return {"train": str(train), "test": str(path)}


def lm_eval_task(config: dict):
    """The config built by lm-eval itself, as the harness's evaluator builds it."""
    from lm_eval.tasks import TaskManager

    tasks = TaskManager(include_defaults=False).load([config])["tasks"]
    assert list(tasks) == [config["task"]]
    return tasks[config["task"]]


REUSED = {"sst2": "glue/sst2/default.yaml", "gsm8k": "gsm8k/gsm8k.yaml", "mnli": "glue/mnli/default.yaml",
          "paws": "glue/mrpc/default.yaml", "boolq": "super_glue/boolq/default.yaml", "arc_easy": "arc/arc_easy.yaml"}


@pytest.mark.parametrize("name", list(CASES))
def test_task_reads_its_file_and_loads_in_lm_eval(name, tmp_path):
    cls, fmt, rows = CASES[name]
    path = write(tmp_path / f"{name}.{fmt}", rows)
    train = write(tmp_path / f"train.{fmt}", rows)  # the same rows in a file of its own: no slice held out
    task = cls(data_files={"train": str(train), "test": str(path)})
    assert task.name == name and task.description and task.abilities and task.hub_dataset
    assert task.lm_eval_yaml == REUSED.get(name)

    examples = task.examples("test", len(rows))
    assert [e.prompt for e in examples] == [e[0] for e in task.train_pairs(len(rows))]
    config = task.lm_eval_config(tmp_path / "cache", len(rows))
    json.dumps(config)  # plain data: it enters cache keys (lm-eval's Python prompt functions do not)
    lm_task = lm_eval_task(config)
    docs = list(lm_task.test_docs())
    assert len(docs) == len(rows)
    first = task.clean_rows("test", 1)[0]
    assert lm_task.doc_to_text(docs[0]) == task.render_prompt(first) == examples[0].prompt
    for doc, ex in zip(docs, examples):
        assert lm_task.doc_to_text(doc) == ex.prompt
        if task.kind == "multiple_choice" and getattr(task, "choices_per_document", False):
            # each document's own options (ARC): the label is the right option's position
            assert lm_task.doc_to_target(doc) == ex.label
            assert ex.completion == " " + lm_task.doc_to_choice(doc)[ex.label]
        elif task.kind == "multiple_choice":
            assert lm_task.doc_to_choice(doc) == list(task.labels)
            assert lm_task.doc_to_target(doc) == ex.label
            assert ex.completion == " " + task.labels[ex.label]
        else:
            assert ex.completion.endswith("\n") and ex.answer
    if task.kind == "multiple_choice":
        assert all(0 <= e.label < len(task.labels) for e in examples)


def test_labels_from_names_indices_and_aliases(tmp_path):
    ag = AGNews(data_files={"test": str(write(tmp_path / "a.tsv", CASES["ag_news"][2]))})
    assert [e.label for e in in_file_order(ag)] == [2, 1, 3, 0]
    assert [e.completion for e in in_file_order(ag)[:2]] == [" business", " sports"]
    mnli = MNLI(data_files={"test": str(write(tmp_path / "m.jsonl", CASES["mnli"][2]))})
    assert [e.completion for e in in_file_order(mnli)] == [" True", " False", " Neither"]
    imdb = IMDB(data_files={"test": str(write(tmp_path / "i.csv", CASES["imdb"][2]))})
    assert [e.label for e in in_file_order(imdb)] == [1, 0, 1]
    # google/boolq's layout: a boolean `answer` column instead of `label`
    rows = [{"passage": "Sky is blue.", "question": "is the sky blue", "answer": True},
            {"passage": "Fish swim.", "question": "do fish fly", "answer": False}]
    boolq = BoolQ(data_files={"test": str(write(tmp_path / "b.jsonl", rows))})
    assert [e.completion for e in in_file_order(boolq)] == [" yes", " no"]


def test_amazon_title_is_optional(tmp_path):
    task = AmazonPolarity(data_files={"test": str(write(tmp_path / "a.parquet", CASES["amazon_polarity"][2]))})
    prompts = [e.prompt for e in in_file_order(task)]
    assert prompts[0] == "Title: Broke in a week\nReview: The handle snapped after two uses.\nSentiment:"
    assert prompts[1] == "Review: Works exactly as described, great value.\nSentiment:"


def test_mnli_prompt_is_lm_evals_own_function(tmp_path):
    import importlib.util

    import lm_eval

    spec = importlib.util.spec_from_file_location(
        "mnli_utils", Path(lm_eval.__file__).parent / "tasks" / "glue" / "mnli" / "utils.py")
    utils = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(utils)
    task = MNLI(data_files={"test": str(write(tmp_path / "m.jsonl", CASES["mnli"][2]))})
    for row, ex in zip(CASES["mnli"][2], in_file_order(task)):
        assert ex.prompt == utils.doc_to_text(row)


@pytest.mark.parametrize("fmt", ["csv", "tsv", "jsonl", "parquet"])
def test_every_file_type_gives_the_same_examples(fmt, tmp_path):
    rows = CASES["boolq"][2]
    reference = BoolQ(data_files={"test": str(write(tmp_path / "ref.jsonl", rows))}).examples("test", 2)
    task = BoolQ(data_files={"test": str(write(tmp_path / f"b.{fmt}", rows))})
    assert task.examples("test", 2) == reference
    lm_task = lm_eval_task(task.lm_eval_config(tmp_path / "cache", 2))
    assert len(list(lm_task.test_docs())) == 2


def test_splits_read_their_own_files(tmp_path):
    train = write(tmp_path / "train.csv", CASES["imdb"][2][:2])
    test = write(tmp_path / "test.csv", CASES["imdb"][2][2:])
    task = IMDB(data_files={"train": str(train), "test": str(test)})
    assert [p for p, _ in task.train_pairs(2)] == [e.prompt for e in task.examples("train", 2)]
    assert task.examples("test", 1)[0].prompt == "Review: I loved every minute of it.\nSentiment:"
    with pytest.raises(DataError, match=r"asked for 2 rows of 'test' but only 1 usable"):
        task.examples("test", 2)
    with pytest.raises(DataError, match=r"needs options.data_files.train.*columns text, label.*stanfordnlp/imdb"):
        IMDB(data_files={"test": str(test)}).train_pairs(1)


# --- bad data --------------------------------------------------------------------------------------
def test_missing_column_names_file_row_and_column(tmp_path):
    path = write(tmp_path / "bad.csv", [{"text": "Great film.", "stars": 1}])
    with pytest.raises(DataError) as err:
        IMDB(data_files={"test": str(path)}).examples("test", 1)
    assert str(err.value) == f"{path}: row 1, column 'label': missing value"


def test_missing_field_in_one_jsonl_row(tmp_path):
    rows = [dict(r) for r in CASES["mnli"][2]]
    rows[1]["hypothesis"] = None  # key left out of the second line
    path = write(tmp_path / "bad.jsonl", rows)
    with pytest.raises(DataError) as err:
        MNLI(data_files={"test": str(path)}).examples("test", 3)
    assert str(err.value) == f"{path}: row 2, column 'hypothesis': missing value"


def test_empty_value_names_file_row_and_column(tmp_path):
    rows = [dict(r) for r in CASES["ag_news"][2]]
    rows[2]["text"] = "   "
    path = write(tmp_path / "bad.tsv", rows)
    with pytest.raises(DataError) as err:
        AGNews(data_files={"test": str(path)}).examples("test", 4)
    assert str(err.value) == f"{path}: row 3, column 'text': empty value"


def test_unknown_label_names_file_row_and_column(tmp_path):
    rows = [dict(r) for r in CASES["ag_news"][2]]
    rows[3]["label"] = "Politics"
    path = write(tmp_path / "bad.tsv", rows)
    with pytest.raises(DataError) as err:
        AGNews(data_files={"test": str(path)}).examples("test", 4)
    assert str(err.value).startswith(f"{path}: row 4, column 'label': label 'Politics' is not in the label set")
    assert "'Sci/Tech'" in str(err.value)
    path = write(tmp_path / "bad.parquet", [{"premise": "p", "hypothesis": "h", "label": -1}])  # hub test split
    with pytest.raises(DataError, match=r"row 1, column 'label': label -1 is not in the label set"):
        MNLI(data_files={"test": str(path)}).examples("test", 1)


def test_skip_bad_rows_skips_and_counts(tmp_path):
    rows = [dict(r) for r in CASES["ag_news"][2]] + [{"text": "Markets slide.", "label": "Business"}]
    rows[1]["text"] = ""
    rows[2]["label"] = "Weather"
    path = write(tmp_path / "bad.tsv", rows)
    with pytest.raises(DataError, match="row 2, column 'text'"):
        AGNews(data_files={"test": str(path)}).examples("test", 3)
    task = AGNews(data_files={"test": str(path)}, skip_bad_rows=True)
    with pytest.warns(UserWarning, match=r"skipped 2 bad row\(s\) in .*bad.tsv \(skip_bad_rows is on\)"):
        examples = task.examples("test", 3)
    assert sorted(e.label for e in examples) == [0, 2, 2]
    # Every row is checked, not only until n are found: the sample is drawn from all usable rows.
    with pytest.warns(UserWarning, match=r"skipped 2 bad row\(s\)"):
        assert len(task.examples("test", 1)) == 1
    with pytest.raises(DataError, match="row 2, column 'text'"):
        AGNews(data_files={"test": str(path)}).examples("test", 1)


# --- generation tasks -------------------------------------------------------------------------------
def test_gsm8k_answer_extraction(tmp_path):
    assert final_answer("Step one.\nStep two.\n#### 72") == "72"
    assert final_answer("It costs $1,250.\n####  1,250 ") == "1250"
    assert final_answer("Falls to -3.\n#### -3") == "-3"
    assert final_answer("no marker here") is None
    task = GSM8K(data_files={"test": str(write(tmp_path / "g.jsonl", CASES["gsm8k"][2]))})
    examples = in_file_order(task)
    assert [e.answer for e in examples] == ["7", "1000", "-3"]
    assert examples[0].prompt == "Question: Tom has 3 apples and buys 4 more. How many apples does he have?\nAnswer:"
    assert examples[0].completion == " Tom has 3 + 4 = <<3+4=7>>7 apples.\n#### 7\n"  # the whole rationale
    assert task.metric() == "exact_match,flexible-extract"
    config = task.lm_eval_config(tmp_path / "cache", 3)
    assert "flexible-extract" in [f["name"] for f in config["filter_list"]]
    assert config["doc_to_target"] == "{{answer}}" and config["output_type"] == "generate_until"
    bad = write(tmp_path / "bad.jsonl", [{"question": "q?", "answer": "just a rationale, no final line"}])
    with pytest.raises(DataError) as err:
        GSM8K(data_files={"test": str(bad)}).examples("test", 1)
    assert str(err.value) == f"{bad}: row 1, column 'answer': no final answer after '####'"


def test_goat_answers_prompts_and_scoring(tmp_path):
    rows = CASES["goat"][2]
    path = write(tmp_path / "goat.jsonl", rows)
    task = Goat(data_files=own_train_file(path))
    examples = in_file_order(task)
    assert [e.answer for e in examples] == ["94140282", "23 R 36", "-888"]
    assert examples[1].prompt == "Compute 8914 divided by 386.\nAnswer:"
    assert examples[1].completion == " 23 R 36\n"
    assert task.metric() == "exact_match,extract"
    config = task.lm_eval_config(tmp_path / "cache", 3)
    assert config["doc_to_target"] == "{{harness_answer}}"  # the gold as exact match sees it
    lm_task = lm_eval_task(config)
    docs = list(lm_task.test_docs())
    assert [lm_task.doc_to_target(d) for d in docs] == [e.answer for e in task.examples("test", 3)]
    # what lm-eval's regex filter extracts from a model output equals the gold
    from harness.api.tasks import first_match

    assert first_match(task.answer_regex, " 23 R 36\nWhat is") == "23 R 36"
    assert first_match(task.answer_regex, " -888") == "-888"
    # the bare expression as prompt; the answer from `output` when there is no `answer` column
    bare = write(tmp_path / "bare.csv", [{k: v for k, v in r.items() if k != "answer"} for r in rows])
    task = Goat(data_files=own_train_file(bare), prompt_column="input")
    examples = in_file_order(task)
    assert examples[0].prompt == "94140209 + 73 =" and [e.answer for e in examples] == ["94140282", "23 R 36", "-888"]
    wrong = write(tmp_path / "wrong.csv", [{"instruction": "What is 2+2?", "answer": "four"}])
    with pytest.raises(DataError) as err:
        Goat(data_files={"test": str(wrong)}).examples("test", 1)
    assert str(err.value).startswith(f"{wrong}: row 1, column 'answer': answer 'four' is not a number")


def test_toxicity_labels_and_prompt_are_lm_evals_toxigen(tmp_path):
    import lm_eval
    from lm_eval.tasks._yaml_loader import load_yaml  # resolves `!function utils.doc_to_target`
    from lm_eval.utils import apply_template

    toxigen = load_yaml(Path(lm_eval.__file__).parent / "tasks" / "toxigen" / "toxigen.yaml")
    rows = CASES["toxicity"][2]
    path = write(tmp_path / "toxigen.csv", rows)  # labelled and scored rows mixed: empty cells
    task = Toxicity(data_files={"test": str(path)})
    examples = in_file_order(task)
    assert [e.label for e in examples] == [0, 1, 0, 1, 0]  # from `label`, then from the scores
    assert [e.completion for e in examples[:2]] == [" No", " Yes"]
    assert list(task.labels) == toxigen["doc_to_choice"]
    assert examples[0].prompt == ("Is the following statement hateful? Respond with either Yes or No. "
                                  "Statement: 'Everyone deserves to be treated with respect.'")
    for row, ex in zip(rows, examples):
        assert ex.prompt == apply_template(toxigen["doc_to_text"], row)
        if "toxicity_ai" in row:  # lm-eval's own target function on the hub's numbers
            assert ex.label == int(toxigen["doc_to_target"](row))
    # the hub's layout: scores only, no `label` column at all
    scored = write(tmp_path / "scored.jsonl", rows[2:])
    assert [e.label for e in in_file_order(Toxicity(data_files={"test": str(scored)}))] == [0, 1, 0]
    lm_task = lm_eval_task(task.lm_eval_config(tmp_path / "cache", 5))
    assert [lm_task.doc_to_target(d) for d in lm_task.test_docs()] == [e.label for e in task.examples("test", 5)]


def test_toxicity_row_without_label_or_scores_names_row_and_column(tmp_path):
    path = write(tmp_path / "bad.jsonl", [{"text": "Fine.", "label": 0}, {"text": "No verdict here."}])
    with pytest.raises(DataError) as err:
        Toxicity(data_files={"test": str(path)}).examples("test", 2)
    assert str(err.value) == f"{path}: row 2, column 'label': missing value"
    path = write(tmp_path / "half.jsonl", [{"text": "Only one score.", "toxicity_ai": 5.0}])
    with pytest.raises(DataError, match=r"row 1, column 'label': missing value"):
        Toxicity(data_files={"test": str(path)}).examples("test", 1)


def test_code_prompts_and_first_line_answers(tmp_path):
    from harness.api.tasks import first_match

    path = write(tmp_path / "code.jsonl", CASES["code"][2])
    task = Code(data_files=own_train_file(path))
    examples = in_file_order(task)
    assert [e.prompt for e in examples] == [
        "Instruction: Write a function that returns the square of a number.\nCode:",  # empty input: no Input line
        "Instruction: Reverse the given list in place.\nInput: nums = [1, 2, 3]\nCode:",
        "Instruction: Print a greeting.\nCode:"]
    assert [e.answer for e in examples] == ["def square(x):", "nums.reverse()", "print('Hello, world!')"]
    assert examples[0].completion == " def square(x):\n    return x * x\n"  # a source trains on all of it
    # what lm-eval's regex filter keeps of a model output (cut at the first newline) is its first line
    assert first_match(task.answer_regex, " def square(x):") == "def square(x):"
    assert first_match(task.answer_regex, "\n  print('Hello, world!')  \nmore") == "print('Hello, world!')"
    config = task.lm_eval_config(tmp_path / "cache", 3)
    assert config["output_type"] == "generate_until" and config["generation_kwargs"]["max_gen_toks"] == 64
    lm_task = lm_eval_task(config)
    docs = list(lm_task.test_docs())
    assert [lm_task.doc_to_text(d) for d in docs] == [e.prompt for e in task.examples("test", 3)]


def test_code_input_column_is_optional(tmp_path):
    """Only instruction and output are required: a file without an `input` column reads too."""
    path = write(tmp_path / "no_input.jsonl", [{"instruction": "Print 1.", "output": "print(1)"}])
    assert Code(data_files=own_train_file(path)).examples("test", 1)[0].prompt == "Instruction: Print 1.\nCode:"


def test_code_lm_eval_target_is_the_first_line(tmp_path):
    """lm-eval compares the filtered first line of the output with doc_to_target: that must be the
    first line of `output` too, or a model that writes the reference program scores 0."""
    task = Code(data_files=own_train_file(write(tmp_path / "code.jsonl", CASES["code"][2])))
    lm_task = lm_eval_task(task.lm_eval_config(tmp_path / "cache", 3))
    targets = [str(lm_task.doc_to_target(d)).strip() for d in lm_task.test_docs()]
    assert targets == [e.answer for e in task.examples("test", 3)]


# --- which rows a split gives ---------------------------------------------------------------------
def sorted_reviews(n_negative: int, n_positive: int) -> list[dict]:
    """An IMDB-like file sorted by label, as the hub's splits are: every negative review first."""
    return ([{"text": f"A dull, tedious film (review {i}).", "label": 0} for i in range(n_negative)]
            + [{"text": f"A moving, superb film (review {i}).", "label": 1} for i in range(n_positive)])


def test_a_label_sorted_file_gives_both_classes_in_proportion(tmp_path):
    path = write(tmp_path / "imdb.csv", sorted_reviews(60, 40))
    task = IMDB(data_files={"test": str(path)})
    sample = task.examples("test", 20)
    assert Counter(e.label for e in sample) == {0: 12, 1: 8}  # 60:40 as in the file; the first 20 are all 0
    # Largest remainder: 7 x 0.6 = 4.2 and 7 x 0.4 = 2.8 give 4 and 3; 33 gives 19.8 and 13.2, so 20 and 13.
    assert Counter(e.label for e in task.examples("test", 7)) == {0: 4, 1: 3}
    assert Counter(e.label for e in task.examples("test", 33)) == {0: 20, 1: 13}
    assert task.examples("test", 10) == sample[:10]  # a larger sample extends a smaller one
    assert IMDB(data_files={"test": str(path)}, seed=0).examples("test", 20) == sample  # same seed, same rows
    other = IMDB(data_files={"test": str(path)}, seed=1).examples("test", 20)
    assert Counter(e.label for e in other) == {0: 12, 1: 8}
    assert {e.prompt for e in other} != {e.prompt for e in sample}  # another seed, other rows
    every = {e.prompt for e in task.examples("test", 100)}
    assert len(every) == 100 and every == {e.prompt for e in task.examples("test", None)}


def test_stratified_sample_of_three_classes_is_the_largest_remainder(tmp_path):
    rows = ([{"text": f"Markets rally ({i}).", "label": "Business"} for i in range(50)]
            + [{"text": f"The home side wins ({i}).", "label": "Sports"} for i in range(30)]
            + [{"text": f"Talks in Geneva ({i}).", "label": "World"} for i in range(20)])
    task = AGNews(data_files={"test": str(write(tmp_path / "ag.tsv", rows))})
    # 7 rows: quotas 3.5, 2.1, 1.4; the seat left over goes to the largest remainder, Business's 0.5.
    counts = Counter(task.labels[e.label] for e in task.examples("test", 7))
    assert counts == {"business": 4, "sports": 2, "world": 1}
    from harness.api.filetasks import largest_remainder, stratified_sequence

    assert largest_remainder([50, 30, 20, 0], 7) == [4, 2, 1, 0]
    sequence = stratified_sequence([5, 3, 2], 10)
    for k in range(1, 11):  # every prefix is the largest-remainder allocation here (no Alabama paradox)
        assert [sequence[:k].count(c) for c in range(3)] == largest_remainder([5, 3, 2], k)


def test_generation_rows_are_a_seeded_sample(tmp_path):
    rows = [{"question": f"What is {i} + {i}?", "answer": f"{i} + {i} = {2 * i}\n#### {2 * i}"} for i in range(50)]
    path = write(tmp_path / "g.jsonl", rows)
    sample = [e.answer for e in GSM8K(data_files={"test": str(path)}).examples("test", 10)]
    assert sample != [str(2 * i) for i in range(10)]  # not the first ten rows
    assert sample == [e.answer for e in GSM8K(data_files={"test": str(path)}).examples("test", 10)]
    assert sample[:4] == [e.answer for e in GSM8K(data_files={"test": str(path)}).examples("test", 4)]
    assert set(sample) != {e.answer for e in GSM8K(data_files={"test": str(path)}, seed=7).examples("test", 10)}


def test_a_single_class_selection_warns(tmp_path):
    path = write(tmp_path / "pos.csv", sorted_reviews(0, 5))
    with pytest.warns(UserWarning, match=r"all 3 test rows selected from .*pos.csv have the label 'positive'"):
        IMDB(data_files={"test": str(path)}).examples("test", 3)
    mixed = write(tmp_path / "mixed.csv", sorted_reviews(3, 3))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a sample of both classes: nothing to say
        IMDB(data_files={"test": str(mixed)}).examples("test", 2)


def goat_rows(n: int) -> list[dict]:
    return [{"instruction": f"What is {i}+{i + 1}?", "input": f"{i} + {i + 1}", "answer": str(2 * i + 1)}
            for i in range(n)]


@pytest.mark.parametrize("splits", [("train", "test"), ("train",), ("test",)])
def test_one_goat_file_is_divided_between_train_and_test(splits, tmp_path):
    path = write(tmp_path / "goat.jsonl", goat_rows(200))
    task = Goat(data_files={split: str(path) for split in splits})
    train, test = ({e.answer for e in task.examples(split, None)} for split in ("train", "test"))
    assert not train & test and len(train | test) == 200
    assert 40 <= len(test) <= 80  # test_share 0.3
    # A target entry with another seed and prompt column holds out the same rows: no row in both.
    target = Goat(data_files={"test": str(path)}, seed=5, prompt_column="input")
    assert {e.answer for e in target.examples("test", None)} == test
    with pytest.raises(DataError, match=r"only \d+ usable ones exist \(train and test read the same rows"):
        task.examples("test", 100)


def test_any_file_task_given_one_file_for_both_splits_divides_it(tmp_path):
    path = str(write(tmp_path / "reviews.csv", sorted_reviews(50, 50)))
    tasks = [IMDB(data_files={"train": path, "test": path}),
             FileDefinedTask(data_files={"train": path, "test": path}, text_columns=["text"], label_column="label",
                             labels=["bad", "good"])]
    for task in tasks:
        train, test = ({e.prompt for e in task.examples(split, None)} for split in ("train", "test"))
        assert train and test and not train & test and len(train | test) == 100


def test_the_hubs_single_split_is_divided(tmp_path, monkeypatch):
    """Without files, goat and code read the hub's only split (`train`) for test too."""
    rows = {Goat: goat_rows(100),
            Code: [{"instruction": f"Print {i}.", "input": "", "output": f"print({i})"} for i in range(100)]}
    monkeypatch.setattr(FileTask, "hub_rows", lambda self, split: (f"hub[{self.hub_splits[split]}]", rows[type(self)]))
    for cls in rows:
        task = cls()
        train, test = ({e.prompt for e in task.examples(split, None)} for split in ("train", "test"))
        assert train and test and not train & test and len(train | test) == 100


def test_separate_files_are_read_whole(tmp_path):
    rows = goat_rows(30)
    files = {split: str(write(tmp_path / f"{split}.jsonl", rows[i::2])) for i, split in enumerate(("train", "test"))}
    task = Goat(data_files=files)
    assert not task.shares_rows()
    assert len(task.examples("train", None)) == len(task.examples("test", None)) == 15


def test_the_selection_enters_the_fingerprint(tmp_path):
    path = str(write(tmp_path / "imdb.csv", sorted_reviews(3, 3)))

    class FirstRows(IMDB):  # the selection of before: a cell cached for it must not be reused
        selection_version = 1

    assert FirstRows(data_files={"test": path}).fingerprint() != IMDB(data_files={"test": path}).fingerprint()


# --- the `file` task ----------------------------------------------------------------------------------
def test_file_task_end_to_end_on_csv(tmp_path):
    from harness.api.plugins import catalog

    path = write(tmp_path / "reviews.csv", [
        {"review": "Terrible, broke at once.", "stars": 1},
        {"review": "Best purchase this year!", "stars": 5},
        {"review": "Not worth the money.", "stars": 1},
    ])
    options = {"data_files": own_train_file(path), "text_columns": ["review"],
               "label_column": "stars", "labels": ["negative", "positive"], "label_values": ["1", "5"],
               "template": "Review: {{review}}\nSentiment:", "abilities": ["sentiment"]}
    cls = catalog().get("task", "file").obj
    assert cls is FileDefinedTask
    task = cls(**options)
    assert (task.kind, task.labels, task.abilities) == ("multiple_choice", ("negative", "positive"), ("sentiment",))
    assert task.metric() == "acc,none"
    examples = task.examples("test", 3)
    assert [(e.prompt, e.completion, e.label) for e in in_file_order(task)] == [
        ("Review: Terrible, broke at once.\nSentiment:", " negative", 0),
        ("Review: Best purchase this year!\nSentiment:", " positive", 1),
        ("Review: Not worth the money.\nSentiment:", " negative", 0)]
    assert task.train_pairs(3) == [(e.prompt, e.completion) for e in examples]  # the same rows, the same draw
    config = task.lm_eval_config(tmp_path / "cache", 3, alias="reviews")
    lm_task = lm_eval_task(config)
    docs = list(lm_task.test_docs())
    assert len(docs) == 3 and lm_task.doc_to_text(docs[0]) == task.render_prompt(task.clean_rows("test", 1)[0])
    assert [lm_task.doc_to_target(d) for d in docs] == [e.label for e in examples]
    assert lm_task.doc_to_choice(docs[0]) == ["negative", "positive"]
    # numbers in YAML (`label_values: [1, 5]`) mean the same; other options, other data: another fingerprint
    same = cls(**{**options, "label_values": [1, 5]})
    assert same.examples("test", 3) == examples and same.fingerprint() == task.fingerprint()
    assert cls(**{**options, "labels": ["bad", "good"]}).fingerprint() != task.fingerprint()
    # a star value outside the label set stops with file, row and column
    write(path, [{"review": "Fine.", "stars": 5}, {"review": "Meh.", "stars": 3}])
    with pytest.raises(DataError) as err:
        cls(**options).examples("test", 2)
    assert str(err.value).startswith(f"{path}: row 2, column 'stars': label '3' is not in the label set ['1', '5']")


def test_file_task_generation(tmp_path):
    path = write(tmp_path / "sums.csv", [{"question": "What is 2 + 3?", "result": " 5 "},
                                         {"question": "What is 10 - 12?", "result": "-2"}])
    task = FileDefinedTask(data_files={"test": str(path)}, text_columns=["question"], answer_column="result",
                           abilities=["arithmetic"], max_gen_toks=8, description="Tiny sums.")
    assert (task.kind, task.labels, task.abilities, task.description) == ("generation", (), ("arithmetic",), "Tiny sums.")
    assert task.metric() == "exact_match,extract"
    examples = in_file_order(task)
    assert examples[0].prompt == "question: What is 2 + 3?\nAnswer:"  # the default template
    assert [(e.completion, e.answer) for e in examples] == [(" 5\n", "5"), (" -2\n", "-2")]
    config = task.lm_eval_config(tmp_path / "cache", 2, alias="sums")
    assert config["generation_kwargs"]["max_gen_toks"] == 8
    assert config["filter_list"][0]["filter"][0]["regex_pattern"] == r"(-?\d+)"
    lm_task = lm_eval_task(config)
    assert sorted(lm_task.doc_to_target(d) for d in lm_task.test_docs()) == ["-2", "5"]
    bad = write(tmp_path / "bad.csv", [{"question": "What is 2 + 3?", "result": "5 apples"}])
    with pytest.raises(DataError) as err:
        FileDefinedTask(data_files={"test": str(bad)}, text_columns=["question"], answer_column="result").examples("test", 1)
    assert str(err.value).startswith(f"{bad}: row 1, column 'result': answer '5 apples' is not what answer_regex")


@pytest.mark.parametrize("options, message", [
    ({"text_columns": ["a"]}, "give exactly one of `label_column`"),
    ({"text_columns": ["a"], "label_column": "b", "answer_column": "c"}, "give exactly one of `label_column`"),
    ({"text_columns": ["a"], "label_column": "b"}, "needs `labels`"),
    ({"text_columns": ["a"], "label_column": "b", "labels": ["x", "y"], "label_values": ["1"]},
     "`label_values` has 1 values but `labels` has 2"),
    ({"text_columns": ["a"], "label_column": "b", "labels": ["x", "x"]}, "`labels` must be distinct"),
    ({"text_columns": ["a"], "label_column": "a", "labels": ["x", "y"]}, "both a text column and the label column"),
    ({"text_columns": ["a"], "answer_column": "b", "labels": ["x", "y"]}, "are for classification"),
    ({"text_columns": ["a"], "answer_column": "b", "answer_regex": "(\\d"}, "not a valid regular expression"),
    ({"text_columns": ["a"], "answer_column": "b", "kind": "multiple_choice"}, "contradicts `answer_column`"),
    ({"text_columns": ["a"], "answer_column": "b", "template": "Q: {{question}}"}, "uses 'question', not in `text_columns`"),
    ({"text_columns": ["a"], "answer_column": "b", "template": "Q: {{a"}, "not valid Jinja"),
    ({"text_columns": [], "answer_column": "b"}, "text_columns"),
    ({"text_columns": ["a"], "answer_column": "b", "colour": "red"}, "colour"),
])
def test_file_task_options_are_validated(options, message):
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match=message.replace("(", r"\(").replace("[", r"\[")):
        FileDefinedTask(**options)


def test_file_task_without_data_file_says_what_to_give():
    task = FileDefinedTask(text_columns=["review"], label_column="stars", labels=["neg", "pos"])
    with pytest.raises(DataError, match=r"task 'file' needs options.data_files.test: .* columns review, stars"):
        task.examples("test", 1)


def test_all_real_data_tasks_are_registered():
    from harness.api.plugins import catalog

    cat = catalog()
    for name in [*CASES, "file"]:
        entry = cat.get("task", name)
        assert entry.obj.name == name and entry.description
        assert entry.module == f"harness_plugins.tasks.{name}"


# --- the shared real-data copies --------------------------------------------------------------------
def shared(folder: str, name: str) -> Path:
    path = SHARED_DATA / folder / name
    if not path.is_file():
        pytest.skip(f"real data not available: {path} is absent (see ../shared/data/README.md)")
    return path


@pytest.mark.parametrize("task_cls, folder, suffix", [(None, "sst2", "tsv"), (AGNews, "agnews", "tsv"),
                                                      (GSM8K, "gsm8k", "jsonl")])
def test_shared_real_data(task_cls, folder, suffix, tmp_path):
    if task_cls is None:
        from harness_plugins.tasks.sst2 import SST2 as task_cls
    test, train = shared(folder, f"test.{suffix}"), shared(folder, f"train.{suffix}")
    task = task_cls(data_files={"train": str(train), "test": str(test)})
    examples = task.examples("test", 50)
    assert len(examples) == 50 and len({e.prompt for e in examples}) > 45
    assert len(task.train_pairs(50)) == 50
    if task.kind == "multiple_choice":
        labels = [e.label for e in examples]
        assert all(0 <= label < len(task.labels) for label in labels)
        assert len(set(labels)) > 1
    else:
        assert all(e.answer.lstrip("-").replace(".", "").isdigit() for e in examples)
    lm_task = lm_eval_task(task.lm_eval_config(tmp_path / "cache", 50))
    docs = list(lm_task.test_docs())
    assert len(docs) == 50 and lm_task.doc_to_text(docs[0]) == examples[0].prompt
