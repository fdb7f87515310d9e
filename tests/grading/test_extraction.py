"""Reasoning split and answer extraction, on hand-written cases and real benchmark rows."""

import json
import time

import pytest

from assets.benchmarks.gsm8k import gsm8k_gold
from assets.grading.extraction import as_number, last_boxed, split_reasoning
from assets.grading.formats import direct_equal, extract_answer
from tests.conftest import SHARED_BENCHMARKS, needs_shared


@pytest.mark.unit
@pytest.mark.parametrize(("response", "reasoning_content", "prefilled", "finish", "expected"), [
    ("let me think</think>The answer is \\boxed{5}.", None, True, "stop",
     ("let me think", "The answer is \\boxed{5}.", True)),
    ("still thinking about \\boxed{3}", None, True, "length", ("still thinking about \\boxed{3}", "", False)),
    ("The answer is \\boxed{7}.", "thought", True, "stop", ("thought", "The answer is \\boxed{7}.", True)),
    ("", "thought that never closed", True, "length", ("thought that never closed", "", False)),
    ("plain answer 4", None, False, "stop", ("", "plain answer 4", True)),
    ("a</think>b</think>final \\boxed{2}", None, True, "stop", ("a</think>b", "final \\boxed{2}", True)),
])
def test_split_reasoning(response, reasoning_content, prefilled, finish, expected):
    split = split_reasoning(response, reasoning_content, prefilled, finish)
    assert (split.reasoning, split.answer, split.terminated) == expected


@pytest.mark.unit
@pytest.mark.parametrize(("text", "expected"), [
    ("\\boxed{\\frac{1}{2}}", "\\frac{1}{2}"),
    ("first \\boxed{1} then \\boxed{\\left( 3, \\frac{\\pi}{2} \\right)}", "\\left( 3, \\frac{\\pi}{2} \\right)"),
    ("\\boxed 5 apples", "5"),
    ("\\fbox{42}", "42"),
    ("no box here", None),
    ("unclosed \\boxed{1 + {2}", None),
])
def test_last_boxed(text, expected):
    assert last_boxed(text) == expected


@pytest.mark.unit
@pytest.mark.parametrize(("text", "answer_format", "expected"), [
    ("so she makes \\boxed{18} dollars", "number", "18"),
    ("She makes $18 every day.\n#### 18", "number", "18"),
    ("It costs 1,450,000 in all", "number", "1,450,000"),
    ("The answer is 204", "integer", None),
    ("\\boxed{204}", "integer", "204"),
    ("x = 3 so the answer is 3", "latex", None),
])
def test_extract_answer(text, answer_format, expected):
    assert extract_answer(text, answer_format) == expected


@pytest.mark.unit
@pytest.mark.parametrize(("text", "expected"), [
    ("1,450", 1450.0), ("$18", 18.0), ("27.0", 27.0), ("10,\\!000", 10000.0), ("-3", -3.0), ("\\frac12", None),
])
def test_as_number(text, expected):
    assert as_number(text) == expected


@pytest.mark.unit
@needs_shared
def test_math500_reference_solutions_box_their_own_answer():
    rows = [json.loads(line) for line in (SHARED_BENCHMARKS / "math500.jsonl").open()]
    same = sum(last_boxed(row["solution"]) == row["answer"] for row in rows)
    assert same / len(rows) >= 0.95


@pytest.mark.unit
@needs_shared
def test_gsm8k_reference_solutions_extract_their_own_answer():
    rows = [json.loads(line) for line in (SHARED_BENCHMARKS / "gsm8k_test.jsonl").open()]
    same = sum(as_number(extract_answer(row["answer"], "number")) == float(gsm8k_gold(row["answer"])) for row in rows)
    assert same == len(rows)


@pytest.mark.unit
@pytest.mark.parametrize(("text", "expected"), [
    ("\\boxed{C}", "C"), ("\\boxed{(b)}", "B"), ("\\boxed{\\text{D}}", "D"), ("\\boxed{A. 42 kg}", "A"),
    ("The answer is (E).", "E"), ("B looks tempting, but the answer is: C", "C"), ("C", "C"),
    ("Apples are good", None), ("\\boxed{Carbon}", None), ("The answer is a bit unclear", None),
    ("Both A and B are plausible.", None),
])
def test_choice_letters_are_the_answer_not_stray_letters(text, expected):
    assert extract_answer(text, "choice") == expected


# Strings a model can emit that once broke, or could break, grading: each must come back graded with a reason.
# Sizes are what a runaway generation produces; the nested ones defeated the quadratic regexes of extraction.
NESTING = 10_000

MEGABYTE = 1_000_000

HOSTILE_RESPONSES = {
    "lone surrogate": "</think>\\boxed{\ud800}",
    "lone surrogates reversed, in the reasoning": "\udfff\ud800 hmm</think>\\boxed{7}",
    "control characters": "</think>\x1b[31m\x07\x08\x7f\\boxed{\x017}",
    "NUL": "</think>\\boxed{4\x002}\x00",
    "a megabyte of open braces": "</think>" + "{" * MEGABYTE,
    "a megabyte of close braces": "</think>\\boxed{7" + "}" * MEGABYTE,
    "an unclosed box a megabyte long": "</think>\\boxed{" + "{" * MEGABYTE,
    "a megabyte of text, then the answer": "a" * MEGABYTE + "</think>\\boxed{7}",
    "nested boxes": "</think>" + "\\boxed{" * NESTING + "7" + "}" * NESTING,
    "nested text, never closed": "</think>\\boxed " + "\\text{" * NESTING,
    "nested text, closed": "</think>\\boxed{" + "\\text{" * NESTING + "7" + "}" * NESTING + "}",
    "a clock time trailed by spaces": "</think>\\boxed{4:30" + " " * 100_000 + "x}",
    "'answer is' trailed by spaces": "</think>The answer is" + " " * 100_000 + "?",
    "a hundred thousand digits": "</think>\\boxed{" + "9" * 100_000 + "}",
    "right-to-left and zero-width marks": "</think>\u202e\\boxed{\u200b7\u200d}\u202c \u2067\u0667\u2069",
    "a byte-order mark and line separators": "\ufeff\u2028</think>\u2029\\boxed{7}\u0085",
    "carriage returns": "step\rstep\r\n</think>\\boxed{7}\r",
    "think tags only": "</think>" * 10_000,
    "math alphanumerics": "</think>\\boxed{\U0001d7d5}",
}

# What each hostile response gives, with "7" as the gold: (the answer `latex`, `number` and `integer` extract,
# the direct verdict of `latex` and `number` (None: math-verify decides), that of `integer` (never sent to
# math-verify, so what is no number is wrong)). No answer extracted: no verdict. None has a choice letter.
EXTRACTED_FROM_HOSTILE = {
    "lone surrogate": ("\ud800", None, False),
    "lone surrogates reversed, in the reasoning": ("7", True, True),
    "control characters": ("\x017", None, False),
    "NUL": ("4\x002", None, False),
    "a megabyte of open braces": (None, None, None),
    "a megabyte of close braces": ("7", True, True),
    "an unclosed box a megabyte long": (None, None, None),
    "a megabyte of text, then the answer": ("7", True, True),
    "nested boxes": ("7", True, True),
    "nested text, never closed": ("\\text{" * NESTING, None, False),
    "nested text, closed": ("\\text{" * NESTING + "7" + "}" * NESTING, None, False),
    "a clock time trailed by spaces": ("4:30" + " " * 100_000 + "x", None, False),
    "'answer is' trailed by spaces": (None, None, None),
    "a hundred thousand digits": ("9" * 100_000, False, False),
    "right-to-left and zero-width marks": ("\u200b7\u200d", None, False),
    "a byte-order mark and line separators": ("7", True, True),
    "carriage returns": ("7", True, True),
    "think tags only": (None, None, None),
    "math alphanumerics": ("\U0001d7d5", True, True),
}


def _extracted_and_verdict(response: str, answer_format: str) -> tuple[str | None, bool | None]:
    split = split_reasoning(response, None, True, "stop")
    answer = extract_answer(split.answer, answer_format) if split.terminated else None
    return answer, None if answer is None else direct_equal("7", answer, answer_format)


@pytest.mark.unit
@pytest.mark.parametrize("name", HOSTILE_RESPONSES)
def test_hostile_responses_are_extracted_without_error(name):
    """Extraction and the direct comparisons run in the grading process itself, unbounded by the pool: they
    must return on any string, with the answer and verdict of the table (the symbolic check runs in a bounded
    worker, see the command's test)."""
    extracted, verdict, integer_verdict = EXTRACTED_FROM_HOSTILE[name]
    response = HOSTILE_RESPONSES[name]
    assert _extracted_and_verdict(response, "latex") == (extracted, verdict)
    assert _extracted_and_verdict(response, "number") == (extracted, verdict)
    assert _extracted_and_verdict(response, "integer") == (extracted, integer_verdict)
    assert _extracted_and_verdict(response, "choice") == (None, None)


def _extraction_seconds(response: str) -> float:
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        for answer_format in ("latex", "number", "choice"):
            split = split_reasoning(response)
            answer = extract_answer(split.answer, answer_format)
            if answer is not None:
                direct_equal("7", answer, answer_format)
        best = min(best, time.perf_counter() - started)
    return best


@pytest.mark.timing
@pytest.mark.parametrize(("prefix", "unit", "suffix"), [
    ("</think>\\boxed ", "\\text{", ""),
    ("</think>\\boxed{", "\\text{", "}"),
    ("</think>\\boxed{", "\\textbf{", "}"),
    ("</think>\\boxed{4:30", " ", "x}"),
    ("</think>The answer is", " ", "?"),
    ("</think>", "answer is ", ""),
    ("</think>", "1,", "x"),
    ("</think>\\boxed{", "{", ""),
])
def test_extraction_time_grows_linearly_with_the_response(prefix, unit, suffix):
    """Judged against itself at a quarter of the size: linear work takes about 4 times as long (up to 10 allowed
    for caches), a regex that backtracks quadratically 16 times (and a megabyte of it minutes)."""
    small, large = (_extraction_seconds(prefix + unit * count + suffix) for count in (50_000, 200_000))
    assert large < 10 * max(small, 0.005), (small, large)
