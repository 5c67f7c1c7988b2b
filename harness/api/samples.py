"""Reading lm-eval's per-sample records as the harness logs them (``samples/<model>/<target>.jsonl``):
which label a classification record predicted, whether a generation record gave an answer, how long
its output was. One reading for the behaviour trait and the twin contrasts, so that both count the
same thing."""

from __future__ import annotations

# What lm-eval's regex filter leaves when the answer regex matched nothing.
NO_ANSWER = frozenset({"", "[invalid]"})


def label_index(value, k: int) -> int | None:
    """A label index in ``range(k)`` from an int, an integral float or a digit string; else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return value if isinstance(value, int) and 0 <= value < k else None


def predicted_index(record: dict, k: int) -> int | None:
    """The label a classification record predicted: its ``prediction``, else the choice of highest
    loglikelihood (the first of equals, as lm-eval's argmax)."""
    pred = record.get("prediction")
    if pred is None and record.get("loglikelihoods"):
        loglik = record["loglikelihoods"]
        pred = max(range(len(loglik)), key=loglik.__getitem__)
    return label_index(pred, k)


def answered(prediction) -> bool:
    """Whether the answer regex found something: the extracted answer is neither missing nor empty."""
    return prediction is not None and str(prediction).strip() not in NO_ANSWER


def output_length(record: dict) -> int:
    """Whitespace-separated tokens of the raw generated text (0 when there is none)."""
    return len(str(record.get("output") or "").split())
