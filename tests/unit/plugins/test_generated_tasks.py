"""The built-in generated tasks: determinism, disjoint splits, well-formed and correct examples."""

import json
import re
from collections import Counter

import pytest
from pydantic import ValidationError

from harness.api.tasks import GeneratedTask
from harness_plugins.tasks import arithmetic, nli, ordering, paraphrase, sentiment, sentiment3, topic, word_problems

TASKS = [arithmetic.Arithmetic, word_problems.WordProblems, word_problems.WordProblemsRationale,
         sentiment.Sentiment, sentiment3.Sentiment3, nli.NLI, paraphrase.Paraphrase,
         ordering.Ordering, topic.Topic]
MODULES = [arithmetic, word_problems, sentiment, sentiment3, nli, paraphrase, ordering, topic]
ids = [cls.name for cls in TASKS]
RATIONALE = (word_problems.WordProblemsRationale,)  # generation tasks that work before answering


@pytest.fixture(scope="module")
def splits():
    """train (1000) and test (300) examples of every task with default options, computed once."""
    return {cls.name: (cls().examples("train", 1000), cls().examples("test", 300)) for cls in TASKS}


@pytest.mark.parametrize("module", MODULES, ids=[m.__name__.rsplit(".", 1)[1] for m in MODULES])
def test_module_registers_its_tasks(module):
    registered = []
    module.register_tasks(register=registered.append)
    assert registered == [cls for cls in TASKS if cls.__module__ == module.__name__]
    for cls in registered:
        assert issubclass(cls, GeneratedTask) and cls.name.isidentifier()
        assert cls.description and "\n" not in cls.description and cls.abilities
        assert cls.kind in ("multiple_choice", "generation")
        assert (len(cls.labels) >= 2) == (cls.kind == "multiple_choice")


@pytest.mark.parametrize("cls", TASKS, ids=ids)
def test_examples_are_deterministic_across_instances(cls):
    assert cls().examples("train", 200) == cls().examples("train", 200)
    assert cls(seed=3).examples("test", 50) == cls(seed=3).examples("test", 50)
    # A split does not depend on how many examples were asked for.
    assert cls().examples("train", 50) == cls().examples("train", 200)[:50]


@pytest.mark.parametrize("cls", TASKS, ids=ids)
def test_splits_are_disjoint_and_distinct(cls, splits):
    train, test = splits[cls.name]
    assert len(train) == 1000 and len(test) == 300
    train_prompts, test_prompts = {e.prompt for e in train}, {e.prompt for e in test}
    assert len(train_prompts) == 1000 and len(test_prompts) == 300
    assert not train_prompts & test_prompts


@pytest.mark.parametrize("cls", TASKS, ids=ids)
def test_enough_distinct_examples(cls):
    task = cls()
    assert len({e.prompt for e in task.examples("train", 3000)}) == 3000
    assert len({e.prompt for e in task.examples("test", 500)}) == 500


@pytest.mark.parametrize("cls", TASKS, ids=ids)
def test_examples_are_well_formed(cls, splits):
    for ex in splits[cls.name][0] + splits[cls.name][1]:
        assert ex.prompt.strip() and ex.completion.startswith(" ")
        assert len(ex.prompt.split()) <= 40  # prompts stay short: eval runs on CPUs
        if cls.kind == "multiple_choice":
            assert type(ex.label) is int and 0 <= ex.label < len(cls.labels)
            assert ex.answer is None and ex.completion == " " + cls.labels[ex.label]
        else:
            assert ex.label is None and ex.completion.endswith(f" {ex.answer}\n")
            assert ex.completion.count("\n") == 1  # one line: lm-eval stops at the newline
            if cls not in RATIONALE:
                assert ex.completion == f" {ex.answer}\n"
            match = re.search(cls.answer_regex, ex.completion)
            assert match and match.group(1) == ex.answer
            assert ex.prompt.endswith(("=", "Answer:"))


@pytest.mark.parametrize("cls", TASKS, ids=ids)
def test_different_seeds_give_different_data(cls):
    a = [e.prompt for e in cls(seed=0).examples("train", 100)]
    b = [e.prompt for e in cls(seed=1).examples("train", 100)]
    assert len(set(a) & set(b)) < 50


@pytest.mark.parametrize("cls", [c for c in TASKS if c.kind == "multiple_choice"],
                         ids=[c.name for c in TASKS if c.kind == "multiple_choice"])
def test_labels_are_balanced_by_default(cls, splits):
    counts = Counter(e.label for e in splits[cls.name][0])
    assert set(counts) == set(range(len(cls.labels)))
    for c in counts.values():
        assert abs(c / 1000 - 1 / len(cls.labels)) < 0.06


@pytest.mark.parametrize("cls", TASKS, ids=ids)
def test_lm_eval_config_writes_its_test_split(cls, tmp_path):
    config = cls().lm_eval_config(tmp_path, 20)
    assert isinstance(config, dict) and config["task"] == cls.name
    path = config["dataset_kwargs"]["data_files"]["test"]
    rows = [json.loads(line) for line in open(path).read().splitlines()]
    assert len(rows) == 20
    assert [r["prompt"] for r in rows] == [e.prompt for e in cls().examples("test", 20)]
    if cls.kind == "multiple_choice":
        assert config["output_type"] == "multiple_choice"
        assert config["doc_to_choice"] == list(cls.labels)
        assert all(isinstance(r["label"], int) for r in rows)
    else:
        assert config["output_type"] == "generate_until"
        assert config["generation_kwargs"]["max_gen_toks"] == cls.max_gen_toks
        assert all(re.fullmatch(r"-?\d+", r["answer"]) for r in rows)


# --- task-specific correctness ----------------------------------------------------------------

@pytest.mark.parametrize("options", [{}, {"digits": 1}, {"digits": 3, "operators": ["*"]},
                                     {"digits": 6, "operators": ["+", "-", "*"]}])
def test_arithmetic_answers_are_correct(options):
    task = arithmetic.Arithmetic(**options)
    digits, ops = task.options.digits, set(task.options.operators)
    n = 100 if digits == 1 else 300  # one digit allows only 155 distinct problems in all
    for ex in task.examples("train", n):
        m = re.fullmatch(r"Calculate: (\d+) ([-+*]) (\d+) =", ex.prompt)
        assert m, ex.prompt
        a, op, b = m.groups()
        assert op in ops and len(a) == len(b) == digits
        assert int(ex.answer) == eval(f"{a} {op} {b}") >= 0
        assert len(ex.answer) + 2 <= task.max_gen_toks


def test_arithmetic_options_are_validated():
    with pytest.raises(ValidationError):
        arithmetic.Arithmetic(digits=7)
    with pytest.raises(ValidationError):
        arithmetic.Arithmetic(operators=["/"])
    with pytest.raises(ValidationError):
        arithmetic.Arithmetic(operators=[])
    assert arithmetic.Arithmetic().fingerprint() != arithmetic.Arithmetic(digits=3).fingerprint()


# Independent of the generator: the verb of each clause says whether the count rises or falls.
UP, DOWN = ("buys", "finds", "gets", "wins", "receives"), ("gives", "loses", "sells", "trades")


def _solve_word_problem(prompt: str) -> int:
    first, body, question = prompt.split(". ", 2)
    count = int(re.fullmatch(r"\w+ has (\d+) [a-z ]+", first).group(1))
    assert question.startswith("How many ")
    for clause in re.split(r", | and ", body):
        (n,) = map(int, re.findall(r"\d+", clause))
        verbs = set(clause.split())
        assert bool(verbs & set(UP)) != bool(verbs & set(DOWN)), clause
        count += n if verbs & set(UP) else -n
        assert count >= 0
    return count


@pytest.mark.parametrize("steps", [2, 3])
def test_word_problem_answers_are_correct(steps):
    task = word_problems.WordProblems(steps=steps)
    for ex in task.examples("train", 300) + task.examples("test", 100):
        assert ex.prompt.endswith("\nAnswer:")
        assert len(re.split(r", | and ", ex.prompt.split(". ")[1])) == steps
        assert re.fullmatch(r"\d+", ex.answer)
        assert _solve_word_problem(ex.prompt) == int(ex.answer)
    with pytest.raises(ValidationError):
        word_problems.WordProblems(steps=4)


@pytest.mark.parametrize("balance", [0.8, 0.2])
def test_sentiment_class_balance(balance):
    examples = sentiment.Sentiment(class_balance=balance).examples("train", 2000)
    assert sum(e.label == 1 for e in examples) == round(2000 * balance)  # exactly, not roughly
    for n in (10, 37, 500):  # and for every prefix, within one example
        assert abs(sum(e.label == 1 for e in examples[:n]) - balance * n) < 1
    with pytest.raises(ValidationError):
        sentiment.Sentiment(class_balance=1.0)


def test_sentiment_structure_decides(splits):
    def polarity(clause):
        words = set(re.findall(r"[a-z]+", clause))
        if words & set(sentiment.NEGATIVE) or "not" in words:
            return 0
        assert words & set(sentiment.POSITIVE), clause
        return 1

    forms = {"but": 0, "although": 0, "anything but": 0, "plain": 0}
    for ex in splits["sentiment"][0]:
        text = ex.prompt.removeprefix("Review: ").removesuffix("\nSentiment:")
        if " anything but " in text:
            forms["anything but"] += 1
            assert 1 - polarity(text) == ex.label  # the adjective's polarity, inverted
        elif ", but " in text:
            forms["but"] += 1
            first, second = text.split(", but ")
            assert polarity(first) != polarity(second) == ex.label
        elif ", although " in text:
            forms["although"] += 1
            first, second = text.split(", although ")
            assert polarity(second) != polarity(first) == ex.label
        else:
            forms["plain"] += 1
            assert all(polarity(c) == ex.label for c in text.split(" and "))
    n = sum(forms.values())
    assert all(count > 0.1 * n for count in forms.values()), forms  # every form is well represented


@pytest.mark.parametrize("entities", [3, 4])
def test_ordering_answers_follow_the_chain(entities):
    task = ordering.Ordering(entities=entities)
    for ex in task.examples("train", 300):
        facts = re.findall(r"(\w+) is (\w+) than (\w+)\.", ex.prompt)
        x, rel, y = re.search(r"Is (\w+) (\w+) than (\w+)\?\nAnswer:$", ex.prompt).groups()
        assert len(facts) == entities - 1 and {r for _, r, _ in facts} == {rel}
        # Transitive closure of the stated facts, computed here, not taken from the generator.
        above = {(a, b) for a, _, b in facts}
        for _ in range(entities):
            above |= {(a, d) for a, b in above for c, d in above if b == c}
        assert ((x, y) in above) != ((y, x) in above)
        assert (x, y) not in {(a, b) for a, _, b in facts}  # never answered by one statement
        assert ex.label == int((x, y) in above)


def test_nli_hypotheses_differ_from_premises(splits):
    for ex in splits["nli"][0]:
        premise, hypothesis = re.fullmatch(r"Premise: (.+)\nHypothesis: (.+)\nRelation:",
                                           ex.prompt).groups()
        assert premise != hypothesis
        assert re.match(r"An? ", premise) and re.match(r"An? ", hypothesis)
        if ex.label == 2 and " not " not in hypothesis:
            # a contradiction without negation changes a word the premise had
            assert set(hypothesis.split()) - set(premise.split())
        if ex.label == 0:  # entailment only removes or generalises: nothing new but the hypernym
            new = set(hypothesis.rstrip(".").split()) - set(premise.rstrip(".").split())
            assert new <= {"person", "child", "A", "An"}, ex.prompt


def test_topic_headlines_use_their_topic_vocabulary(splits):
    for ex in splits["topic"][0]:
        vocab = topic.VOCAB[topic.Topic.labels[ex.label]]
        headline = ex.prompt.removeprefix("Headline: ").removesuffix("\nTopic:").lower()
        assert any(t.lower() in headline for t in vocab["thing"])


# --- word problems with a rationale -----------------------------------------------------------

@pytest.mark.parametrize("options", [{}, {"steps": 3}, {"steps": 3, "seed": 5}])
def test_rationale_variant_shares_the_problems(options):
    short = word_problems.WordProblems(**options)
    long = word_problems.WordProblemsRationale(**options)
    for split, n in (("train", 500), ("test", 200)):
        a, b = short.examples(split, n), long.examples(split, n)
        assert [(e.prompt, e.answer) for e in a] == [(e.prompt, e.answer) for e in b]
        # Same content, very different generation length.
        mean = lambda exs: sum(len(e.completion.split()) for e in exs) / len(exs)  # noqa: E731
        assert mean(b) >= 4 * mean(a)
    assert short.fingerprint() != long.fingerprint()


@pytest.mark.parametrize("steps", [2, 3])
def test_rationale_arithmetic_is_correct(steps):
    task = word_problems.WordProblemsRationale(steps=steps)
    for ex in task.examples("train", 300) + task.examples("test", 100):
        m = re.fullmatch(r" (\w+) starts with (\d+)\.((?: \d+ [-+] \d+ = \d+\.)+) #### (\d+)\n",
                         ex.completion)
        assert m, ex.completion
        name, start, body, final = m.groups()
        assert ex.prompt.startswith(f"{name} has {start} ")
        count = int(start)
        lines = re.findall(r"(\d+) ([-+]) (\d+) = (\d+)\.", body)
        assert len(lines) == steps
        for a, op, b, c in lines:  # each step starts where the last ended and is right
            assert int(a) == count and int(c) == int(a) + (int(b) if op == "+" else -int(b)) >= 0
            count = int(c)
        assert str(count) == final == ex.answer == str(_solve_word_problem(ex.prompt))
        # The answer-only regex would read the starting count: the "####" marker is needed.
        assert re.search(task.answer_regex, ex.completion).group(1) == ex.answer


def test_rationale_fits_its_generation_budget(real_tokenizer_dir):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(real_tokenizer_dir)
    task = word_problems.WordProblemsRationale(steps=3)  # the longest rationales
    longest = max(len(tok(e.completion)["input_ids"]) for e in task.examples("train", 1000))
    assert longest + 8 <= task.max_gen_toks  # with room to spare for a chattier model


# --- NLI label forms --------------------------------------------------------------------------

NUMBERS_QUESTION = "\nRelation (0 = entailment, 1 = neutral, 2 = contradiction):"


def test_nli_numbers_form_has_the_same_examples(tmp_path):
    words, numbers = nli.NLI(), nli.NLI(label_form="numbers")
    assert words.labels == ("entailment", "neutral", "contradiction")
    assert numbers.labels == ("0", "1", "2") and nli.NLI.labels == words.labels
    for split, n in (("train", 1000), ("test", 300)):
        w, d = words.examples(split, n), numbers.examples(split, n)
        assert [e.label for e in w] == [e.label for e in d]
        for a, b in zip(w, d):
            assert b.prompt.endswith(NUMBERS_QUESTION)
            assert a.prompt.removesuffix("\nRelation:") == b.prompt.removesuffix(NUMBERS_QUESTION)
            assert b.completion == " " + numbers.labels[b.label] and len(b.prompt.split()) <= 40
    assert not {e.prompt for e in numbers.examples("train", 1000)} & {
        e.prompt for e in numbers.examples("test", 300)}
    config = numbers.lm_eval_config(tmp_path, 20)
    assert config["doc_to_choice"] == ["0", "1", "2"]
    assert words.lm_eval_config(tmp_path, 20)["doc_to_choice"] == list(words.labels)
    assert words.fingerprint() != numbers.fingerprint()
    with pytest.raises(ValidationError):
        nli.NLI(label_form="letters")


# --- three-way sentiment ----------------------------------------------------------------------

def test_sentiment3_class_balance_is_exact():
    examples = sentiment3.Sentiment3(class_balance=[0.5, 0.3, 0.2]).examples("train", 1000)
    assert Counter(e.label for e in examples) == {0: 500, 1: 300, 2: 200}
    for n in (10, 37, 500):  # and for every prefix, within one example
        counts = Counter(e.label for e in examples[:n])
        assert all(abs(counts[i] - share * n) < 1 for i, share in enumerate([0.5, 0.3, 0.2]))
    default = sentiment3.Sentiment3().examples("test", 300)
    assert Counter(e.label for e in default) == {0: 100, 1: 100, 2: 100}


@pytest.mark.parametrize("balance", [[0.5, 0.5], [0.5, 0.3, 0.3], [1.2, -0.1, -0.1], []])
def test_sentiment3_class_balance_is_validated(balance):
    with pytest.raises(ValidationError, match="three non-negative shares.*sum to 1"):
        sentiment3.Sentiment3(class_balance=balance)


def test_sentiment3_reuses_the_sentiment_vocabulary():
    assert sentiment3.ASPECTS is sentiment.ASPECTS and sentiment3.clause is sentiment.clause


def test_sentiment3_structure_decides(splits):
    def polarity(text):  # None for a fact
        words = set(re.findall(r"[a-z]+", text.lower()))
        if words & set(sentiment.NEGATIVE) or "not" in words:
            return 0
        return 2 if words & set(sentiment.POSITIVE) else None

    forms, fact_labels = Counter(), set()
    for ex in splits["sentiment3"][0]:
        text = ex.prompt.removeprefix("Review: ").removesuffix("\nSentiment:")
        *facts, last = text.removesuffix(".").split(". ")
        assert all(polarity(f) is None for f in facts) and len(facts) <= 2
        if facts:
            fact_labels.add(ex.label)
        if polarity(last) is None:
            forms["facts"] += 1
            assert ex.label == 1
        elif ", but " in last:
            forms["but"] += 1
            first, second = map(polarity, last.split(", but "))
            assert first != second == ex.label
        elif ", although " in last:
            forms["although"] += 1
            first, second = map(polarity, last.split(", although "))
            assert second != first == ex.label
        elif " and " in last:
            first, second = map(polarity, last.split(" and "))
            forms["mixed" if first != second else "and"] += 1
            assert ex.label == (first if first == second else 1)
        else:
            forms["plain"] += 1
            assert polarity(last) == ex.label
    for form in ("facts", "mixed", "but", "although", "and", "plain"):
        assert forms[form] > 0.05 * 1000, forms  # every form is well represented
    assert fact_labels == {0, 1, 2}  # a fact alone never gives the label away


# --- paraphrase -------------------------------------------------------------------------------

def _meaning(sentence: str) -> tuple:
    """Who does what to whom, read by patterns written here, not by the generator's templates."""
    p = paraphrase
    alt = lambda words: "|".join(re.escape(w.lower()) for w in words)  # noqa: E731
    ent, time = alt(p.PEOPLE + p.ANIMALS), alt(p.TIMES)
    verbs = {w: past for past, _, syn in p.PEOPLE_VERBS + p.ANIMAL_VERBS for w in (past, syn)}
    participles = {part: past for past, part, _ in p.PEOPLE_VERBS + p.ANIMAL_VERBS}
    canon = {w: (pair[0], i) for pair in p.COMPARATIVES for i, w in enumerate(pair)}

    def compare(x, adj, y):  # "y is shorter than x" means "x is taller than y"
        word, flipped = canon[adj]
        return ("compare", word, *((y, x) if flipped else (x, y)))

    readers = [
        (rf"({ent}) ({alt(verbs)}) ({ent}) ({time})", lambda a, v, b, t: (verbs[v], a, b, t)),
        (rf"({time}), ({ent}) ({alt(verbs)}) ({ent})", lambda t, a, v, b: (verbs[v], a, b, t)),
        (rf"({ent}) was ({alt(participles)}) by ({ent}) ({time})",
         lambda b, v, a, t: (participles[v], a, b, t)),
        (r"(\w+) from (\w+) to (\w+) leave (.+)", lambda m, a, b, f: (m, a, b, f)),
        (r"(\w+) to (\w+) from (\w+) leave (.+)", lambda m, b, a, f: (m, a, b, f)),
        (r"(.+), (\w+) leave from (\w+) to (\w+)", lambda f, m, a, b: (m, a, b, f)),
        (r"there are (\w+) from (\w+) to (\w+) (.+)", lambda m, a, b, f: (m, a, b, f)),
        (r"(\w+) is (\w+) than (\w+)", compare),
        (r"compared with (\w+), (\w+) is (\w+)", lambda y, x, adj: compare(x, adj, y)),
        (r"(\w+), compared with (\w+), is (\w+)", lambda x, y, adj: compare(x, adj, y)),
        (r"(\w+) (?:bought|purchased) a (\w+) (\w+) and a (\w+) (\w+)",
         lambda who, c1, t1, c2, t2: (who, frozenset({(c1, t1), (c2, t2)}))),
    ]
    text = sentence.lower().removesuffix(".")  # names are compared lowercased too
    readings = [read(*m.groups()) for pattern, read in readers
                if (m := re.fullmatch(pattern, text))]
    assert len(readings) == 1, sentence
    return readings[0]


def _sentences(prompt: str) -> tuple[str, str]:
    return re.fullmatch(r"Sentence 1: (.+)\nSentence 2: (.+)\nSame meaning:", prompt).groups()


def test_paraphrase_labels_follow_meaning(splits):
    for ex in splits["paraphrase"][0] + splits["paraphrase"][1]:
        first, second = _sentences(ex.prompt)
        assert first != second
        assert ex.label == int(_meaning(first) == _meaning(second)), ex.prompt


def test_paraphrase_negatives_hold_the_same_words(splits):
    def words(s):
        return Counter(re.findall(r"[a-z]+", s.lower()))

    same_words = Counter()
    for ex in splits["paraphrase"][0]:
        first, second = _sentences(ex.prompt)
        if ex.label == 0:
            assert words(first) == words(second), ex.prompt
        same_words[ex.label] += words(first) == words(second)
    # Positives mostly hold the same words too, but not all: word overlap alone cannot decide.
    assert 0.5 * 500 < same_words[1] < 0.9 * 500
    assert same_words[0] == 500
