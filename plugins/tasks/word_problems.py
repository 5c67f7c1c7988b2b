"""Word problems: a person's count of items changes over 2-3 steps; answer the final count.

Two tasks over the very same problems: ``word_problems`` answers with the number alone,
``word_problems_rationale`` works through each step first. Same content, very different
generation length, so the two isolate what the length of the source completions does.
"""

from __future__ import annotations

import random

from pydantic import Field

from harness.api import Example, GeneratedTask, Split, TaskOptions, generation_example, hookimpl

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
    # Left out of the fingerprint while False: the default data (the number alone) is unchanged.
    rationale: bool = Field(False, description="Answer with a worked rationale ('Mia starts with 5. 5 + 3 = 8. "
                            "#### 8'), scored after the '####', instead of the number alone: the completion-length "
                            "twin of the same problems.",
                            json_schema_extra={"statistic": "completion_length", "omit_when_default": True})


RATIONALE_REGEX = r"#### (-?\d+)"
RATIONALE_MAX_GEN_TOKS = 64  # three steps take at most 49 SmolLM2 tokens (digits are single tokens)


def rationale_example(prompt: str, name: str, start: int, changes: list[int]) -> Example:
    """The one-line worked answer " Rosa starts with 38. 38 + 6 = 44. 44 - 2 = 42. #### 42"."""
    steps, count = [f"{name} starts with {start}."], start
    for change in changes:
        sign = "+" if change > 0 else "-"
        steps.append(f"{count} {sign} {abs(change)} = {count + change}.")
        count += change
    answer = str(count)
    return Example(prompt=prompt, completion=f" {' '.join(steps)} #### {answer}\n", answer=answer)


class WordProblems(GeneratedTask):
    """Word problems: a person's count of items changes over 2-3 steps; answer the final count."""

    name = "word_problems"
    description = "Short multi-step add/subtract word problems about a person's items."
    kind = "generation"
    abilities = ("arithmetic", "reasoning")
    max_gen_toks = 8
    Options = WordProblemsOptions

    def __init__(self, **options):
        super().__init__(**options)
        if self.options.rationale:  # scored as a target, the worked answer needs its room and its marker
            self.answer_regex, self.max_gen_toks = RATIONALE_REGEX, RATIONALE_MAX_GEN_TOKS

    def generate(self, rng: random.Random) -> Example:
        (name, pronoun), item = rng.choice(NAMES), rng.choice(ITEMS)
        start = count = rng.randint(5, 40)
        opening = f"{name} has {count} {item}."
        clauses, changes = [], []
        for _ in range(self.options.steps):
            # Losses never exceed the current count, so every answer is a non-negative integer.
            if count > 0 and rng.random() < 0.5:
                n = rng.randint(1, min(count, 15))
                template, change = rng.choice(LOSSES), -n
            else:
                n = rng.randint(1, 15)
                template, change = rng.choice(GAINS), n
            count += change
            changes.append(change)
            other = rng.choice([o for o, _ in NAMES if o != name])
            clauses.append(template.format(n=n, other=other))
        body = ", ".join(clauses[:-1]) + " and " + clauses[-1]
        prompt = (f"{opening} {pronoun.capitalize()} {body}. "
                  f"How many {item} does {pronoun} have now?\nAnswer:")
        return self._example(prompt, name, start, changes)

    def _example(self, prompt: str, name: str, start: int, changes: list[int]) -> Example:
        # The completion alone differs between the two forms: subclasses render it their way.
        if self.options.rationale:
            return rationale_example(prompt, name, start, changes)
        return generation_example(prompt, str(start + sum(changes)))


class WordProblemsRationale(WordProblems):
    """The problems of ``word_problems``, answered with a worked step-by-step rationale.

    The completion is one line, " Rosa starts with 38. 38 + 6 = 44. 44 - 2 = 42. #### 42", so
    lm-eval's stop at the newline still ends it, and the answer is read after the "####" marker
    (the first number of the line is the starting count, not the answer).
    """

    name = "word_problems_rationale"
    description = "The word_problems problems answered with a worked rationale ending in '#### N'."
    abilities = ("arithmetic", "reasoning")
    answer_regex = RATIONALE_REGEX
    max_gen_toks = RATIONALE_MAX_GEN_TOKS

    def examples(self, split: Split, n: int) -> list[Example]:
        # The base class seeds its generator with the task's name; drawing through a
        # `word_problems` task gives exactly its problems (and splits), rendered by our
        # `generate`, so the i-th examples of the two tasks always share prompt and answer.
        problems = WordProblems(**self.options.model_dump())
        problems.generate = self.generate
        return problems.examples(split, n)

    def _example(self, prompt: str, name: str, start: int, changes: list[int]) -> Example:
        return rationale_example(prompt, name, start, changes)


@hookimpl
def register_tasks(register):
    register(WordProblems)
    register(WordProblemsRationale)
