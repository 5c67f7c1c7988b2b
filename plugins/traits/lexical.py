"""Lexical diversity of a source's text: type-token ratio, word length, share of hapax words.

Tokenisation (shared by :mod:`harness_plugins.traits.linguistic`): a text is lowercased and its
word tokens are the maximal matches of the regular expression ``[A-Za-z0-9']+`` (ASCII letters,
digits and the straight apostrophe; the typographic apostrophe U+2019 is first replaced by ``'``).
Everything else (spaces, punctuation, non-ASCII letters) separates words and is dropped, so
"Don't stop, 2 cats!" gives ``don't``, ``stop``, ``2``, ``cats``.
"""

from __future__ import annotations

import re
from collections import Counter

from harness.api import SourceData, SourceTrait, hookimpl

WORD = re.compile(r"[A-Za-z0-9']+")


def words(text: str) -> list[str]:
    """The lowercase word tokens of ``text`` (see the module docstring)."""
    return WORD.findall(text.replace("\u2019", "'").lower())


class Lexical(SourceTrait):
    """Type-token ratio, mean word length and hapax share over a source's prompts and completions.

    The tokens are the word tokens (module docstring) of every example's prompt and of its
    completion, each text tokenised on its own, pooled over the whole source. A *type* is a
    distinct lowercase token. With ``N`` tokens, ``V`` types and ``V1`` types that occur exactly
    once in the whole source:

    Outputs
    -------
    type_token_ratio
        ``V / N``.
    mean_word_length
        Mean number of characters per token (apostrophes count as characters).
    hapax_share
        Share of tokens whose type occurs exactly once in the source: ``V1 / N``.

    Every output is ``None`` when the source has no word tokens. Note that the type-token ratio
    falls as ``N`` grows, so compare sources of the same size.
    """

    name = "lexical"
    description = "Type-token ratio, mean word length and hapax (once-only word) share of prompts and completions."
    outputs = ("type_token_ratio", "mean_word_length", "hapax_share")

    def compute(self, source: SourceData) -> dict[str, float | None]:
        tokens = [w for ex in source.examples for text in (ex.prompt, ex.completion) for w in words(text)]
        if not tokens:
            return dict.fromkeys(self.outputs)
        counts = Counter(tokens)
        n = len(tokens)
        return {"type_token_ratio": len(counts) / n,
                "mean_word_length": sum(len(w) for w in tokens) / n,
                "hapax_share": sum(1 for c in counts.values() if c == 1) / n}


@hookimpl
def register_traits(register):
    register(Lexical)
