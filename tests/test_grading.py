"""Grading real benchmark rows: reference solutions are right against their own answer, wrong against another's."""

import json

import pytest

from assets.benchmarks.catalog import gsm8k_gold
from assets.grading.equivalence import GradeInput, Grader
from tests.conftest import SHARED_BENCHMARKS, needs_shared

ITEMS = 120


@pytest.fixture(scope="module")
def grader():
    with Grader(workers=2, timeout_s=5) as shared:
        yield shared


def _as_response(solution: str) -> str:
    return f"Let me work through it.</think>{solution}"


@needs_shared
def test_math500_solutions_against_own_and_other_answers(grader):
    rows = [json.loads(line) for line in (SHARED_BENCHMARKS / "math500.jsonl").open()][:ITEMS]
    own = grader.grade_many([GradeInput(r["answer"], "latex", _as_response(r["solution"])) for r in rows])
    assert sum(g.correct for g in own) / len(rows) >= 0.95
    shifted = [GradeInput(rows[(i + 1) % len(rows)]["answer"], "latex", _as_response(r["solution"]))
               for i, r in enumerate(rows)]
    others = grader.grade_many(shifted)
    assert sum(not g.correct for g in others) / len(rows) >= 0.99


@needs_shared
def test_gsm8k_solutions_against_own_and_other_answers(grader):
    rows = [json.loads(line) for line in (SHARED_BENCHMARKS / "gsm8k_test.jsonl").open()][:ITEMS]
    golds = [gsm8k_gold(r["answer"]) for r in rows]
    own = grader.grade_many([GradeInput(g, "number", _as_response(r["answer"])) for g, r in zip(golds, rows)])
    assert all(g.correct for g in own)
    others = grader.grade_many([GradeInput(golds[(i + 1) % len(rows)], "number", _as_response(r["answer"]))
                                for i, r in enumerate(rows)])
    assert sum(not g.correct for g in others) / len(rows) >= 0.97  # neighbouring items can share an answer


@pytest.mark.parametrize(("gold", "answer_format", "response", "reason"), [
    ("25", "integer", "</think>\\boxed{025}", "correct"),
    ("27", "integer", "</think>\\boxed{27.0}", "correct"),
    ("\\frac{14}{3}", "latex", "</think>\\boxed{\\dfrac{14}{3}}", "correct"),
    ("\\frac{14}{3}", "latex", "</think>\\boxed{5}", "wrong"),
    ("18", "number", "no end of reasoning \\boxed{18}", "truncated"),
    ("18", "number", "</think>I am not sure.", "no_answer"),
])
def test_reason_codes(grader, gold, answer_format, response, reason):
    assert grader.grade_many([GradeInput(gold, answer_format, response)])[0].reason == reason
