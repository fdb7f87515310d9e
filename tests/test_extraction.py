"""Reasoning split and answer extraction, on hand-written cases and real benchmark rows."""

import json

import pytest

from assets.benchmarks.gsm8k import gsm8k_gold
from assets.grading.extraction import as_number, last_boxed, split_reasoning
from assets.grading.formats import extract_answer
from tests.conftest import SHARED_BENCHMARKS, needs_shared

pytestmark = pytest.mark.unit


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


@pytest.mark.parametrize(("text", "expected"), [
    ("1,450", 1450.0), ("$18", 18.0), ("27.0", 27.0), ("10,\\!000", 10000.0), ("-3", -3.0), ("\\frac12", None),
])
def test_as_number(text, expected):
    assert as_number(text) == expected


@needs_shared
def test_math500_reference_solutions_box_their_own_answer():
    rows = [json.loads(line) for line in (SHARED_BENCHMARKS / "math500.jsonl").open()]
    same = sum(last_boxed(row["solution"]) == row["answer"] for row in rows)
    assert same / len(rows) >= 0.95


@needs_shared
def test_gsm8k_reference_solutions_extract_their_own_answer():
    rows = [json.loads(line) for line in (SHARED_BENCHMARKS / "gsm8k_test.jsonl").open()]
    same = sum(as_number(extract_answer(row["answer"], "number")) == float(gsm8k_gold(row["answer"])) for row in rows)
    assert same == len(rows)


@pytest.mark.parametrize(("text", "expected"), [
    ("\\boxed{C}", "C"), ("\\boxed{(b)}", "B"), ("\\boxed{\\text{D}}", "D"), ("\\boxed{A. 42 kg}", "A"),
    ("The answer is (E).", "E"), ("B looks tempting, but the answer is: C", "C"), ("C", "C"),
    ("Apples are good", None), ("\\boxed{Carbon}", None), ("The answer is a bit unclear", None),
    ("Both A and B are plausible.", None),
])
def test_choice_letters_are_the_answer_not_stray_letters(text, expected):
    assert extract_answer(text, "choice") == expected
