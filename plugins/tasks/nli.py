"""NLI: generated premise/hypothesis pairs whose relation follows a few fixed edit rules."""

from __future__ import annotations

import random
from typing import Literal

from pydantic import Field, field_validator

from harness.api import Example, GeneratedTask, Split, TaskOptions, classification_example, hookimpl

# Noun -> a more general noun it entails ("A girl is ..." entails "A child is ...").
NOUNS = {"man": "person", "woman": "person", "boy": "child", "girl": "child",
         "teacher": "person", "doctor": "person", "farmer": "person", "student": "person",
         "chef": "person", "musician": "person", "nurse": "person", "pilot": "person"}
# Adjectives in antonym pairs: swapping one for its partner is a contradiction.
ANTONYMS = (("tall", "short"), ("young", "old"), ("happy", "sad"), ("quiet", "loud"),
            ("calm", "angry"), ("tired", "energetic"))
ACTIONS = ("reading a book", "eating lunch", "playing guitar", "painting a picture",
           "writing a letter", "drinking coffee", "fixing a bike", "watching a movie",
           "cooking dinner", "singing a song", "washing the dishes", "making a phone call",
           "feeding a cat", "planting flowers")
PLACES = ("in the park", "at the beach", "in the kitchen", "at the office", "on a train",
          "in a library", "in the garden", "at a cafe", "on a bus", "at the station")
# Extra facts the premise never states: adding one makes the hypothesis neutral.
EXTRAS = ("with a friend", "for the first time", "in the morning", "after work", "for a class",
          "with a smile", "late at night", "on a holiday")


# The question line of each label form; the numbers form spells out what each digit means.
QUESTIONS = {"words": "Relation:",
             "numbers": "Relation (0 = entailment, 1 = neutral, 2 = contradiction):"}
LABELS = {"words": ("entailment", "neutral", "contradiction"), "numbers": ("0", "1", "2")}


class NLIOptions(TaskOptions):
    label_form: Literal["words", "numbers"] = Field(
        "words", description="Label words ('entailment', ...) or digits ('0', '1', '2').",
        json_schema_extra={"statistic": "label_form"})
    # Left out of the fingerprint while None: the default data (labels drawn uniformly) is unchanged.
    label_shares: list[float] | None = Field(
        None, description="Exact share of each label (entailment, neutral, contradiction), summing to 1; "
        "None draws labels uniformly at random.",
        json_schema_extra={"statistic": "class_balance", "omit_when_default": True})

    @field_validator("label_shares")
    @classmethod
    def _shares(cls, value):
        if value is None:
            return value
        if len(value) != len(LABELS["words"]) or any(not 0 <= v <= 1 for v in value) or abs(sum(value) - 1) > 1e-6:
            raise ValueError(f"label_shares must be {len(LABELS['words'])} shares in [0, 1] (entailment, neutral, "
                             f"contradiction) summing to 1, got {value}; e.g. [0.8, 0.1, 0.1]")
        return value


def _sentence(adj: str | None, noun: str, negated: bool, action: str, tail: list[str]) -> str:
    words = ([adj] if adj else []) + [noun]
    article = "An" if words[0][0] in "aeiou" else "A"
    verb = "is not" if negated else "is"
    return " ".join([article, *words, verb, action, *tail]) + "."


class NLI(GeneratedTask):
    """NLI: generated premise/hypothesis pairs whose relation follows a few fixed edit rules."""

    name = "nli"
    description = "Three-way entailment over generated premise/hypothesis sentence pairs."
    kind = "multiple_choice"
    labels = LABELS["words"]  # the default form's; instances set theirs from `label_form`
    abilities = ("nlu",)
    Options = NLIOptions
    version = 2  # v2 added `label_form`

    def __init__(self, **options):
        super().__init__(**options)
        self.labels = LABELS[self.options.label_form]

    def class_shares(self) -> list[float] | None:
        return self.options.label_shares

    def generate(self, rng: random.Random, label: int | None = None) -> Example:
        noun, action = rng.choice(list(NOUNS)), rng.choice(ACTIONS)
        pair = rng.choice(ANTONYMS) if rng.random() < 0.7 else None
        adj = rng.choice(pair) if pair else None
        place = rng.choice(PLACES) if rng.random() < 0.7 else None
        premise = _sentence(adj, noun, False, action, [place] if place else [])

        drawn = rng.randrange(3)  # drawn even when `label` is given, so the stream is the same
        label = drawn if label is None else label
        h_adj, h_noun, h_neg, h_place, h_extra = adj, noun, False, place, None
        if label == 0:  # entailment: drop a detail or generalise the noun (at least one edit)
            edits = ["noun"] + (["adj"] if adj else []) + (["place"] if place else [])
            for edit in rng.sample(edits, rng.randint(1, len(edits))):
                if edit == "noun":
                    h_noun = NOUNS[noun]
                elif edit == "adj":
                    h_adj = None
                else:
                    h_place = None
        elif label == 1:  # neutral: state something the premise does not (maybe dropping a detail)
            edits = ["extra"] + (["adj"] if not adj else []) + (["place"] if not place else [])
            edit = rng.choice(edits)
            if edit == "extra":
                h_extra = rng.choice(EXTRAS)
            elif edit == "adj":
                h_adj = rng.choice(rng.choice(ANTONYMS))
            else:
                h_place = rng.choice(PLACES)
            if rng.random() < 0.3:  # so that length alone does not give the label away
                h_noun = NOUNS[noun]
        else:  # contradiction: negate the action, flip the adjective, or move the person
            edits = ["negate"] + (["adj"] if adj else []) + (["place"] if place else [])
            edit = rng.choice(edits)
            if edit == "negate":
                h_neg = True
            elif edit == "adj":
                h_adj = pair[1 - pair.index(adj)]
            else:
                h_place = rng.choice([p for p in PLACES if p != place])
            if rng.random() < 0.3 and edit != "adj":
                h_adj = None  # dropping a detail too keeps the contradiction
        tail = [p for p in (h_place, h_extra) if p]
        hypothesis = _sentence(h_adj, h_noun, h_neg, action, tail)
        question = QUESTIONS[self.options.label_form]
        prompt = f"Premise: {premise}\nHypothesis: {hypothesis}\n{question}"
        return classification_example(prompt, self.labels, label)

    def _split_of(self, prompt: str) -> Split:
        # Split by the words-form prompt, so both label forms hold the same pairs in each split
        # (the generator's draws do not depend on the form, only the question line does).
        question = QUESTIONS[self.options.label_form]
        return super()._split_of(prompt.removesuffix(question) + QUESTIONS["words"])


@hookimpl
def register_tasks(register):
    register(NLI)
