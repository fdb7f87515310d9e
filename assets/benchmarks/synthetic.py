"""A synthetic arithmetic benchmark in the R1 answer format, and the disjoint training set the offline tiny
model learns from, so the offline chain produces answers that are sometimes right and sometimes wrong."""

from __future__ import annotations

import random

BENCHMARK_SEED = 2024
TRAINING_SEED = 7
BENCHMARK_SIZE = 200
OPERATIONS = ("+", "-")
# Small enough for a tiny model to learn in a minute, large enough that it still gets some wrong.
LARGEST_OPERAND = 30


def _problem(rng: random.Random) -> tuple[str, int]:
    a, b, op = rng.randint(0, LARGEST_OPERAND), rng.randint(0, LARGEST_OPERAND), rng.choice(OPERATIONS)
    if op == "-" and b > a:
        a, b = b, a
    return f"{a} {op} {b}", a + b if op == "+" else a - b


def question(expression: str) -> str:
    return f"What is {expression}?"


def r1_completion(expression: str, answer: int) -> str:
    """What a reasoning model writes after the prefilled "<think>\\n": reasoning, then a boxed answer."""
    return f"{expression} = {answer}\n</think>\n\nThe answer is \\boxed{{{answer}}}."


def arithmetic_items(limit: int | None = None) -> list[dict]:
    """The benchmark: BENCHMARK_SIZE distinct problems, always the same ones."""
    rng, seen, rows = random.Random(BENCHMARK_SEED), set(), []
    while len(rows) < min(limit or BENCHMARK_SIZE, BENCHMARK_SIZE):
        expression, answer = _problem(rng)
        if expression not in seen:
            seen.add(expression)
            rows.append({"id": f"arith-{len(rows):03d}", "problem": question(expression), "answer": answer})
    return rows


def training_examples(count: int) -> list[tuple[str, str]]:
    """(question, completion) pairs that never repeat a benchmark problem."""
    held_out = {row["problem"] for row in arithmetic_items()}
    rng, examples = random.Random(TRAINING_SEED), []
    while len(examples) < count:
        expression, answer = _problem(rng)
        if question(expression) not in held_out:
            examples.append((question(expression), r1_completion(expression, answer)))
    return examples
