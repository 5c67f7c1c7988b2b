"""Conformance checks every task, trait and decomposer plugin must pass.

Each ``check_*`` function is a plain function that raises :class:`AssertionError` with a message
naming the plugin and the problem; :func:`check_task` runs a task's, :func:`check_trait` a
trait's and :func:`check_decomposer` a decomposer's (each documents what it checks). Use them in a
plugin's tests::

    from harness.authoring.conformance import check_task
    from my_package.task import MyTask

    def test_my_task_conforms():
        check_task(MyTask)                                   # a generated task, default options
        check_task(MyTask, seed=1, digits=3)                 # ... or with options

    def test_my_file_task_conforms():
        check_task(MyFileTask, data_files={"train": "train.tsv", "test": "test.tsv"})

What is checked: the class (``name`` an identifier, ``kind``, ``abilities``, ``labels`` or
``answer_regex``); the examples (deterministic, first-``n`` stable, train and test disjoint (for a
file task over every row of both splits, not only the first ``n``), prompts
non-empty, completions starting with a space, labels inside the label set, answers matching
``answer_regex``); the lm-eval config (writes ``n`` rows, builds in lm-eval, renders the same
prompts, choices and targets as the examples); and the export (``harness export-task``'s YAML
loads in lm-eval with the same docs and the same first prompt).
"""

from __future__ import annotations

import json
import math
import re
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.errors import describe

if TYPE_CHECKING:
    import numpy as np

    from harness.api.traits import BehaviourData

KINDS = ("multiple_choice", "generation")
N_TRAIN = 20
N_TEST = 10


def _who(task) -> str:
    cls = task if isinstance(task, type) else type(task)
    return f"task {getattr(task, 'name', cls.__name__)!r} ({cls.__module__}.{cls.__qualname__})"


# The checks of the class take the class or an instance: a task may set ``kind``, ``labels`` or
# ``abilities`` per instance from its options (the ``file`` task does).


# --- the class --------------------------------------------------------------------------------

def check_name(task_cls) -> None:
    name = getattr(task_cls, "name", None)
    cls = task_cls if isinstance(task_cls, type) else type(task_cls)
    assert isinstance(name, str) and name.isidentifier(), (
        f"{cls.__qualname__}: name {name!r} is not a Python identifier; set a class attribute "
        "`name` made of letters, digits and underscores")


def check_kind(task_cls) -> None:
    kind = getattr(task_cls, "kind", None)
    assert kind in KINDS, f"{_who(task_cls)}: kind {kind!r} is not one of {', '.join(KINDS)}"


def check_abilities(task_cls) -> None:
    abilities = getattr(task_cls, "abilities", ())
    assert isinstance(abilities, (tuple, list)) and abilities, (
        f"{_who(task_cls)}: abilities is empty; tag the task with what it measures, e.g. ('arithmetic',)")
    for a in abilities:
        assert isinstance(a, str) and a.strip(), f"{_who(task_cls)}: ability {a!r} is not a non-empty string"


def check_label_set(task_cls) -> None:
    """Multiple choice: at least two distinct, non-empty label words. Generation: a valid regex."""
    if task_cls.kind == "multiple_choice":
        labels = tuple(task_cls.labels)
        assert len(labels) >= 2, f"{_who(task_cls)}: a multiple-choice task needs at least two labels, has {labels!r}"
        assert all(isinstance(x, str) and x.strip() for x in labels), (
            f"{_who(task_cls)}: labels must be non-empty strings, got {labels!r}")
        assert len(set(labels)) == len(labels), f"{_who(task_cls)}: labels repeat: {labels!r}"
    else:
        try:
            re.compile(task_cls.answer_regex)
        except (re.error, TypeError) as exc:
            raise AssertionError(f"{_who(task_cls)}: answer_regex {task_cls.answer_regex!r} is not a valid "
                                 f"regular expression ({exc})") from None


# --- the examples -----------------------------------------------------------------------------

def check_deterministic(task_cls, options: dict, n_train: int = N_TRAIN, n_test: int = N_TEST) -> None:
    """Two fresh instances give equal examples, and the first ``k`` of ``n`` are the ``k`` asked alone."""
    for split, n in (("train", n_train), ("test", n_test)):
        a = task_cls(**options).examples(split, n)
        b = task_cls(**options).examples(split, n)
        assert len(a) == n, f"{_who(task_cls)}: examples({split!r}, {n}) returned {len(a)} examples, not {n}"
        for i, (x, y) in enumerate(zip(a, b)):
            assert x == y, (f"{_who(task_cls)}: examples are not deterministic: two fresh instances differ at "
                            f"{split} example {i}: {x!r} != {y!r} (seed every random choice from options.seed)")
        k = max(1, n // 2)
        head = task_cls(**options).examples(split, k)
        assert head == a[:k], (f"{_who(task_cls)}: examples({split!r}, {k}) is not the first {k} of "
                               f"examples({split!r}, {n}); the first n examples must not depend on n")


def _every_example(task, split: str, sample: list) -> list:
    """Every example of a file task's ``split``: its rows are a finite sample of a file, so an overlap
    anywhere in the two splits must be found, not only among the first ``n``; another task's ``sample``."""
    from harness.api.filetasks import FileTask

    return task.examples(split, None) if isinstance(task, FileTask) else sample


def check_disjoint(task_cls, train: list, test: list) -> None:
    overlap = {ex.prompt for ex in train} & {ex.prompt for ex in test}
    assert not overlap, (f"{_who(task_cls)}: train and test splits overlap: {len(overlap)} prompt(s) in both, "
                         f"e.g. {sorted(overlap)[0]!r}")


def check_examples(task_cls, examples: list, split: str = "test") -> None:
    """``task_cls``: the task instance (or class) whose ``kind``, ``labels`` and ``answer_regex`` apply."""
    # Prompts non-empty, completions starting with a space, labels or answers valid.
    labels = tuple(task_cls.labels)
    regex = re.compile(task_cls.answer_regex) if task_cls.kind == "generation" else None
    for i, ex in enumerate(examples):
        where = f"{_who(task_cls)}: {split} example {i}"
        assert isinstance(ex.prompt, str) and ex.prompt.strip(), f"{where}: empty prompt {ex.prompt!r}"
        assert isinstance(ex.completion, str) and ex.completion.startswith(" ") and ex.completion.strip(), (
            f"{where}: completion {ex.completion!r} must start with a space (lm-eval puts one between "
            "prompt and target) and not be blank")
        if task_cls.kind == "multiple_choice":
            assert isinstance(ex.label, int) and not isinstance(ex.label, bool), (
                f"{where}: label {ex.label!r} is not an int index into labels {labels!r}")
            assert 0 <= ex.label < len(labels), (
                f"{where}: label {ex.label} is out of range for labels {labels!r} (0..{len(labels) - 1})")
            if getattr(task_cls, "choices_per_document", False):
                continue  # each document has its own options (ARC): the label is a position, not the text
            assert ex.completion == " " + labels[ex.label], (
                f"{where}: completion {ex.completion!r} is not ' ' + labels[{ex.label}] = {' ' + labels[ex.label]!r}")
        else:
            assert isinstance(ex.answer, str) and ex.answer.strip(), f"{where}: empty answer {ex.answer!r}"
            if getattr(task_cls, "lm_eval_yaml", None):
                continue  # scored by lm-eval's own filters, not answer_regex
            # A model that outputs exactly the completion (up to lm-eval's stop at the newline)
            # must be scored correct: answer_regex's first match in it must be the answer.
            output = ex.completion.split("\n")[0]
            m = regex.search(output)
            assert m is not None, (f"{where}: answer_regex {task_cls.answer_regex!r} does not match the completion "
                                   f"{output!r}, so a model that learned it could never be scored correct")
            got = m.group(1) if m.groups() else m.group(0)
            assert got == ex.answer, (f"{where}: answer_regex {task_cls.answer_regex!r} extracts {got!r} from the "
                                      f"completion {output!r}, not the answer {ex.answer!r}; exact match would "
                                      "count the gold output wrong")


def _exact_match_form(lm_task, text: str) -> str:
    """``text`` as lm-eval's exact_match compares it (regexes_to_ignore, ignore_case, ...)."""
    import string

    for metric in getattr(lm_task.config, "metric_list", None) or []:
        if metric.get("metric") != "exact_match":
            continue
        for pattern in metric.get("regexes_to_ignore") or []:
            text = re.sub(pattern, "", text)
        if metric.get("ignore_case"):
            text = text.lower()
        if metric.get("ignore_punctuation"):
            text = text.translate(str.maketrans("", "", string.punctuation))
        break
    return text.strip()


# --- lm-eval ------------------------------------------------------------------------------------

def _quiet() -> None:
    try:
        from harness.stages.evaluate import quiet_lm_eval
    except ImportError:  # pragma: no cover
        return
    quiet_lm_eval()


def build_lm_eval_task(spec: dict | str | Path):
    """Build one lm-eval task from an inline config dict or a YAML path (no bundled tasks indexed)."""
    from lm_eval.tasks import TaskManager

    _quiet()
    manager = TaskManager(include_defaults=False)
    spec = str(spec) if isinstance(spec, Path) else spec
    if hasattr(manager, "load"):
        tasks = manager.load([spec])["tasks"]
    else:  # older lm-eval
        tasks = manager.load_task_or_group([spec])
    assert len(tasks) == 1, f"lm-eval built {len(tasks)} tasks from {spec!r}, expected one"
    return next(iter(tasks.values()))


def _docs(lm_task) -> list[dict]:
    return [dict(d) for d in lm_task.test_docs()]


def _target_index(target: Any, choices: list[str]) -> Any:
    if isinstance(target, str):
        if target in choices:
            return choices.index(target)
        if target.strip().lstrip("-").isdigit():
            return int(target)
    return target


def check_lm_eval_config(task, tmp_dir: Path, n: int = N_TEST):
    """``lm_eval_config`` writes ``n`` rows, builds in lm-eval, and renders what ``examples`` gives.

    Returns the built lm-eval task.
    """
    cls = type(task)
    config = task.lm_eval_config(Path(tmp_dir), n)
    assert isinstance(config, dict) and config.get("task") == task.name, (
        f"{_who(cls)}: lm_eval_config must return a dict whose 'task' is {task.name!r}, got "
        f"{config.get('task') if isinstance(config, dict) else config!r}")
    data = (config.get("dataset_kwargs") or {}).get("data_files", {}).get("test")
    assert data and Path(data).is_absolute() and Path(data).is_file(), (
        f"{_who(cls)}: lm_eval_config must point dataset_kwargs.data_files.test at an absolute path to a "
        f"file it wrote, got {data!r}")
    rows = [line for line in Path(data).read_text().splitlines() if line.strip()]
    assert len(rows) == n, f"{_who(cls)}: lm_eval_config(dir, {n}) wrote {len(rows)} rows to {data}, not {n}"
    for i, line in enumerate(rows):
        try:
            json.loads(line)
        except json.JSONDecodeError as exc:
            raise AssertionError(f"{_who(cls)}: {data} row {i + 1} is not JSON ({exc.msg})") from None
    try:
        lm_task = build_lm_eval_task(config)
    except Exception as exc:  # noqa: BLE001 - any failure to build is the finding
        raise AssertionError(f"{_who(cls)}: lm-eval cannot build the task from lm_eval_config: "
                             f"{describe(exc)}") from exc
    docs = _docs(lm_task)
    assert len(docs) == n, f"{_who(cls)}: lm-eval reads {len(docs)} docs from {data}, not {n}"
    examples = task.examples("test", n)
    for i, (doc, ex) in enumerate(zip(docs, examples)):
        where = f"{_who(cls)}: test example {i}"
        prompt = lm_task.doc_to_text(doc)
        assert prompt == ex.prompt, (f"{where}: lm-eval renders the prompt {prompt!r} but examples() gives "
                                     f"{ex.prompt!r}; sources would train on a different prompt than targets "
                                     "are scored on")
        target = lm_task.doc_to_target(doc)
        if task.kind == "multiple_choice":
            choices = list(lm_task.doc_to_choice(doc))
            if getattr(task, "choices_per_document", False):  # the document's own options, its label a position
                assert " " + choices[ex.label] == ex.completion, (
                    f"{where}: lm-eval's choice at the label's position, {choices[ex.label]!r}, is not the "
                    f"example's completion {ex.completion!r}")
            assert getattr(task, "choices_per_document", False) or choices == list(task.labels), (f"{where}: lm-eval's choices {choices!r} differ from the task's "
                                                  f"labels {list(task.labels)!r}")
            assert _target_index(target, choices) == ex.label, (
                f"{where}: lm-eval's target {target!r} is not the example's label {ex.label!r}")
        else:
            got, want = _exact_match_form(lm_task, str(target)), _exact_match_form(lm_task, ex.answer)
            assert got == want, (f"{where}: lm-eval's target {target!r} (compared as {got!r}) is not the "
                                 f"example's answer {ex.answer!r}")
    return lm_task


def check_export(task, tmp_dir: Path, n: int = N_TEST, reference=None) -> None:
    """``harness export-task``'s YAML loads in lm-eval with the same docs and first prompt as the
    task's own config (``reference``: the lm-eval task built from ``lm_eval_config``)."""
    from harness.authoring.export import ExportError, export_task

    cls = type(task)
    out = Path(tmp_dir) / "export" / f"{task.name}.yaml"
    try:
        export_task(task, out, limit=n)
    except ExportError as exc:
        raise AssertionError(f"{_who(cls)}: export-task fails: {exc}") from None
    try:
        exported = build_lm_eval_task(out)
    except Exception as exc:  # noqa: BLE001
        raise AssertionError(f"{_who(cls)}: lm-eval cannot load the exported YAML {out}: "
                             f"{describe(exc)}\n{out.read_text()}") from exc
    if reference is None:
        reference = build_lm_eval_task(task.lm_eval_config(Path(tmp_dir), n))
    got, want = _docs(exported), _docs(reference)
    assert got == want, (f"{_who(cls)}: the exported YAML {out} gives {len(got)} docs that differ from the "
                         f"task's own lm-eval config ({len(want)} docs)")
    assert exported.config.output_type == reference.config.output_type, (
        f"{_who(cls)}: exported output_type {exported.config.output_type!r} != {reference.config.output_type!r}")
    if got:
        a, b = exported.doc_to_text(got[0]), reference.doc_to_text(want[0])
        assert a == b, f"{_who(cls)}: the exported YAML renders the first prompt {a!r}, the task {b!r}"


# --- all of it ----------------------------------------------------------------------------------

def check_task(task_cls, /, **options) -> list[str]:
    """Run every conformance check on ``task_cls`` built with ``options``; return the checks' names.

    Raises AssertionError naming the task and the first problem found. File tasks need their data:
    pass ``data_files={"train": ..., "test": ...}``.
    """
    from harness.api.tasks import Task

    assert isinstance(task_cls, type) and issubclass(task_cls, Task), (
        f"{task_cls!r} is not a subclass of harness.api.tasks.Task")
    check_name(task_cls)
    done = ["check_name"]
    task = task_cls(**options)
    for check in (check_kind, check_abilities, check_label_set):
        check(task)
        done.append(check.__name__)
    check_deterministic(task_cls, options, N_TRAIN, N_TEST)
    done.append("check_deterministic")
    train, test = task.examples("train", N_TRAIN), task.examples("test", N_TEST)
    check_examples(task, train, "train")
    check_examples(task, test, "test")
    done.append("check_examples")
    check_disjoint(task, _every_example(task, "train", train), _every_example(task, "test", test))
    done.append("check_disjoint")
    with tempfile.TemporaryDirectory(prefix=f"check-{task_cls.name}-") as tmp:
        reference = check_lm_eval_config(task, Path(tmp) / "data", N_TEST)
        done.append("check_lm_eval_config")
        check_export(task, Path(tmp), N_TEST, reference)
        done.append("check_export")
    return done


# --- decomposers --------------------------------------------------------------------------------

# Random transfer-like matrices with negative entries: fewer sources than targets (the usual case)
# and more.
DECOMPOSER_SHAPES = ((4, 6), (12, 5))


def _who_decomposer(cls) -> str:
    return f"decomposer {getattr(cls, 'name', cls.__name__)!r} ({cls.__module__}.{cls.__qualname__})"


def _numpydoc_section(doc: str, title: str) -> bool:
    return re.search(rf"^[ \t]*{title}[ \t]*\n[ \t]*-{{{len(title)}}}[ \t]*$", doc, re.MULTILINE) is not None


def check_decomposer_class(cls) -> None:
    """``name``, ``description`` and a numpydoc class docstring with Parameters and Attributes."""
    import inspect

    check_name(cls)
    who = _who_decomposer(cls)
    description = getattr(cls, "description", "")
    assert isinstance(description, str) and description.strip(), (
        f"{who}: description is empty; set a class attribute `description`, one line saying what it does")
    doc = inspect.getdoc(cls) or ""
    for title in ("Parameters", "Attributes"):
        assert _numpydoc_section(doc, title), (
            f"{who}: the class docstring has no numpydoc '{title}' section; add '{title}' underlined with "
            f"'{'-' * len(title)}' listing each {'__init__ argument' if title == 'Parameters' else 'fitted attribute'} "
            "with its type and, for arrays, shape")


def check_decomposer_params(cls, params: dict) -> None:
    """``__init__`` accepts ``n_components``, stores every argument unchanged, learns nothing;
    ``get_params()`` round-trips."""
    import inspect

    import numpy as np

    who = _who_decomposer(cls)
    signature = inspect.signature(cls.__init__)
    assert "n_components" in signature.parameters, (
        f"{who}: __init__ has no `n_components` argument; the analysis layer passes it to every decomposer "
        "(add `n_components: int | None = None`, None letting the decomposer choose)")
    est = cls(**params)
    given = {name: p.default for name, p in signature.parameters.items()
             if name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}
    given.update(params)
    for name, value in given.items():
        assert hasattr(est, name), (f"{who}: __init__ does not store its argument {name!r}; set "
                                    f"`self.{name} = {name}` (get_params reads it back from there)")
        stored = getattr(est, name)
        assert stored is value or _same(stored, value), (
            f"{who}: __init__ stores {name}={stored!r} but was given {value!r}; store arguments unchanged and "
            "derive values (defaults, clipping) in fit, into attributes ending in '_'")
    learned = sorted(a for a in vars(est) if a.endswith("_") and not a.startswith("_"))
    assert not learned, f"{who}: __init__ sets {learned}; attributes ending in '_' are learned state, set them in fit"
    got = est.get_params()
    again = cls(**got).get_params()
    assert _same(again, got), (f"{who}: get_params() does not round-trip: cls(**get_params()).get_params() gives "
                               f"{again!r}, not {got!r}")
    try:
        cls(**{**params, "n_components": 0}).fit(np.random.default_rng(0).normal(size=(4, 3)))
    except ValueError:
        pass
    else:
        raise AssertionError(f"{who}: n_components=0 is accepted; raise ValueError for anything but a positive "
                             "integer or None")


def _same(a, b) -> bool:
    try:
        return bool(a == b)
    except Exception:  # noqa: BLE001 - arrays and other things without a plain ==
        return False


def _default_k(n: int, p: int) -> int:
    return max(1, min(n - 1, p))


def check_decomposer_fit(cls, params: dict, X: np.ndarray, n_components: int | None) -> None:
    """On ``X``: fit returns self, leaves ``X`` alone; components_, ratios and transform have the
    contract's shapes, are finite, ordered by explained variance and signed."""
    import numpy as np

    who = _who_decomposer(cls)
    n, p = X.shape
    k = _default_k(n, p) if n_components is None else n_components
    where = f"{who} on a {n}x{p} matrix with n_components={n_components}"
    before = X.copy()
    est = cls(**{**params, "n_components": n_components})
    try:
        fitted = est.fit(X)
    except Exception as exc:  # noqa: BLE001
        raise AssertionError(f"{where}: fit raised {describe(exc)}") from exc
    assert fitted is est, f"{where}: fit returned {fitted!r}, not self; end fit with `return self`"
    assert np.array_equal(X, before), f"{where}: fit modified X in place; work on a copy (e.g. X - mean, not X -= mean)"
    C = getattr(est, "components_", None)
    assert isinstance(C, np.ndarray) and C.shape == (k, p), (
        f"{where}: components_ has shape {getattr(C, 'shape', None)}, not ({k}, {p}) = (n_components, n_targets)"
        + ("; n_components=None must keep min(n_sources - 1, n_targets), at least 1" if n_components is None else ""))
    assert np.isfinite(C).all(), f"{where}: components_ has non-finite entries"
    r = getattr(est, "explained_variance_ratio_", None)
    assert isinstance(r, np.ndarray) and r.shape == (k,), (
        f"{where}: explained_variance_ratio_ has shape {getattr(r, 'shape', None)}, not ({k},)")
    assert np.isfinite(r).all() and (r >= 0).all() and (r <= 1).all(), (
        f"{where}: explained_variance_ratio_ {r} is not finite in [0, 1]; clip shares that can overshoot")
    assert (np.diff(r) <= 1e-12).all(), (
        f"{where}: explained_variance_ratio_ {r} is not descending; order components by explained variance")
    top = C[np.arange(k), np.abs(C).argmax(axis=1)]
    assert (top >= 0).all(), (
        f"{where}: component(s) {np.flatnonzero(top < 0).tolist()} have a negative largest |loading|; flip "
        "each component (and its scores) so its largest-magnitude loading is positive")
    try:
        T = est.transform(X)
    except Exception as exc:  # noqa: BLE001
        raise AssertionError(f"{where}: transform raised {describe(exc)}") from exc
    assert isinstance(T, np.ndarray) and T.shape == (n, k), (
        f"{where}: transform(X) has shape {getattr(T, 'shape', None)}, not ({n}, {k}) = (n_sources, n_components)")
    assert np.isfinite(T).all(), f"{where}: transform(X) has non-finite entries"
    assert np.array_equal(X, before), f"{where}: transform modified X in place; work on a copy"
    again = cls(**{**params, "n_components": n_components}).fit(X)
    same = (np.allclose(again.components_, C, rtol=0, atol=1e-10)
            and np.allclose(again.transform(X), T, rtol=0, atol=1e-10))
    assert same, (f"{where}: not deterministic: two fits of the same matrix differ (largest change in "
                  f"components_ {np.abs(again.components_ - C).max():.3g}); seed every random choice from "
                  "a `random_state` parameter, default 0")


def check_decomposer_rejects(cls, params: dict, X: np.ndarray) -> None:
    """ValueError for a matrix with NaN or inf, and for n_components above what the matrix allows."""
    import numpy as np

    who = _who_decomposer(cls)
    for bad in (np.nan, np.inf):
        Y = X.copy()
        Y[1, 1] = bad
        try:
            cls(**params).fit(Y)
        except ValueError:
            pass
        except Exception as exc:  # noqa: BLE001
            raise AssertionError(f"{who}: a matrix with {bad} raises {describe(exc)}; raise ValueError "
                                 "saying X must be finite") from exc
        else:
            raise AssertionError(f"{who}: fit accepts a matrix with {bad}; check np.isfinite(X).all() and raise "
                                 "ValueError")
    n, p = X.shape
    k = min(n, p) + 1
    try:
        cls(**{**params, "n_components": k}).fit(X)
    except ValueError as exc:
        assert str(k) in str(exc), (f"{who}: n_components={k} on a {n}x{p} matrix raises ValueError({str(exc)!r}), "
                                    f"which does not name {k}; say both the number asked and the most allowed")
    except Exception as exc:  # noqa: BLE001
        raise AssertionError(f"{who}: n_components={k} on a {n}x{p} matrix raises {describe(exc)}; "
                             "raise ValueError naming both numbers") from exc
    else:
        raise AssertionError(f"{who}: n_components={k} on a {n}x{p} matrix is accepted, more than min(n_sources, "
                             f"n_targets)={min(n, p)}; raise ValueError naming both numbers instead of clipping")


def check_decomposer(cls, /, **params) -> list[str]:
    """Run every conformance check on the decomposer class ``cls`` with ``params``; return the checks' names.

    Raises AssertionError naming the decomposer and the first problem found. ``params`` are further
    ``__init__`` arguments (``n_components`` is varied by the checks). Use it in a plugin's tests::

        from harness.authoring.conformance import check_decomposer

        def test_my_decomposer_conforms():
            check_decomposer(MyDecomposer)
            check_decomposer(MyDecomposer, rotation="varimax")

    What is checked: ``name``, ``description`` and numpydoc ``Parameters`` and ``Attributes``
    sections; ``__init__`` takes ``n_components``, stores its arguments unchanged, learns nothing, and
    ``get_params()`` round-trips; on a 4x6 and a 12x5 random matrix with negative entries and
    n_components 1, 2 and None: ``fit`` returns self and leaves X alone, ``components_`` is
    (n_components, n_targets), ``explained_variance_ratio_`` finite in [0, 1] and descending, each
    component's largest |loading| positive, ``transform`` (n_sources, n_components), two fits equal;
    NaN, inf and n_components > min(n_sources, n_targets) raise ValueError.
    """
    import numpy as np

    from harness.api.decomposer import Decomposer

    assert isinstance(cls, type) and issubclass(cls, Decomposer), (
        f"{cls!r} is not a subclass of harness.api.Decomposer")
    check_decomposer_class(cls)
    done = ["check_decomposer_class"]
    check_decomposer_params(cls, params)
    done.append("check_decomposer_params")
    matrices = [np.random.default_rng(i).normal(size=shape) for i, shape in enumerate(DECOMPOSER_SHAPES)]
    for X in matrices:
        for k in (1, 2, None):
            check_decomposer_fit(cls, params, X, k)
    done.append("check_decomposer_fit")
    for X in matrices:
        check_decomposer_rejects(cls, params, X)
    done.append("check_decomposer_rejects")
    return done


# --- traits -------------------------------------------------------------------------------------

# The sources a trait is run on: the built-in sentiment (classification) and arithmetic (generation)
# tasks, so a trait meets both kinds, as it does in a run. They ship in this distribution, so they
# are imported directly and do not depend on which plugins HARNESS_LOAD_PLUGINS loads.
TRAIT_TASKS = (("sentiment", "harness_plugins.tasks.sentiment", "Sentiment"),
               ("arithmetic", "harness_plugins.tasks.arithmetic", "Arithmetic"))
TRAIT_N_TRAIN = 12
TRAIT_N_TEST = 6
# Two runs of a deterministic trait agree to rounding: reductions on an accelerator may be
# ordered differently from one run to the next, far below this.
TRAIT_REL_TOL = 1e-6
SCOPE_METHODS = {"source": "compute", "pair": "compute_pairs", "behaviour": "compute_behaviour"}
# The input that defines each scope, which its ``requires`` must therefore name.
SCOPE_INPUTS = {"source": "source_data", "pair": "targets", "behaviour": "eval_samples"}


def _who_trait(cls) -> str:
    return f"trait {getattr(cls, 'name', cls.__name__)!r} ({cls.__module__}.{cls.__qualname__})"


def check_trait_class(cls) -> None:
    """``name``, ``description``, ``version``; ``scope`` known and the one its base class stands for;
    ``requires`` known and naming the scope's input; ``outputs``; the scope's method implemented."""
    from harness.api.traits import REQUIREMENTS, SCOPE_CLASSES, SCOPES, Trait, scope_class

    check_name(cls)
    who = _who_trait(cls)
    description = getattr(cls, "description", "")
    assert isinstance(description, str) and description.strip(), (
        f"{who}: description is empty; set a class attribute `description`, one line saying what it measures")
    version = getattr(cls, "version", None)
    assert isinstance(version, int) and not isinstance(version, bool) and version >= 1, (
        f"{who}: version {version!r} is not a positive integer; it enters cache keys (bump it when outputs change)")
    scope = getattr(cls, "scope", None)
    assert scope in SCOPES, (f"{who}: scope {scope!r} is not one of {', '.join(SCOPES)}; derive from "
                             "SourceTrait, PairTrait or BehaviourTrait (harness.api) and leave `scope` to it")
    try:
        base = scope_class(cls)
    except TypeError as exc:
        raise AssertionError(f"{who}: {exc}") from None
    assert base is None or base.scope == scope, (
        f"{who}: scope is {scope!r} but the class derives from {base.__name__} (scope {base.scope!r}); remove the "
        f"`scope` line, or derive from {SCOPE_CLASSES[scope].__name__} instead")
    requires = getattr(cls, "requires", None)
    assert isinstance(requires, (frozenset, set)), (
        f"{who}: requires is {requires!r}, not a frozenset; e.g. requires = frozenset({{'source_data'}})")
    unknown = sorted(map(str, requires - REQUIREMENTS))
    assert not unknown, (f"{who}: requires names {unknown}, which the harness never provides; the known "
                         f"inputs are {', '.join(sorted(REQUIREMENTS))}")
    assert SCOPE_INPUTS[scope] in requires, (
        f"{who}: a {scope} trait reads {SCOPE_INPUTS[scope]!r}, but requires {sorted(requires)} does not name it; "
        "its cache entries are keyed on what requires names")
    outputs = getattr(cls, "outputs", None)
    assert isinstance(outputs, tuple) and all(isinstance(o, str) and o.strip() for o in outputs), (
        f"{who}: outputs {outputs!r} is not a tuple of non-empty strings; e.g. outputs = ('my_share',)")
    assert scope == "pair" or outputs, (
        f"{who}: outputs is empty; a {scope} trait declares the names of the numbers it returns")
    repeated = sorted({o for o in outputs if outputs.count(o) > 1})
    assert not repeated, f"{who}: outputs repeat {repeated}"
    method = SCOPE_METHODS[scope]
    missing = sorted(getattr(cls, "__abstractmethods__", ()))
    assert not missing, (f"{who}: does not implement {', '.join(missing)}, so it cannot be instantiated; "
                         f"a {scope} trait defines {method}")
    assert getattr(cls, method) is not getattr(Trait, method), (
        f"{who}: scope is {scope!r} but the class does not implement {method}, which the traits stage calls")


def check_trait_params(cls, params: dict):
    """Built from ``params``; every ``__init__`` argument stored unchanged under its name;
    ``cls(**get_params())`` is an equal clone with the same cache key. Returns the instance."""
    import inspect

    from harness.files import stable_hash

    who = _who_trait(cls)
    try:
        trait = cls(**params)
    except Exception as exc:  # noqa: BLE001 - the registry builds it this way; any failure is the finding
        raise AssertionError(f"{who}: cannot be built as {cls.__name__}(**{params!r}): "
                             f"{type(exc).__name__}: {exc}") from exc
    signature = inspect.signature(cls.__init__)
    given = {name: p.default for name, p in signature.parameters.items()
             if name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}
    given.update(params)
    for name, value in given.items():
        assert hasattr(trait, name), (f"{who}: __init__ does not store its argument {name!r}; set "
                                      f"`self.{name} = {name}` (get_params reads it back, for cache keys)")
        stored = getattr(trait, name)
        assert stored is value or _same(stored, value), (
            f"{who}: __init__ stores {name}={stored!r} but was given {value!r}; store arguments unchanged "
            "(they enter cache keys) and derive other values where they are used")
    got = trait.get_params()
    clone = cls(**got)
    again = clone.get_params()
    assert _same(again, got), (f"{who}: get_params() does not round-trip: cls(**get_params()).get_params() gives "
                               f"{again!r}, not {got!r}")
    assert stable_hash(again) == stable_hash(got), (
        f"{who}: parameters {got!r} give a different cache key for an equal clone; a parameter whose str() "
        "changes between instances (an object's address) cannot key a cache: use numbers, strings, lists")
    return trait


def _close(a, b) -> bool:
    """Equal, floats to :data:`TRAIT_REL_TOL`, through nested dicts, lists and tuples."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_close(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_close(x, y) for x, y in zip(a, b))
    if isinstance(a, float) and isinstance(b, float):
        return a == b or math.isclose(a, b, rel_tol=TRAIT_REL_TOL, abs_tol=1e-12)
    return _same(a, b)


def _checked(who: str, value, where: str) -> float | None:
    from harness.api.traits import TraitValueError, checked

    try:
        return checked(value, where)
    except TraitValueError as exc:
        raise AssertionError(f"{who}: {exc}; the traits stage records such a value as a failure "
                             "(return a finite number, or None where the output does not apply)") from None


def _keys_match(who: str, got, want, what: str) -> None:
    assert isinstance(got, dict), f"{who}: {what} is {type(got).__name__} {got!r}, not a dict"
    missing, extra = sorted(set(want) - set(got)), sorted(map(str, set(got) - set(want)))
    assert not missing and not extra, (f"{who}: {what} has keys {sorted(map(str, got))}, not {sorted(want)}"
                                       + (f"; missing {missing}" if missing else "")
                                       + (f"; not declared {extra}" if extra else ""))


def trait_sources(tokenizer=None, model=None):
    """(sources, targets): small :class:`SourceData` and :class:`TargetData` of :data:`TRAIT_TASKS`."""
    import importlib

    from harness.api.traits import SourceData, TargetData

    sources, targets = [], []
    for name, module, cls_name in TRAIT_TASKS:
        task = getattr(importlib.import_module(module), cls_name)()
        sources.append(SourceData(name, task, task.examples("train", TRAIT_N_TRAIN), tokenizer, model))
        targets.append(TargetData(name, task, task.examples("test", TRAIT_N_TEST)))
    return sources, targets


def write_adapter(folder: Path, tensors: dict, r: int, alpha: float) -> Path:
    """A peft-layout LoRA adapter folder: ``adapter_config.json`` and ``adapter_model.safetensors``
    holding ``tensors`` (peft's names, ``...<module>.lora_A.weight`` (r, in) and ``.lora_B.weight``
    (out, r), numpy float32 arrays)."""
    import numpy as np
    from safetensors.numpy import save_file

    folder.mkdir(parents=True, exist_ok=True)
    modules = sorted({name.split(".")[-3] for name in tensors})
    (folder / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA", "r": r, "lora_alpha": alpha,
                                                            "target_modules": modules}))
    save_file({k: np.ascontiguousarray(v, dtype=np.float32) for k, v in tensors.items()},
              str(folder / "adapter_model.safetensors"))
    return folder


def trait_adapters(sources, root: Path, r: int = 2, width: int = 8) -> None:
    """Give each of ``sources`` one small seeded random adapter (two layers, q_proj and v_proj,
    non-zero A and B as after training), written under ``root``; for traits requiring
    ``adapter_weights``."""
    import numpy as np

    for i, src in enumerate(sources):
        rng = np.random.default_rng(i)
        tensors = {}
        for layer in range(2):
            for module in ("q_proj", "v_proj"):
                stem = f"base_model.model.model.layers.{layer}.self_attn.{module}"
                tensors[f"{stem}.lora_A.weight"] = rng.standard_normal((r, width))
                tensors[f"{stem}.lora_B.weight"] = rng.standard_normal((width, r))
        src.adapters = [write_adapter(root / src.name, tensors, r, 2.0 * r)]


def trait_samples(targets) -> BehaviourData:
    """Per-sample records shaped like the evaluation stage's (``harness.stages.evaluate``) for the
    base model and an adapter per target, each right on a seeded share of the samples; the last
    adapter's last cell is absent, as a failed evaluation leaves it."""
    import random

    from harness.api.traits import BehaviourData

    names = [t.name for t in targets]
    data = BehaviourData(sources=names, targets={t.name: t.task for t in targets})
    for m, model in enumerate(["base", *names]):
        rng = random.Random(m)
        accuracy = 0.4 + 0.2 * m
        for t in targets:
            if model == names[-1] and t is targets[-1]:
                continue
            records = []
            for i, ex in enumerate(t.examples):
                right = rng.random() < accuracy
                if t.task.kind == "multiple_choice":
                    k = len(t.task.labels)
                    pred = ex.label if right else (ex.label + 1) % k
                    loglik = [-2.0 - rng.random() for _ in range(k)]
                    loglik[pred] = -1.0
                    records.append({"doc_id": i, "target": ex.label, "correct": float(right),
                                    "loglikelihoods": loglik, "prediction": pred})
                else:
                    answer = ex.answer if right else str(rng.randrange(1000))
                    form = rng.random()
                    if form < 0.1 * m + 0.1:  # no answer: lm-eval's regex filter falls back to "[invalid]"
                        output, pred = " I do not know", "[invalid]"
                    else:
                        output, pred = (f" {answer}\n" if form < 0.6 else f" The answer is {answer}."), answer
                    records.append({"doc_id": i, "target": ex.answer, "correct": float(pred == ex.answer),
                                    "prediction": pred, "output": output})
            data.samples.setdefault(model, {})[t.name] = records
    return data


def check_trait_source_run(trait, sources) -> None:
    """``compute`` on each source: exactly the declared outputs, each a finite number or None;
    the same again, and from a clone."""
    cls = type(trait)
    clone = cls(**trait.get_params())
    for src in sources:
        who = f"{_who_trait(cls)} on source {src.name!r}"
        out = _run(who, trait.compute, src)
        _keys_match(who, out, cls.outputs, "compute(source)")
        for key, value in out.items():
            _checked(who, value, f"output {key!r}")
        for again, how in ((_run(who, trait.compute, src), "a second call"),
                           (_run(who, clone.compute, src), "a clone from get_params()")):
            assert _close(again, out), (f"{who}: not deterministic: {how} gives {again!r}, the first {out!r}; "
                                        "seed every random choice from a parameter (e.g. seed: int = 0)")


def check_trait_pair_run(trait, sources, targets) -> None:
    """``compute_pairs`` on the sources and targets: ``{output: {source: {target: value}}}`` with the
    declared outputs (when declared), every source and target, finite numbers or None; the same again."""
    cls = type(trait)
    who = f"{_who_trait(cls)} on sources {[s.name for s in sources]} and targets {[t.name for t in targets]}"
    out = _run(who, trait.compute_pairs, sources, targets)
    if cls.outputs:
        _keys_match(who, out, cls.outputs, "compute_pairs(...)")
    else:
        assert isinstance(out, dict) and out, f"{who}: compute_pairs returned {out!r}, not {{output: ...}}"
    for name, table in out.items():
        _keys_match(who, table, [s.name for s in sources], f"compute_pairs(...)[{name!r}]")
        for s, row in table.items():
            _keys_match(who, row, [t.name for t in targets], f"compute_pairs(...)[{name!r}][{s!r}]")
            for t, value in row.items():
                _checked(who, value, f"{name}[{s}][{t}]")
    again = _run(who, trait.compute_pairs, sources, targets)
    assert _close(again, out), (f"{who}: not deterministic: a second call gives {again!r}, the first {out!r}; "
                                "seed every random choice from a parameter (e.g. seed: int = 0)")


def check_trait_behaviour_run(trait, data) -> None:
    """``compute_behaviour`` on synthetic per-sample records: (JSON-serialisable details, a summary
    row of the declared outputs for every source, finite numbers or None); the same again."""
    cls = type(trait)
    who = f"{_who_trait(cls)} on synthetic evaluation records"
    result = _run(who, trait.compute_behaviour, data)
    assert isinstance(result, tuple) and len(result) == 2, (
        f"{who}: compute_behaviour returned {type(result).__name__}, not a (details, summary) pair")
    details, summary = result
    try:
        json.dumps(details)
    except (TypeError, ValueError) as exc:
        raise AssertionError(f"{who}: the details are not JSON-serialisable ({exc}); results.json holds them, so "
                             "use dicts, lists, strings, numbers and None") from None
    _keys_match(who, summary, data.sources, "the summary")
    for s, row in summary.items():
        _keys_match(who, row, cls.outputs, f"the summary of source {s!r}")
        for key, value in row.items():
            _checked(who, value, f"output {key!r} of source {s!r}")
    again = _run(who, trait.compute_behaviour, data)
    assert _close(again, result), (f"{who}: not deterministic: a second call gives different details or summary; "
                                   "seed every random choice from a parameter (e.g. seed: int = 0)")


def _run(who: str, method, *args):
    try:
        return method(*args)
    except Exception as exc:  # noqa: BLE001 - in a run this is recorded as the trait's failure
        raise AssertionError(f"{who}: {method.__name__} raised {type(exc).__name__}: {exc}") from exc


def check_trait(trait_cls, /, *, tokenizer=None, model=None, **params) -> list[str]:
    """Run every conformance check on the trait class ``trait_cls`` with ``params``; return the checks' names.

    Raises AssertionError naming the trait and the first problem found. ``params`` are ``__init__``
    arguments. A trait that requires ``"tokenizer"`` or ``"base_model"`` is run only when given
    ``tokenizer=`` (and ``model=``); otherwise the run is skipped and the returned list says so.
    Use it in a plugin's tests::

        from harness.api import check_trait

        def test_my_trait_conforms():
            check_trait(MyTrait)
            check_trait(MyTrait, min_words=3)

    What is checked: ``name``, ``description``, ``version``; ``scope`` one of source, pair,
    behaviour and the one of its base class (SourceTrait, PairTrait, BehaviourTrait); ``requires``
    inside the inputs the harness provides and naming the scope's own; ``outputs`` a tuple of
    unique names, non-empty for source and behaviour traits; the scope's method implemented;
    arguments stored unchanged and ``get_params()`` round-tripping to a clone with the same cache
    key; then a run: a source trait on 12 training examples of the built-in sentiment and
    arithmetic tasks (exactly its outputs, finite numbers or None, the same twice and from the
    clone); a pair trait on those two sources and their test examples as targets
    (``{output: {source: {target: value}}}``), each source given a small seeded random LoRA
    adapter when the trait requires ``adapter_weights`` (:func:`trait_adapters`); a behaviour trait on synthetic per-sample records of
    the base model and both adapters, one cell missing (JSON details, a summary row per source).
    """
    from harness.api.traits import Trait

    assert isinstance(trait_cls, type) and issubclass(trait_cls, Trait), (
        f"{trait_cls!r} is not a subclass of harness.api.Trait")
    check_trait_class(trait_cls)
    done = ["check_trait_class"]
    trait = check_trait_params(trait_cls, params)
    done.append("check_trait_params")
    needs = [(req, given) for req, given in (("tokenizer", tokenizer), ("base_model", model))
             if req in trait_cls.requires]
    absent = [req for req, given in needs if given is None]
    if absent:
        keywords = " and ".join({"tokenizer": "tokenizer=...", "base_model": "model=..."}[r] for r in absent)
        done.append(f"check_trait_run skipped: requires {', '.join(map(repr, absent))}; pass check_trait(cls, "
                    f"{keywords}) to run it")
        return done
    sources, targets = trait_sources(tokenizer, model)
    with tempfile.TemporaryDirectory(prefix="check-trait-") as tmp:
        if "adapter_weights" in trait_cls.requires:
            trait_adapters(sources, Path(tmp))
        if trait_cls.scope == "source":
            check_trait_source_run(trait, sources)
        elif trait_cls.scope == "pair":
            check_trait_pair_run(trait, sources, targets)
        else:
            check_trait_behaviour_run(trait, trait_samples(targets))
    done.append(f"check_trait_{trait_cls.scope}_run")
    return done
