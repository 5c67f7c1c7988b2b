"""Tasks read from local data files (CSV, TSV, JSON lines, Parquet).

Real datasets live on the hub, which an offline machine cannot reach, so a file task names its hub
dataset for the record and reads rows from ``options.data_files`` instead. Where lm-eval ships a
config for the task, that config is reused with only its data source replaced, so a local score
is the score lm-eval itself would give on the same rows. Every row is checked: a missing or empty
field, or a label outside the label set, stops with the file, row and column, unless
``skip_bad_rows`` is set, in which case the skipped rows are counted and reported.

The ``n`` rows a split gives are a seeded sample of its usable rows (``options.seed``), stratified
by label for classification, never simply the first ``n``: hub splits and exported files are
often sorted by label. Where train and test would read the same rows (one file for both, or a
hub dataset with a single split), each takes its own slice by a hash of the row's prompt columns.
"""

from __future__ import annotations

import csv
import functools
import hashlib
import json
import math
import os
import stat
import warnings
from collections import Counter
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import Field, field_validator, model_validator

from harness.api.tasks import Example, Split, Task, TaskOptions, content_share, write_rows
from harness.errors import DataError, describe

SUFFIXES = {".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl", ".json": "jsonl", ".parquet": "parquet"}
DEFAULT_MAX_FILE_MB = 1024.0
MB = 1024 * 1024
SNIFF_BYTES = 8192  # how much of a text file is looked at for NUL bytes before it is parsed
PARQUET_MAGIC = b"PAR1"


class FileTaskOptions(TaskOptions):
    data_files: dict[Literal["train", "test"], str] = Field(
        default_factory=dict, description="Local data files by split, e.g. {train: data/train.tsv, test: data/test.tsv}.")
    skip_bad_rows: bool = Field(False, description="Skip rows with missing fields or unknown labels (counted and reported) instead of stopping.")
    # exclude=True: left out of model_dump, so out of the task's fingerprint (Task.fingerprint)
    # and every cache key: the limit decides whether a file is read, never what is read from it.
    max_file_mb: float = Field(
        DEFAULT_MAX_FILE_MB, gt=0, exclude=True,
        description="Largest data file read, in MB (1 MB = 2^20 bytes): a larger file is refused before it is "
                    "read. Raise it for a file known to be that large. Not part of any cache key.")
    # Resampling the training rows to chosen label shares makes a twin of a real dataset that differs
    # in class balance alone (same file, same prompts). `statistic` names what the twins analysis
    # reads the option as; None leaves the file's own shares (and the task's fingerprint) unchanged.
    class_balance: float | None = Field(
        None, gt=0, lt=1, json_schema_extra={"statistic": "class_balance"},
        description="Two-label classification: share of the second label (e.g. 'positive') in the training "
                    "rows, which are then a seeded sample at that share (test rows are never resampled). "
                    "Default: the file's own shares.")
    label_shares: list[float] | None = Field(
        None, json_schema_extra={"statistic": "class_balance"},
        description="Classification: one share per label, in label order, summing to 1: the training rows "
                    "are a seeded sample at those shares (test rows are never resampled). Default: the "
                    "file's own shares.")

    @field_validator("label_shares")
    @classmethod
    def _shares(cls, value):
        if value is None:
            return value
        if len(value) < 2 or any(not (0 <= v <= 1) for v in value) or not math.isclose(sum(value), 1, abs_tol=1e-6):
            raise ValueError(f"label_shares {value} must be one share in [0, 1] per label, summing to 1 "
                             "(e.g. [0.1, 0.9] for two labels)")
        return value

    @model_validator(mode="after")
    def _one_resampling(self):
        if self.class_balance is not None and self.label_shares is not None:
            raise ValueError("give `class_balance` (two labels: the second label's share) or `label_shares` "
                             "(one share per label), not both")
        return self


def check_data_file(path: Path, max_file_mb: float = DEFAULT_MAX_FILE_MB) -> str:
    """The kind of a data file (csv, tsv, jsonl or parquet), after every check that needs no
    parsing: a regular file (not a directory), a known suffix, at most ``max_file_mb`` (by
    ``os.stat``, never by reading), and the start of it what its kind promises (no NUL byte in the
    first 8 KiB of a text file; Parquet's magic bytes). Raises :class:`DataError` saying what to fix.
    """
    try:
        info = os.stat(path)
    except FileNotFoundError:
        info = None
    except (OSError, ValueError) as exc:  # ValueError: a NUL character in the path
        raise DataError(f"{path}: cannot be read ({getattr(exc, 'strerror', None) or exc}); give the path "
                        "of a CSV, TSV, JSONL or Parquet file") from None
    if info is not None and stat.S_ISDIR(info.st_mode):
        raise DataError(f"{path}: is a directory, not a data file; give the path of a CSV, TSV, JSONL or "
                        "Parquet file")
    kind = SUFFIXES.get(path.suffix.lower())
    if kind is None:
        raise DataError(f"{path}: unsupported file type {path.suffix!r}; use one of {', '.join(SUFFIXES)}")
    if info is None:
        raise DataError(f"{path}: no such file")
    if not stat.S_ISREG(info.st_mode):
        raise DataError(f"{path}: not a regular file (a device, pipe or socket); give the path of a "
                        f"{kind.upper()} file")
    if info.st_size > max_file_mb * MB:
        size = info.st_size / MB
        suggest = 2 ** math.ceil(math.log2(size + 1))
        raise DataError(f"{path}: {size:.1f} MB, over the limit of {max_file_mb:g} MB for a data file; if it "
                        f"is meant to be that large, raise `options.max_file_mb` on this task's entry in the "
                        f"registry (e.g. max_file_mb: {suggest})")
    try:
        with open(path, "rb") as fh:
            head = fh.read(SNIFF_BYTES)
    except OSError as exc:
        raise DataError(f"{path}: cannot be read ({exc.strerror})") from None
    if kind == "parquet":
        if head[:4] != PARQUET_MAGIC:
            raise DataError(f"{path}: not a Parquet file (it does not start with Parquet's magic bytes PAR1); "
                            "give a file written as Parquet (pyarrow, pandas), or name it by its real format "
                            f"({', '.join(s for s in SUFFIXES if s != '.parquet')})")
    elif b"\0" in head:
        raise DataError(f"{path}: looks binary (a NUL byte at byte {head.index(0)}), not {kind.upper()} "
                        "text; give a UTF-8 text file (re-save a UTF-16 file as UTF-8), or a .parquet file "
                        "for columnar data")
    return kind


def _utf8_problem(path: Path, exc: UnicodeDecodeError) -> DataError:
    """Where a file stops being UTF-8: its line (lines split at b'\\n', which no multi-byte UTF-8
    character contains, so each line decodes alone) and column."""
    with open(path, "rb") as fh:
        for i, line in enumerate(fh, start=1):
            try:
                line.decode("utf-8")  # a byte-order mark is valid UTF-8 too
            except UnicodeDecodeError as bad:
                byte = line[bad.start]
                column = len(line[:bad.start].decode("utf-8", errors="replace")) + 1
                return DataError(f"{path}: line {i}, column {column}: not UTF-8 text (byte 0x{byte:02x}: "
                                 f"{bad.reason}); re-save the file as UTF-8 (e.g. `iconv -f latin1 -t utf-8`)")
    return DataError(f"{path}: not UTF-8 text ({exc.reason}); re-save the file as UTF-8")


def read_rows(path: Path, max_file_mb: float = DEFAULT_MAX_FILE_MB) -> list[dict[str, Any]]:
    """All rows of a CSV, TSV, JSON-lines or Parquet file, as dicts keyed by column.

    The file is checked first (:func:`check_data_file`): a directory, an unknown suffix, a file
    larger than ``max_file_mb`` or one whose content is not of its kind is refused with a
    :class:`DataError` before any of it is parsed.
    """
    kind = check_data_file(path, max_file_mb)
    if kind == "parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        try:
            return pq.read_table(path).to_pylist()
        except (pa.ArrowException, OSError) as exc:
            raise DataError(f"{path}: cannot be read as Parquet ({exc}); write it again, or give a CSV, "
                            "TSV or JSONL file") from None
    # utf-8-sig: a byte-order mark (as Excel writes) is not read as part of the first column's name.
    with open(path, newline="", encoding="utf-8-sig") as fh:
        try:
            if kind == "jsonl":
                return _json_lines(path, fh)
            reader = csv.DictReader(fh, delimiter="\t" if kind == "tsv" else ",")
            try:
                return list(reader)
            except csv.Error as exc:
                # reader.reader: DictReader's own line_num is updated only after a row parses.
                raise DataError(f"{path}: line {reader.reader.line_num}: not valid {kind.upper()} ({exc})") from None
        except UnicodeDecodeError as exc:
            raise _utf8_problem(path, exc) from None


def _json_lines(path: Path, fh) -> list[dict[str, Any]]:
    rows = []
    for i, line in enumerate(fh, start=1):
        if line.strip():
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataError(f"{path}: row {i}: not valid JSON ({exc.msg})") from None
            except RecursionError:
                raise DataError(f"{path}: row {i}: JSON nested too deeply") from None
            if not isinstance(row, dict):
                raise DataError(f"{path}: row {i}: a JSON {type(row).__name__}, not an object; each line must "
                                'be one object with a value per column, e.g. {"text": "...", "label": 1}')
            rows.append(row)
    return rows


@functools.lru_cache(maxsize=1)
def _sandbox():
    """Jinja as lm-eval renders prompts (StrictUndefined, trailing newline kept, its regex_replace
    filter), but sandboxed: a template from a registry reads the row's columns and cannot reach
    Python internals (``{{ text.__class__.__mro__ }}`` and the like raise SecurityError)."""
    from jinja2 import StrictUndefined
    from jinja2.sandbox import ImmutableSandboxedEnvironment
    from lm_eval.utils import regex_replace

    env = ImmutableSandboxedEnvironment(undefined=StrictUndefined, keep_trailing_newline=True)
    env.filters["regex_replace"] = regex_replace
    return env


def render_template(template: str, row: dict, what: str) -> str:
    """``template`` (Jinja) over the columns of ``row``, in the sandbox; DataError when it fails."""
    import jinja2

    try:
        return _sandbox().from_string(template).render(row)
    except jinja2.exceptions.SecurityError as exc:
        raise DataError(f"{what}: the prompt template {template!r} is refused: {exc}; a template may only read "
                        "the row's columns (e.g. 'Review: {{review}}')") from None
    except Exception as exc:  # a template is code over the row's values: any error is the template's
        raise DataError(f"{what}: the prompt template {template!r} failed on a row: {type(exc).__name__}: "
                        f"{exc}") from None


def largest_remainder(counts: list[int], k: int) -> list[int]:
    """``k`` seats divided among classes of ``counts`` rows by their shares (Hamilton's method):
    each its whole quota, the seats left to the largest remainders (ties to the lower class)."""
    total = sum(counts)
    seats = [c * k // total for c in counts]  # integers: exact, no float ties
    by_remainder = sorted(range(len(counts)), key=lambda c: (-(counts[c] * k % total), c))
    for c in by_remainder[:k - sum(seats)]:
        seats[c] += 1
    return seats


def stratified_sequence(counts: list[int], n: int) -> list[int]:
    """The class of each of the first ``n`` rows of a stratified order over classes of ``counts``.

    After every ``k`` rows the classes hold their largest-remainder allocation of ``k``, so a
    sample of any size has the split's class shares as nearly as whole rows allow, and a larger
    sample extends a smaller one. Where that allocation would take a row back from a class as ``k``
    grows (the Alabama paradox; three or more classes, rare), the next row goes instead to the
    class furthest below its exact share.
    """
    total = sum(counts)
    taken = [0] * len(counts)
    sequence = []
    for k in range(1, n + 1):
        target = largest_remainder(counts, k)
        if all(t >= have for t, have in zip(target, taken)):
            c = next(c for c, (t, have) in enumerate(zip(target, taken)) if t > have)
        else:
            c = max(range(len(counts)), key=lambda c: (counts[c] * k - taken[c] * total, -c))
        taken[c] += 1
        sequence.append(c)
    return sequence


class FileTask(Task):
    """Base of tasks whose rows come from local files.

    Subclasses set where the data lives on the hub, which columns the prompt reads, which column
    holds the label or answer, and either a prompt ``template`` (Jinja, over the row's columns) or
    ``lm_eval_yaml``, the path of lm-eval's own config under ``lm_eval/tasks/`` to reuse.
    """

    hub_dataset: ClassVar[str] = ""
    hub_config: ClassVar[str | None] = None
    hub_splits: ClassVar[dict[str, str]] = {"train": "train", "test": "test"}
    text_columns: ClassVar[tuple[str, ...]] = ()
    target_column: ClassVar[str] = "label"
    label_values: ClassVar[tuple] = ()  # raw values in the file, in the order of ``labels``
    template: ClassVar[str] = ""
    lm_eval_yaml: ClassVar[str | None] = None
    # Where train and test read the same rows (shares_rows), the share held out for test.
    test_share: ClassVar[float] = 0.3
    # Which rows a split gives (reading, checking, hold-out, sampling) enters the fingerprint, so
    # adapters and cells cached for another selection are not reused: bump it when that changes.
    # 1: the first n rows; 2: a seeded, stratified sample, and a held-out slice of shared rows.
    selection_version: ClassVar[int] = 2
    Options = FileTaskOptions

    # --- the prompt format: lm-eval's when reused, else the task's own ------------------------
    def base_config(self) -> dict | None:
        """lm-eval's shipped config for this task, or None."""
        if not self.lm_eval_yaml:
            return None
        if self.__dict__.get("_base_config") is None:  # read once per task: render_prompt runs per row
            import lm_eval

            from harness.lm_eval_compat import load_yaml  # resolves `include` and `!function`

            self._base_config = load_yaml(Path(lm_eval.__file__).parent / "tasks" / self.lm_eval_yaml)
        return dict(self._base_config)

    def render_prompt(self, row: dict) -> str:
        from lm_eval.utils import apply_template

        config = self.base_config()
        if config:
            template = config["doc_to_text"]
            # lm-eval configs may name a Python function (`!function utils.doc_to_text`): call it.
            return template(row) if callable(template) else apply_template(template, row)
        return render_template(self.template, row, f"task {self.name!r}")

    # --- rows ---------------------------------------------------------------------------------
    def data_file(self, split: Split) -> Path | None:
        """The local file of ``split``, or None when the task should read its hub dataset.

        A split without a file of its own reads the other split's file when the hub has one split
        for both (goat and code read the hub's ``train`` as test too): a local copy of that split
        then serves both, each taking its own slice of it (:meth:`shares_rows`).
        """
        source = self._source(split)
        return source if isinstance(source, Path) else None

    def _source(self, split: Split) -> Path | str:
        """What ``split`` reads: a resolved local file, or else the name of its hub split."""
        files, hub_split = self.options.data_files, self.hub_splits.get(split, split)
        twin = next((s for s in files if s != split and self.hub_splits.get(s, s) == hub_split), None)
        path = files.get(split) or (files[twin] if twin else None)
        return Path(path).expanduser().resolve() if path else hub_split

    def shares_rows(self) -> bool:
        """Whether train and test read the same rows: the same file, or the same hub split. Their
        rows are then divided by :meth:`split_of`, so a task never scores on what it trained on."""
        return self._source("train") == self._source("test")

    def split_of(self, row: dict) -> Split:
        """The split a row of shared rows belongs to: ``test`` for a ``test_share`` of them, by a
        hash of :meth:`split_key`. Fixed by the row alone (not by ``options.seed``), so the same
        whatever ``n``, seed or file order, and the same in a source and a target entry that read
        the same file with other seeds."""
        return "test" if content_share(self.split_key(row)) < self.test_share else "train"

    def split_key(self, row: dict) -> str:
        """What :meth:`split_of` hashes: the prompt's columns, so rows with the same prompt are
        always on the same side."""
        return "\x1f".join(str(row[column]) for column in self.text_columns)

    def hub_rows(self, split: Split) -> tuple[str, list[dict]]:
        """Rows of the hub dataset (only where the hub is reachable and not switched off)."""
        hub = f"{self.hub_dataset}" + (f" ({self.hub_config})" if self.hub_config else "")
        hub_split = self.hub_splits.get(split, split)
        why = None
        if not self.hub_dataset:
            why = "this task names no hub dataset"
        elif os.environ.get("HF_DATASETS_OFFLINE", "0").lower() in ("1", "true", "yes"):
            why = "HF_DATASETS_OFFLINE is set"
        else:
            try:
                import datasets

                return f"{hub}[{hub_split}]", list(datasets.load_dataset(self.hub_dataset, self.hub_config,
                                                                          split=hub_split))
            except Exception as exc:  # offline, gated, renamed: all mean "give a local file"
                why = f"loading it failed: {describe(exc)}"
        raise DataError(f"task {self.name!r} needs options.data_files.{split}: a local CSV, TSV, JSONL or "
                        f"Parquet file with columns {', '.join(self.required_columns())}. The hub dataset "
                        f"{hub}, split {hub_split!r}, cannot be used here: {why}.")

    def required_columns(self) -> tuple[str, ...]:
        return (*self.text_columns, self.target_column)

    def check_row(self, row: dict, where: str) -> dict:
        """The row with its target normalised (label index for classification), or DataError."""
        for column in self.required_columns():
            value = row.get(column)
            if value is None or (isinstance(value, str) and not value.strip()):
                raise DataError(f"{where}, column {column!r}: {'missing' if value is None else 'empty'} value")
        if self.kind != "multiple_choice":
            return dict(row)
        raw = row[self.target_column]
        # One raw value per label, or a tuple of alternatives (e.g. ("0", "negative")) per label.
        alternatives = [tuple(str(a) for a in v) if isinstance(v, (tuple, list)) else (str(v),)
                        for v in (self.label_values or range(len(self.labels)))]
        index = next((i for i, alts in enumerate(alternatives) if str(raw) in alts), None)
        if index is None:
            values = [a for alts in alternatives for a in alts]
            raise DataError(f"{where}, column {self.target_column!r}: label {raw!r} is not in the label set "
                            f"{values}")
        return {**row, self.target_column: index}

    def clean_rows(self, split: Split, n: int | None = None) -> list[dict]:
        """``n`` usable rows of ``split`` (all of them when ``n`` is None), a seeded sample.

        Every row is checked first: a bad row stops the run, naming file, row and column, or with
        ``skip_bad_rows`` is skipped and counted. The rows come in one order drawn from
        ``options.seed`` that does not depend on ``n`` (:meth:`sample_order`), so the rows for
        ``n`` are the first ``n`` of those for any larger ``n``.
        """
        where, rows = self.usable_rows(split)
        shares = self.train_shares() if split == "train" else None
        if shares is not None:
            picked = [rows[i] for i in self.resampled_order(rows, n, shares, where)]
            self._warn_single_class(split, where, rows, picked)
            return picked
        if n is not None and len(rows) < n:
            sliced = "" if not self.shares_rows() else (
                f" (train and test read the same rows, so {split!r} holds only its slice of them; give "
                "data_files.train and data_files.test as separate files to use all)")
            raise DataError(f"{where}: asked for {n} rows of {split!r} but only {len(rows)} usable ones exist{sliced}")
        picked = [rows[i] for i in self.sample_order(rows, len(rows) if n is None else n)]
        self._warn_single_class(split, where, rows, picked)
        return picked

    def usable_rows(self, split: Split) -> tuple[str, list[dict]]:
        """Where ``split`` is read from, and its checked rows in file order (its slice of shared rows).

        Read, checked and divided once per task object: a run asks for a split's rows several
        times (train pairs, traits, shots, the test file, checks), and a hub split can be large."""
        memo = self.__dict__.setdefault("_usable_rows", {})
        if split not in memo:
            memo[split] = self._read_usable_rows(split)
        where, rows, skipped = memo[split]
        if skipped:  # said on every read, as when each read parsed the file
            warnings.warn(f"task {self.name!r}: skipped {skipped} bad row(s) in {where} (skip_bad_rows is on)",
                          stacklevel=3)
        return where, list(rows)

    def _read_usable_rows(self, split: Split) -> tuple[str, list[dict], int]:
        path = self.data_file(split)
        if path is None:
            path, raw_rows = self.hub_rows(split)
        else:
            raw_rows = read_rows(path, self.options.max_file_mb)
        rows, skipped = [], 0
        for i, row in enumerate(raw_rows, start=1):
            try:
                rows.append(self.check_row(row, f"{path}: row {i}"))
            except DataError:
                if not self.options.skip_bad_rows:
                    raise
                skipped += 1
        if self.shares_rows():
            rows = [row for row in rows if self.split_of(row) == split]
        return str(path), rows, skipped

    def sample_order(self, rows: list[dict], n: int) -> list[int]:
        """Indices of the ``n`` rows drawn from ``rows``: the first ``n`` of a seeded shuffle, or for
        classification of a stratified order (:func:`stratified_sequence`): each class's rows in
        shuffled order, interleaved so that every prefix holds the classes in their shares."""
        import numpy as np

        digest = hashlib.sha256(f"{self.name}:{self.options.seed}".encode()).digest()
        shuffled = np.random.default_rng(int.from_bytes(digest[:8], "big")).permutation(len(rows)).tolist()
        if self.kind != "multiple_choice":
            return shuffled[:n]
        by_class: list[list[int]] = [[] for _ in self.labels]
        for i in shuffled:
            by_class[rows[i][self.target_column]].append(i)
        taken = [0] * len(by_class)
        order = []
        for c in stratified_sequence([len(members) for members in by_class], n):
            order.append(by_class[c][taken[c]])
            taken[c] += 1
        return order

    # Options added after caches existed: at their default (None) they stay out of the fingerprint.
    RESAMPLING_OPTIONS: ClassVar[tuple[str, ...]] = ("class_balance", "label_shares")

    def fingerprint_options(self) -> dict:
        options = super().fingerprint_options()
        return {k: v for k, v in options.items() if not (k in self.RESAMPLING_OPTIONS and v is None)}

    def train_shares(self) -> list[float] | None:
        """The label shares the training rows are resampled to (``class_balance`` or
        ``label_shares``, one per label), or None to keep the file's own."""
        o = self.options
        if o.class_balance is None and o.label_shares is None:
            return None
        if self.kind != "multiple_choice":
            raise DataError(f"task {self.name!r}: `class_balance` and `label_shares` resample the labels of a "
                            "classification task; this one is scored by generation: remove the option")
        if o.class_balance is not None:
            if len(self.labels) != 2:
                raise DataError(f"task {self.name!r}: `class_balance` is the second label's share of two, but the "
                                f"task has {len(self.labels)} labels {list(self.labels)}: give `label_shares`, "
                                "one share per label")
            return [1 - o.class_balance, o.class_balance]
        if len(o.label_shares) != len(self.labels):
            raise DataError(f"task {self.name!r}: `label_shares` has {len(o.label_shares)} shares but the task has "
                            f"{len(self.labels)} labels {list(self.labels)}: give one share per label, in that order")
        return list(o.label_shares)

    def resampled_order(self, rows: list[dict], n: int | None, shares: list[float], where: str) -> list[int]:
        """Indices of ``n`` rows whose labels hold ``shares`` as nearly as whole rows allow (every
        prefix too: :func:`stratified_sequence` over the shares), each label's rows in the task's
        seeded shuffle; without ``n``, as many as the rarest needed label allows. Rows are drawn
        without replacement: a share the file cannot supply stops with what to change."""
        weights = [round(share * 10**6) for share in shares]  # integers: the allocation stays exact
        by_class = self._rows_by_class(rows)
        have = [len(members) for members in by_class]
        if n is None:
            n = self._largest_n(weights, have)
        need = largest_remainder(weights, n)
        short = [(self.labels[c], k, h) for c, (k, h) in enumerate(zip(need, have)) if k > h]
        if short:
            label, k, h = short[0]
            raise DataError(f"{where}: {n} training rows at label shares {shares} need {k} rows labelled "
                            f"{label!r}, but the file has {h}; lower n_train to at most "
                            f"{self._largest_n(weights, have)} or move the shares towards the file's own")
        taken = [0] * len(by_class)
        order = []
        for c in stratified_sequence(weights, n):
            order.append(by_class[c][taken[c]])
            taken[c] += 1
        return order

    @staticmethod
    def _largest_n(weights: list[int], have: list[int]) -> int:
        """The most rows whose allocation at ``weights`` the ``have`` rows per label can supply."""
        n = min(h * 10**6 // w for h, w in zip(have, weights) if w)
        while n and any(k > h for k, h in zip(largest_remainder(weights, n), have)):
            n -= 1
        return n

    def _rows_by_class(self, rows: list[dict]) -> list[list[int]]:
        """Indices of ``rows`` per label, each in the task's seeded shuffle (``options.seed``)."""
        import numpy as np

        digest = hashlib.sha256(f"{self.name}:{self.options.seed}".encode()).digest()
        shuffled = np.random.default_rng(int.from_bytes(digest[:8], "big")).permutation(len(rows)).tolist()
        by_class: list[list[int]] = [[] for _ in self.labels]
        for i in shuffled:
            by_class[rows[i][self.target_column]].append(i)
        return by_class

    def _warn_single_class(self, split: Split, where: str, rows: list[dict], picked: list[dict]) -> None:
        """A classification selection of one label scores bias, not skill: say so."""
        labels = {row[self.target_column] for row in picked} if self.kind == "multiple_choice" else set()
        if len(picked) > 1 and len(labels) == 1:
            counts = Counter(self.labels[row[self.target_column]] for row in rows)
            warnings.warn(f"task {self.name!r}: all {len(picked)} {split} rows selected from {where} have the label "
                          f"{self.labels[labels.pop()]!r} (its usable rows: {dict(counts)}); a score on one class "
                          "measures a bias, not the task: give rows of every label", stacklevel=3)

    def answer_of(self, row: dict) -> str:
        """Gold answer of a generation row (subclasses extract it, e.g. after '####')."""
        return str(row[self.target_column]).strip()

    def examples(self, split: Split, n: int | None) -> list[Example]:
        """The examples of :meth:`clean_rows` (``n`` of them; all with None)."""
        out = []
        for row in self.clean_rows(split, n):
            prompt = self.render_prompt(row)
            if self.kind == "multiple_choice":
                label = row[self.target_column]
                out.append(Example(prompt, " " + self.labels[label], label=label))
            else:
                answer = self.answer_of(row)
                out.append(Example(prompt, " " + self.completion_of(row) + "\n", answer=answer))
        return out

    def completion_of(self, row: dict) -> str:
        """What a source trains on after the prompt (generation): the target column by default."""
        return str(row[self.target_column]).strip()

    def written_rows(self, rows: list[dict]) -> list[dict]:
        """Clean rows as written for lm-eval: columns kept (its templates read them), the rendered
        ``prompt``, and for generation the gold answer as scored (``harness_answer``)."""
        rows = [{**row, "prompt": self.render_prompt(row)} for row in rows]
        if self.kind != "multiple_choice":
            rows = [{**row, "harness_answer": self.answer_of(row)} for row in rows]
        return rows

    def write_test_file(self, data_dir: Path, n: int) -> Path:
        """The ``n`` test rows of :meth:`clean_rows`, columns kept (lm-eval's template reads them)."""
        return write_rows(self.written_rows(self.clean_rows("test", n)), data_dir, self.name)

    def fewshot_rows(self, n: int) -> list[dict] | None:
        """Up to ``n`` clean training rows for few-shot examples (the task's seeded sample); None
        when it has no training rows here. The hub is read for them only when the scored rows
        come from the hub too: shots alone never make a run with local test rows go online."""
        try:
            if self.data_file("train") is None and self.data_file("test") is not None:
                return None
        except DataError:  # a task that reads local files only, given none for train
            return None
        try:
            _, rows = self.usable_rows("train")
        except DataError:
            if self.data_file("train") is not None:
                raise  # a broken local file stops, as it would as a source
            return None
        return self.written_rows([rows[i] for i in self.sample_order(rows, min(n, len(rows)))])

    def lm_eval_config(self, data_dir: Path, n: int, alias: str | None = None, num_fewshot: int = 0) -> dict:
        base = self.base_config()
        if base is None:
            config = super().lm_eval_config(data_dir, n, alias, num_fewshot)
            # The written rows keep their columns: the gold is the (checked) label index, or the
            # answer extracted from the target column (answer_of), which is what exact match sees.
            gold = self.target_column if self.kind == "multiple_choice" else "harness_answer"
            config["doc_to_target"] = "{{" + gold + "}}"
            return config
        # lm-eval's own config, with only the data source (and the name) replaced.
        config = {k: v for k, v in base.items() if k not in ("tag", "group", "validation_split", "training_split",
                                                                "fewshot_split", "dataset_name")}
        config.update({"task": alias or self.name, "dataset_path": "json", "test_split": "test",
                       "dataset_kwargs": {"data_files": {"test": str(self.write_test_file(data_dir, n))}}})
        if callable(config.get("doc_to_text")):
            # A Python prompt function: each written row carries its output as `prompt`, so the
            # config stays plain data (hashable into cache keys) and the prompt is unchanged.
            config["doc_to_text"] = "{{prompt}}"
        if (config.get("fewshot_config") or {}).get("samples"):
            return config  # the config's own fixed shots (e.g. hand-written chains of thought): never test rows
        return self.add_fewshot(config, data_dir, num_fewshot, n)

    def metric(self) -> str:
        """A reused lm-eval config's first metric and first filter (``none`` without filters);
        the task's own metric otherwise."""
        base = self.base_config()
        if base is None:
            return super().metric()
        names = [m["metric"] for m in base.get("metric_list") or () if isinstance(m.get("metric"), str)]
        default = "acc" if self.kind == "multiple_choice" else "exact_match"
        filters = [f["name"] for f in base.get("filter_list") or () if f.get("name")]
        return f"{names[0] if names else default},{filters[0] if filters else 'none'}"

    def fingerprint(self) -> str:
        """Options, the content of the data files and how rows are selected from them, so edited
        data or another selection misses the cache."""
        from harness.files import file_sha256, stable_hash

        files = {}
        for split, p in self.options.data_files.items():
            path = Path(p).expanduser()
            if path.is_file():
                # Refused here, before it is hashed: a file over the size limit is never read.
                check_data_file(path, self.options.max_file_mb)
                files[split] = file_sha256(path)
            else:
                files[split] = "missing"
        selection = {"version": self.selection_version, "test_share": self.test_share}
        return stable_hash({"base": super().fingerprint(), "files": files, "selection": selection}, 16)
