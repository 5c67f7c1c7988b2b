"""Sentiment: template reviews where sentence structure, not word counts, decides the label."""

from __future__ import annotations

import random

from pydantic import Field

from harness.api import Example, GeneratedTask, TaskOptions, classification_example, hookimpl

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
    class_balance: float = Field(0.5, gt=0, lt=1, description="Share of positive labels.",
                                 json_schema_extra={"statistic": "class_balance"})


def clause(rng: random.Random, aspect: str, positive: bool) -> str:
    # A negative clause is sometimes a negated positive word ("not great"), so "not" and the
    # positive adjectives appear under both labels; "not bad"-style double negatives are avoided.
    if not positive and rng.random() < 0.25:
        return f"the {aspect} was not {rng.choice(POSITIVE)}"
    adjective = rng.choice(POSITIVE if positive else NEGATIVE)
    return f"the {aspect} was {rng.choice(INTENSIFIERS)}{adjective}"


class Sentiment(GeneratedTask):
    """Sentiment of template reviews whose structure decides the label.

    Forms: "X, but Y" (Y decides), "X, although Y" (X decides), "anything but <adjective>"
    (inverts it), and plain or "and" reviews. The concessive and inverted forms are why this is
    not free for a base model: SmolLM2-135M scores below chance on them, while the rules are
    regular enough for a LoRA adapter to learn.
    """

    name = "sentiment"
    description = "Binary sentiment of short template reviews (movies, restaurants, products, hotels)."
    kind = "multiple_choice"
    labels = ("negative", "positive")
    abilities = ("sentiment",)
    Options = SentimentOptions
    version = 3  # v2 added the "although" and "anything but" forms; v3 exact class balance

    def class_shares(self) -> list[float]:
        return [1 - self.options.class_balance, self.options.class_balance]

    def generate(self, rng: random.Random, label: int | None = None) -> Example:
        positive = rng.random() < self.options.class_balance if label is None else bool(label)
        a1, a2 = rng.sample(ASPECTS[rng.choice(list(ASPECTS))], 2)
        form = rng.random()
        # Contrasts hold one opinion of each polarity, so a bag of words cannot decide them.
        if form < 0.3:  # the clause after "but" decides
            text = f"{clause(rng, a1, not positive)}, but {clause(rng, a2, positive)}."
        elif form < 0.6:  # the main clause decides; the concession after "although" does not
            text = f"{clause(rng, a1, positive)}, although {clause(rng, a2, not positive)}."
        elif form < 0.75:  # "anything but" inverts the adjective that follows it
            adjective = rng.choice(NEGATIVE if positive else POSITIVE)
            text = f"the {a1} was anything but {adjective}."
        elif form < 0.9:
            text = f"{clause(rng, a1, positive)} and {clause(rng, a2, positive)}."
        else:
            text = f"{clause(rng, a1, positive)}."
        prompt = f"Review: {text[0].upper()}{text[1:]}\nSentiment:"
        return classification_example(prompt, self.labels, int(positive))


@hookimpl
def register_tasks(register):
    register(Sentiment)
