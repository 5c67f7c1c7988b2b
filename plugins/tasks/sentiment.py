"""Sentiment: template reviews; in contrastive reviews the clause after "but" decides."""

from __future__ import annotations

import random

from pydantic import Field

from harness.hookspecs import hookimpl
from harness.tasks import Example, GeneratedTask, TaskOptions, classification_example

# Singular aspects only, so "The <aspect> was ..." is always grammatical.
ASPECTS = {
    "movies": ("plot", "acting", "soundtrack", "ending", "dialogue", "pacing", "cast", "script"),
    "restaurants": ("food", "service", "staff", "atmosphere", "dessert", "pasta", "menu", "soup"),
    "products": ("battery", "screen", "design", "keyboard", "camera", "packaging", "sound",
                 "charger"),
    "hotels": ("room", "location", "breakfast", "bed", "pool", "view", "lobby", "shower"),
}
POSITIVE = ("great", "excellent", "wonderful", "superb", "fantastic", "impressive", "lovely",
            "outstanding", "brilliant", "delightful", "pleasant", "amazing")
NEGATIVE = ("awful", "terrible", "dull", "disappointing", "poor", "mediocre", "weak", "dreadful",
            "horrible", "bland", "annoying", "lousy")
INTENSIFIERS = ("", "", "really ", "truly ", "very ", "quite ", "absolutely ", "pretty ")


class SentimentOptions(TaskOptions):
    class_balance: float = Field(0.5, gt=0, lt=1, description="Share of positive labels.")


def _clause(rng: random.Random, aspect: str, positive: bool) -> str:
    # A negative clause is sometimes a negated positive word ("not great"), so "not" and the
    # positive adjectives appear under both labels; "not bad"-style double negatives are avoided.
    if not positive and rng.random() < 0.25:
        return f"the {aspect} was not {rng.choice(POSITIVE)}"
    adjective = rng.choice(POSITIVE if positive else NEGATIVE)
    return f"the {aspect} was {rng.choice(INTENSIFIERS)}{adjective}"


class Sentiment(GeneratedTask):
    """Sentiment: template reviews; in contrastive reviews the clause after "but" decides."""

    name = "sentiment"
    description = "Binary sentiment of short template reviews (movies, restaurants, products, hotels)."
    kind = "multiple_choice"
    labels = ("negative", "positive")
    abilities = ("sentiment",)
    Options = SentimentOptions

    def generate(self, rng: random.Random) -> Example:
        positive = rng.random() < self.options.class_balance
        a1, a2 = rng.sample(ASPECTS[rng.choice(list(ASPECTS))], 2)
        form = rng.random()
        if form < 0.6:
            # Contrast: the opposite opinion first, the deciding one after "but". This is what
            # keeps a bag-of-words baseline (and the base model) from getting it for free.
            text = f"{_clause(rng, a1, not positive)}, but {_clause(rng, a2, positive)}."
        elif form < 0.8:
            text = f"{_clause(rng, a1, positive)} and {_clause(rng, a2, positive)}."
        else:
            text = f"{_clause(rng, a1, positive)}."
        prompt = f"Review: {text[0].upper()}{text[1:]}\nSentiment:"
        return classification_example(prompt, self.labels, int(positive))


@hookimpl
def register_tasks(register):
    register(Sentiment)
