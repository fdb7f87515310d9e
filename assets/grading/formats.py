"""Answer formats: how the final answer is found in a response and when it equals the gold.

A benchmark names its format; the warehouse stores the name (`answer_format`), and `answer_format(name)` gives the
object back. Each format is a small class with `extract(answer_text)` and `equal(answer, gold)`:

- `latex` (MATH): the last \\boxed{}; equal by number or clock time, else undecided (math-verify decides).
- `number` (GSM8K): the last \\boxed{}, else the last `#### n`, else the last number; equal as for `latex`.
- `integer` (AIME, AMC): the last \\boxed{}; equal by number or clock time, never sent to math-verify.
- `choice` (a letter): a boxed letter, "the answer is C", a lone "(C)", or a reply that is only the letter.
- `code` (a Python program): the last fenced code block; graded by running its tests in the sandbox
  (assets.grading.code), and two answers are the same only when identical.
"""

from __future__ import annotations

import math
from typing import ClassVar, Protocol

from assets.grading.extraction import (
    ANSWER_IS_CHOICE_PATTERN,
    GSM8K_MARKER_PATTERN,
    NUMBER_PATTERN,
    PARENTHESIZED_CHOICE_PATTERN,
    as_number,
    choice_letter,
    clock_time,
    last_boxed,
)

# A reply this short may be the bare letter ("C.", "(C)").
BARE_CHOICE_CHARS = 4


class AnswerFormat(Protocol):
    """What grading needs of a format. `equal` returns None when its rules cannot tell (only formats with
    `symbolic` set: math-verify then decides); `runs_tests`: graded by running the answer, not by `equal`;
    `uses_protocol_instruction`: the protocol's answer instruction (\\boxed{}) follows the problem."""

    name: str
    symbolic: bool
    runs_tests: bool
    uses_protocol_instruction: bool

    def extract(self, answer_text: str) -> str | None: ...

    def equal(self, answer: str, gold: str) -> bool | None: ...


class _Format:
    """The defaults of a format: a boxed answer, compared by its own rules alone."""

    name: ClassVar[str]
    symbolic: ClassVar[bool] = False
    runs_tests: ClassVar[bool] = False
    uses_protocol_instruction: ClassVar[bool] = True


def same_number_or_time(answer: str, gold: str) -> bool | None:
    """Clock times ("4:30" answers "4:30 p.m."; "4:30 a.m." does not) and plain numbers; None: neither."""
    gold_time, predicted_time = clock_time(gold), clock_time(answer)
    if gold_time and predicted_time:
        same_half = None in (gold_time[2], predicted_time[2]) or gold_time[2] == predicted_time[2]
        return gold_time[:2] == predicted_time[:2] and same_half
    gold_value, predicted_value = as_number(gold), as_number(answer)
    if gold_value is None or predicted_value is None:
        return None
    return math.isclose(gold_value, predicted_value, rel_tol=1e-9, abs_tol=1e-9)


class BoxedLatex(_Format):
    name = "latex"
    symbolic = True

    def extract(self, answer_text: str) -> str | None:
        return last_boxed(answer_text)

    def equal(self, answer: str, gold: str) -> bool | None:
        return same_number_or_time(answer, gold)


class BoxedOrLastNumber(_Format):
    name = "number"
    symbolic = True

    def extract(self, answer_text: str) -> str | None:
        boxed = last_boxed(answer_text)
        if boxed is not None:
            return boxed
        marked = GSM8K_MARKER_PATTERN.findall(answer_text)
        if marked:
            return marked[-1]
        numbers = NUMBER_PATTERN.findall(answer_text)
        return numbers[-1] if numbers else None

    def equal(self, answer: str, gold: str) -> bool | None:
        return same_number_or_time(answer, gold)


class BoxedInteger(_Format):
    name = "integer"

    def extract(self, answer_text: str) -> str | None:
        return last_boxed(answer_text)

    def equal(self, answer: str, gold: str) -> bool:
        return bool(same_number_or_time(answer, gold))


class ChoiceLetter(_Format):
    name = "choice"

    def extract(self, answer_text: str) -> str | None:
        boxed = last_boxed(answer_text)
        if boxed is not None:
            return choice_letter(boxed)
        stated = ANSWER_IS_CHOICE_PATTERN.findall(answer_text)
        if stated:
            return stated[-1]
        bracketed = set(PARENTHESIZED_CHOICE_PATTERN.findall(answer_text))
        if len(bracketed) == 1:
            return bracketed.pop()
        return choice_letter(answer_text) if len(answer_text.strip()) <= BARE_CHOICE_CHARS else None

    def equal(self, answer: str, gold: str) -> bool:
        return gold.strip().upper() == answer.strip().upper()


class PythonCode(_Format):
    """The problem states how to answer (a fenced block, not \\boxed{}), so the protocol's instruction is not added."""

    name = "code"
    runs_tests = True
    uses_protocol_instruction = False

    def extract(self, answer_text: str) -> str | None:
        # Imported here: assets.grading.code reaches assets.matrix, which reaches the benchmarks, which name formats.
        from assets.grading.code import extract_code

        return extract_code(answer_text)

    def equal(self, answer: str, gold: str) -> bool:
        return answer == gold


LATEX, NUMBER, INTEGER, CHOICE, CODE = BoxedLatex(), BoxedOrLastNumber(), BoxedInteger(), ChoiceLetter(), PythonCode()
ANSWER_FORMATS: dict[str, AnswerFormat] = {fmt.name: fmt for fmt in (LATEX, NUMBER, INTEGER, CHOICE, CODE)}


def answer_format(name: str) -> AnswerFormat:
    """The format stored as `name` in the warehouse's answer_format column."""
    if name not in ANSWER_FORMATS:
        raise ValueError(f"answer format '{name}' unknown; known: {', '.join(sorted(ANSWER_FORMATS))}")
    return ANSWER_FORMATS[name]


def extract_answer(answer_text: str, format_name: str) -> str | None:
    """The final answer in the answer part of a response, per the named format."""
    return answer_format(format_name).extract(answer_text)


def direct_equal(gold: str, prediction: str, format_name: str) -> bool | None:
    """The named format's own verdict on a prediction; None: its rules cannot tell, math-verify decides."""
    return answer_format(format_name).equal(prediction, gold)
