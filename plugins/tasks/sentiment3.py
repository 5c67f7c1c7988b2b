"""Three-way sentiment: the reviews of ``sentiment`` plus neutral ones that give no verdict."""

from __future__ import annotations

import random

from pydantic import Field, field_validator

from harness.api import Example, GeneratedTask, TaskOptions, classification_example, hookimpl
from harness_plugins.tasks.sentiment import ASPECTS, clause

# Facts without an opinion, per domain. Neutral reviews are made of them, and polar reviews
# sometimes open with one too, so a fact alone never gives the label away.
DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
PARTS = ("morning", "afternoon", "evening", "night")
COUNTS = ("two", "three", "four", "five", "six", "seven", "eight")
FACTS = {
    "movies": ("the film ran for {runtime} minutes", "we watched it on a {day} {part}",
               "it came out in {year}", "the cinema was {minutes} minutes from home"),
    "restaurants": ("we booked a table for {count}", "we went there on a {day} {part}",
                    "the bill came to {price} dollars", "we waited {minutes} minutes for a table"),
    "products": ("it arrived on a {day} {part}", "it cost {price} dollars",
                 "I have had it for {count} weeks", "it was delivered in {count} days"),
    "hotels": ("the room was on floor {floor}", "we stayed for {count} nights",
               "we checked in on a {day} {part}", "it cost {price} dollars a night"),
}


def _facts(rng: random.Random, domain: str, k: int) -> list[str]:
    """``k`` facts about one stay, meal, film or purchase (distinct templates: no two bills)."""
    return [template.format(
        runtime=rng.randrange(80, 185, 5), minutes=rng.randrange(5, 65, 5), day=rng.choice(DAYS),
        part=rng.choice(PARTS), year=rng.randint(1970, 2023), count=rng.choice(COUNTS),
        price=rng.randrange(20, 300, 5), floor=rng.randint(2, 12))
        for template in rng.sample(FACTS[domain], k)]


class Sentiment3Options(TaskOptions):
    class_balance: list[float] | None = Field(
        None, description="Shares of negative, neutral and positive labels (three, summing to "
                          "1); default equal shares.")

    @field_validator("class_balance")
    @classmethod
    def _three_shares(cls, shares: list[float] | None) -> list[float] | None:
        if shares is not None and (len(shares) != 3 or min(shares) < 0
                                   or abs(sum(shares) - 1) > 1e-6):
            raise ValueError("class_balance must be three non-negative shares (negative, neutral, "
                             f"positive) that sum to 1, got {shares}")
        return shares


class Sentiment3(GeneratedTask):
    """Three-way sentiment of template reviews: negative, neutral or positive.

    Polar reviews use the forms of ``sentiment`` ("X, but Y": Y decides; "X, although Y": X
    decides; plain or "and" reviews of one polarity). Neutral reviews hold no verdict: facts
    ("The room was on floor 3.") or a balanced "X was great and Y was awful", which differs
    from a polar "X was great, but Y was awful" only in its connective.
    """

    name = "sentiment3"
    description = "Three-way sentiment (negative/neutral/positive) of short template reviews."
    kind = "multiple_choice"
    labels = ("negative", "neutral", "positive")
    abilities = ("sentiment",)
    Options = Sentiment3Options

    def class_shares(self) -> list[float]:
        return self.options.class_balance or [1 / 3] * 3

    def generate(self, rng: random.Random, label: int | None = None) -> Example:
        if label is None:
            label = rng.choices(range(3), weights=self.class_shares())[0]
        domain = rng.choice(list(ASPECTS))
        a1, a2 = rng.sample(ASPECTS[domain], 2)
        form = rng.random()
        if label == 1 and form < 0.5:  # facts only: no opinion at all
            sentences = _facts(rng, domain, rng.randint(1, 2))
        else:  # an opinion, sometimes after a fact
            sentences = _facts(rng, domain, 1) if rng.random() < 0.25 else []
            positive = label == 2
            if label == 1:  # one opinion of each polarity, either order, and no contrast to decide
                first = rng.random() < 0.5
                sentences.append(f"{clause(rng, a1, first)} and {clause(rng, a2, not first)}")
            elif form < 0.3:  # the clause after "but" decides
                sentences.append(
                    f"{clause(rng, a1, not positive)}, but {clause(rng, a2, positive)}")
            elif form < 0.6:  # the main clause decides; the concession after "although" does not
                sentences.append(
                    f"{clause(rng, a1, positive)}, although {clause(rng, a2, not positive)}")
            elif form < 0.8:
                sentences.append(f"{clause(rng, a1, positive)} and {clause(rng, a2, positive)}")
            else:
                sentences.append(clause(rng, a1, positive))
        text = " ".join(f"{s[0].upper()}{s[1:]}." for s in sentences)
        return classification_example(f"Review: {text}\nSentiment:", self.labels, label)


@hookimpl
def register_tasks(register):
    register(Sentiment3)
