"""Paraphrase: PAWS-style pairs where word order, not word overlap, decides the meaning."""

from __future__ import annotations

import random
import re
from collections import Counter

from harness.api import Example, GeneratedTask, classification_example, hookimpl
from harness_plugins.tasks.word_problems import NAMES

PEOPLE = tuple(name for name, _ in NAMES)
ANIMALS = ("the dog", "the cat", "the fox", "the horse", "the goat", "the rabbit", "the duck",
           "the mouse", "the cow", "the pig")
# (past, participle, synonym): the synonym gives a paraphrase with different words.
PEOPLE_VERBS = (("called", "called", "phoned"), ("helped", "helped", "assisted"),
                ("hired", "hired", "employed"), ("warned", "warned", "cautioned"),
                ("taught", "taught", "tutored"), ("interviewed", "interviewed", "questioned"),
                ("praised", "praised", "complimented"), ("beat", "beaten", "defeated"))
ANIMAL_VERBS = (("chased", "chased", "ran after"), ("followed", "followed", "went after"),
                ("scared", "scared", "frightened"), ("pushed", "pushed", "shoved"))
TIMES = ("yesterday", "on Monday", "on Friday", "last week", "this morning", "after lunch",
         "at noon", "in the evening", "before dinner", "last night")
CITIES = ("Paris", "Rome", "Berlin", "Madrid", "Lisbon", "Vienna", "Prague", "Athens", "Dublin",
          "Oslo", "Warsaw", "Zurich")
TRANSPORT = ("flights", "trains", "buses")
FREQUENCIES = ("every morning", "twice a day", "every hour", "on weekends", "at night",
               "three times a week", "every evening", "once a day")
COMPARATIVES = (("taller", "shorter"), ("older", "younger"), ("faster", "slower"),
                ("stronger", "weaker"), ("richer", "poorer"))
COLORS = ("red", "blue", "green", "black", "white", "brown", "yellow", "grey")
THINGS = ("car", "bike", "hat", "coat", "lamp", "chair", "bag", "scarf", "phone", "kettle")


def _cap(text: str) -> str:
    return text[0].upper() + text[1:]


# Each frame draws a situation and returns (render, x, y): render(x, y) lists sentences that all
# mean the same, and render(y, x) the same sentences with the two roles swapped, word for word.
def _event(rng: random.Random):
    entities, verbs = rng.choice(((PEOPLE, PEOPLE_VERBS), (ANIMALS, ANIMAL_VERBS)))
    (past, participle, synonym), when = rng.choice(verbs), rng.choice(TIMES)
    return (lambda x, y: [f"{_cap(x)} {past} {y} {when}.",
                          f"{_cap(when)}, {x} {past} {y}.",  # reordered: same words
                          f"{_cap(y)} was {participle} by {x} {when}.",  # passive
                          f"{_cap(x)} {synonym} {y} {when}."]), *rng.sample(entities, 2)


def _route(rng: random.Random):
    transport, often = rng.choice(TRANSPORT), rng.choice(FREQUENCIES)
    return (lambda x, y: [f"{_cap(transport)} from {x} to {y} leave {often}.",
                          f"{_cap(transport)} to {y} from {x} leave {often}.",
                          f"{_cap(often)}, {transport} leave from {x} to {y}.",
                          f"There are {transport} from {x} to {y} {often}."]), \
        *rng.sample(CITIES, 2)


def _comparison(rng: random.Random):
    more, less = rng.sample(rng.choice(COMPARATIVES), 2)
    return (lambda x, y: [f"{x} is {more} than {y}.", f"{y} is {less} than {x}.",
                          f"Compared with {y}, {x} is {more}.",
                          f"{x}, compared with {y}, is {more}."]), *rng.sample(PEOPLE, 2)


def _purchase(rng: random.Random):  # the roles are the two colours: which thing has which
    buyer, (a, b) = rng.choice(PEOPLE), rng.sample(THINGS, 2)
    return (lambda x, y: [f"{buyer} bought a {x} {a} and a {y} {b}.",
                          f"{buyer} bought a {y} {b} and a {x} {a}.",
                          f"{buyer} purchased a {x} {a} and a {y} {b}."]), *rng.sample(COLORS, 2)


FRAMES = (_event, _route, _comparison, _purchase)


def bag(sentence: str) -> Counter:
    """The sentence's words, lowercased, without punctuation: what a negative pair shares."""
    return Counter(re.findall(r"[a-z]+", sentence.lower()))


class Paraphrase(GeneratedTask):
    """Do two sentences mean the same? PAWS-style adversarial pairs.

    A negative swaps two roles ("The dog chased the cat" / "The cat chased the dog"), so both
    sentences hold exactly the same words. A positive is a true paraphrase: passive voice, a
    synonym, or (mostly) a reordering that keeps the meaning ("Flights to Rome from Paris"), so
    that word overlap is a poor guide: only who does what to whom decides.
    """

    name = "paraphrase"
    description = "Same meaning or not: adversarial sentence pairs built by swapping roles."
    kind = "multiple_choice"
    labels = ("no", "yes")
    abilities = ("nlu",)

    def class_shares(self) -> list[float]:
        return [0.5, 0.5]

    def generate(self, rng: random.Random, label: int | None = None) -> Example:
        label = rng.randrange(2) if label is None else label
        render, x, y = rng.choice(FRAMES)(rng)
        same, swapped = render(x, y), render(y, x)
        if label:
            pairs = [(a, b) for a in same for b in same if a != b]
            # Most positives reorder the very same words too (every frame has such a pair), so
            # that "same words" does not mean "no": negatives always hold the same words.
            if rng.random() < 0.6:
                pairs = [(a, b) for a, b in pairs if bag(a) == bag(b)]
            first, second = rng.choice(pairs)
        else:  # a role swap of the same words, possibly also reordered
            first = rng.choice(same)
            second = rng.choice([s for s in swapped if bag(s) == bag(first)])
        if rng.random() < 0.5:
            first, second = second, first
        prompt = f"Sentence 1: {first}\nSentence 2: {second}\nSame meaning:"
        return classification_example(prompt, self.labels, label)


@hookimpl
def register_tasks(register):
    register(Paraphrase)
