"""Word problems: a person's count of items changes over 2-3 steps; answer the final count."""

from __future__ import annotations

import random

from pydantic import Field

from harness.hookspecs import hookimpl
from harness.tasks import Example, GeneratedTask, TaskOptions, generation_example

NAMES = (("Mia", "she"), ("Noah", "he"), ("Emma", "she"), ("Liam", "he"), ("Ava", "she"),
         ("Ethan", "he"), ("Zoe", "she"), ("Lucas", "he"), ("Lily", "she"), ("Omar", "he"),
         ("Sara", "she"), ("Ben", "he"), ("Nina", "she"), ("Leo", "he"), ("Maya", "she"),
         ("Max", "he"), ("Rosa", "she"), ("Tom", "he"), ("Aisha", "she"), ("Ravi", "he"))
ITEMS = ("apples", "marbles", "stickers", "pencils", "cookies", "books", "coins", "stamps",
         "cards", "balloons", "shells", "candies", "toy cars", "oranges", "crayons", "buttons")
# Each phrase holds one number; its verb alone says whether the count goes up or down.
GAINS = ("buys {n} more", "finds {n} more", "gets {n} more from {other}", "wins {n} more",
         "receives {n} more as a gift")
LOSSES = ("gives {n} away", "gives {n} to {other}", "loses {n}", "sells {n}", "trades away {n}")


class WordProblemsOptions(TaskOptions):
    steps: int = Field(2, ge=2, le=3, description="Changes to the starting count (2 or 3).")


class WordProblems(GeneratedTask):
    """Word problems: a person's count of items changes over 2-3 steps; answer the final count."""

    name = "word_problems"
    description = "Short multi-step add/subtract word problems about a person's items."
    kind = "generation"
    abilities = ("arithmetic", "reasoning")
    max_gen_toks = 8
    Options = WordProblemsOptions

    def generate(self, rng: random.Random) -> Example:
        (name, pronoun), item = rng.choice(NAMES), rng.choice(ITEMS)
        count = rng.randint(5, 40)
        opening = f"{name} has {count} {item}."
        clauses = []
        for _ in range(self.options.steps):
            # Losses never exceed the current count, so every answer is a non-negative integer.
            if count > 0 and rng.random() < 0.5:
                n = rng.randint(1, min(count, 15))
                template, count = rng.choice(LOSSES), count - n
            else:
                n = rng.randint(1, 15)
                template, count = rng.choice(GAINS), count + n
            other = rng.choice([o for o, _ in NAMES if o != name])
            clauses.append(template.format(n=n, other=other))
        body = ", ".join(clauses[:-1]) + " and " + clauses[-1]
        prompt = (f"{opening} {pronoun.capitalize()} {body}. "
                  f"How many {item} does {pronoun} have now?\nAnswer:")
        return generation_example(prompt, str(count))


@hookimpl
def register_tasks(register):
    register(WordProblems)
