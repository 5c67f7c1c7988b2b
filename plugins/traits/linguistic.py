"""Surface linguistic traits of a source's text: negation, questions, numerals, punctuation, readability.

Everything here is computed from characters and regular expressions only. There is no
part-of-speech tagging (e.g. noun/verb shares): no offline tagger is installed in this
environment (no spaCy or NLTK models), and the harness never downloads at run time.

Word tokens are those of :mod:`harness_plugins.traits.lexical`: lowercase maximal matches of
``[A-Za-z0-9']+`` (U+2019 is first replaced by ``'``).

The *text* of an example is its prompt, followed by a newline and its completion when the example
has no label (generation). The completion of a classification example is only the label word, a
property of the task's format rather than of its data, and label words such as "no" (BoolQ,
PAWS) or "Neither" (MNLI) would otherwise count as negations. Prompts include the task's template
text (e.g. "Question: ... ?\\nAnswer:"), because that is what the model is trained on.
"""

from __future__ import annotations

import re
import string

from harness.api import Example, SourceData, SourceTrait, hookimpl
from harness_plugins.traits.lexical import words

NEGATIONS = frozenset({"not", "no", "never", "nobody", "nothing", "neither", "nor", "none", "cannot"})
"""Negation words; besides these, any token ending in ``n't`` (``don't``, ``can't``, a bare ``n't``)."""

PUNCTUATION = frozenset(string.punctuation)
"""The 32 ASCII punctuation characters of :data:`string.punctuation`."""

SENTENCE_END = re.compile(r"[.!?]+(?=\s|$)")
VOWEL_GROUP = re.compile(r"[aeiouy]+")


def text_of(ex: Example) -> str:
    """The text an example's traits are computed on (see the module docstring)."""
    return ex.prompt if ex.label is not None else ex.prompt + "\n" + ex.completion


def is_negation(token: str) -> bool:
    return token in NEGATIONS or token.endswith("n't")


def syllables(word: str) -> int:
    """Vowel-group syllable estimate of a lowercase word token.

    The number of maximal runs of the letters ``a e i o u y``; minus one when the word ends in
    ``e`` but not ``le`` and has more than one run (a silent final e: "make" is 1, "table" 2);
    at least 1 (so numbers and tokens like ``n't`` count one syllable).
    """
    count = len(VOWEL_GROUP.findall(word))
    if count > 1 and word.endswith("e") and not word.endswith("le"):
        count -= 1
    return max(1, count)


def sentences(text: str) -> int:
    """Sentences of a text: segments between runs of ``.``, ``!`` or ``?`` that are followed by
    whitespace or the end of the text, counting only segments that contain a word token. So a
    text with words and no terminal punctuation is one sentence, and "3.5" does not split."""
    return sum(1 for segment in SENTENCE_END.split(text) if words(segment))


def flesch_reading_ease(n_words: int, n_sentences: int, n_syllables: int) -> float:
    """``206.835 - 1.015 * (words / sentences) - 84.6 * (syllables / words)``."""
    return 206.835 - 1.015 * (n_words / n_sentences) - 84.6 * (n_syllables / n_words)


class Linguistic(SourceTrait):
    """Negation rate, question rate, numeral share, punctuation density and Flesch reading ease.

    Over the example texts defined in the module docstring (prompt, plus completion for
    generation examples), pooled over the whole source.

    Outputs
    -------
    negation_rate
        Share of examples whose text has a negation token: one of ``not, no, never, nobody,
        nothing, neither, nor, none, cannot`` or any token ending in ``n't``.
    question_rate
        Share of examples whose *prompt* contains the character ``?``.
    numeral_share
        Share of word tokens that are numbers, i.e. consist of digits only (``"42"``; ``"3.5"``
        is two such tokens; ``"2nd"`` is not a number).
    punctuation_density
        Number of :data:`string.punctuation` characters divided by the total number of
        characters (whitespace included) of all texts.
    flesch_reading_ease
        ``206.835 - 1.015 * (W / S) - 84.6 * (Y / W)`` with ``W`` word tokens, ``S`` sentences
        (:func:`sentences`, summed over texts) and ``Y`` syllables (:func:`syllables`, summed over
        tokens), all pooled over the source. Higher is easier; it can be negative or above 100.

    ``negation_rate`` and ``question_rate`` are ``None`` without examples; ``numeral_share`` and
    ``flesch_reading_ease`` without word tokens; ``punctuation_density`` without characters.
    """

    name = "linguistic"
    description = ("Negation rate, question rate, numeral share, punctuation density and Flesch reading "
                   "ease of the source text (no part-of-speech tagging).")
    outputs = ("negation_rate", "question_rate", "numeral_share", "punctuation_density",
               "flesch_reading_ease")

    def compute(self, source: SourceData) -> dict[str, float | None]:
        out: dict[str, float | None] = dict.fromkeys(self.outputs)
        examples = source.examples
        if not examples:
            return out
        texts = [text_of(ex) for ex in examples]
        tokens_per_text = [words(t) for t in texts]
        tokens = [w for ts in tokens_per_text for w in ts]
        chars = sum(len(t) for t in texts)

        out["negation_rate"] = sum(any(map(is_negation, ts)) for ts in tokens_per_text) / len(examples)
        out["question_rate"] = sum("?" in ex.prompt for ex in examples) / len(examples)
        if chars:
            out["punctuation_density"] = sum(ch in PUNCTUATION for t in texts for ch in t) / chars
        if tokens:
            out["numeral_share"] = sum(w.isdigit() and w.isascii() for w in tokens) / len(tokens)
            out["flesch_reading_ease"] = flesch_reading_ease(
                len(tokens), sum(sentences(t) for t in texts), sum(syllables(w) for w in tokens))
        return out


@hookimpl
def register_traits(register):
    register(Linguistic)
