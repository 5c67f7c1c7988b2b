"""Arithmetic: two multi-digit operands and one operator, answered with the exact integer."""

from __future__ import annotations

import random
from typing import Literal

from pydantic import Field

from harness.api import Example, GeneratedTask, TaskOptions, generation_example, hookimpl


class ArithmeticOptions(TaskOptions):
    digits: int = Field(2, ge=1, le=6, description="Digits of each operand.")
    operators: list[Literal["+", "-", "*"]] = Field(
        ["+", "-"], min_length=1, description="Operators to draw from, uniformly.")


class Arithmetic(GeneratedTask):
    """Arithmetic: two multi-digit operands and one operator, answered with the exact integer."""

    name = "arithmetic"
    description = "Two-operand integer arithmetic ('Calculate: 47 + 18 ='), exact-match answer."
    kind = "generation"
    abilities = ("arithmetic",)
    # A 6-digit product has 12 digits; digit-wise tokenizers need ~14 tokens for " 123456789012\n".
    max_gen_toks = 16
    Options = ArithmeticOptions

    def generate(self, rng: random.Random) -> Example:
        d = self.options.digits
        # Both operands have exactly `digits` digits, so difficulty is set by the option alone.
        lo, hi = (0 if d == 1 else 10 ** (d - 1)), 10**d - 1
        a, b = rng.randint(lo, hi), rng.randint(lo, hi)
        op = rng.choice(self.options.operators)
        if op == "-" and a < b:
            a, b = b, a  # keep differences non-negative: one fewer thing for a small model to learn
        value = {"+": a + b, "-": a - b, "*": a * b}[op]
        return generation_example(f"Calculate: {a} {op} {b} =", str(value))


@hookimpl
def register_tasks(register):
    register(Arithmetic)
