"""Ordering: a shuffled chain of comparisons, then a yes/no question that needs the whole chain."""

from __future__ import annotations

import random

from pydantic import Field

from harness.api import Example, GeneratedTask, TaskOptions, classification_example, hookimpl

NAMES = ("Ann", "Bob", "Cal", "Dan", "Eve", "Fay", "Gus", "Hal", "Ida", "Jon", "Kim", "Lea",
         "Max", "Ned", "Oli", "Pam", "Ray", "Sue", "Tim", "Uma", "Vic", "Wes", "Zoe", "Amy",
         "Ben", "Cat", "Don", "Eli", "Flo", "Gil")
RELATIONS = ("taller", "older", "faster", "heavier", "stronger", "richer")


class OrderingOptions(TaskOptions):
    entities: int = Field(3, ge=3, le=4, description="People in the chain (3 or 4).")


class Ordering(GeneratedTask):
    """Ordering: a shuffled chain of comparisons, then a yes/no question that needs the whole chain."""

    name = "ordering"
    description = "Transitive comparisons ('Ann is taller than Bob. ...') with a yes/no question."
    kind = "multiple_choice"
    labels = ("no", "yes")
    abilities = ("reasoning",)
    Options = OrderingOptions

    def generate(self, rng: random.Random) -> Example:
        chain = rng.sample(NAMES, self.options.entities)  # chain[0] has the most of the relation
        rel = rng.choice(RELATIONS)
        # Only neighbours are compared, in shuffled order, so no statement answers the question.
        facts = [f"{a} is {rel} than {b}." for a, b in zip(chain, chain[1:])]
        rng.shuffle(facts)
        # Ask about two people at least two links apart, in either order: the answer is yes
        # exactly when the first one asked about comes earlier in the chain.
        i, j = rng.choice([(i, j) for i in range(len(chain)) for j in range(i + 2, len(chain))])
        yes = rng.random() < 0.5
        x, y = (chain[i], chain[j]) if yes else (chain[j], chain[i])
        prompt = f"{' '.join(facts)} Is {x} {rel} than {y}?\nAnswer:"
        return classification_example(prompt, self.labels, int(yes))


@hookimpl
def register_tasks(register):
    register(Ordering)
