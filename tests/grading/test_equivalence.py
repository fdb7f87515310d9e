"""Grading real benchmark rows: reference solutions are right against their own answer, wrong against
another item's (MATH-500 and GSM8K in full); model output never executes, and every call returns within its
bound."""

import re
import time

import pytest

from assets.benchmarks.items import load_items
from assets.benchmarks.sources import read_jsonl
from assets.grading.equivalence import GradeInput, Grader
from assets.grading.pool import STARTUP_ALLOWANCE_S
from tests.conftest import SHARED_BENCHMARKS, needs_shared


@pytest.fixture(scope="module")
def grader():
    with Grader(workers=2, timeout_s=5) as shared:
        yield shared


def _as_response(solution: str) -> str:
    return f"Let me work through it.</think>{solution}"


def _trivially_normalised(gold: str) -> str:
    """A gold answer without whitespace or a leading `x=`: MATH-500 gives 5 as `x=5` at index 23, after a 5 at 22."""
    return re.sub(r"^[a-z]=", "", re.sub(r"\s+", "", gold))


def _other_answers(golds: list[str]) -> list[str]:
    """For each item, the next item's answer that is not textually the same after trivial normalisation; chosen
    from the gold strings alone, so a grader that judges everything equal cannot pick what it is tested on."""
    others = []
    for index, gold in enumerate(golds):
        step = 1
        while _trivially_normalised(golds[(index + step) % len(golds)]) == _trivially_normalised(gold):
            step += 1
        others.append(golds[(index + step) % len(golds)])
    return others


@pytest.mark.unit
@needs_shared
@pytest.mark.parametrize(("benchmark", "file", "solution_field", "answer_format"), [
    ("math500", "math500.jsonl", "solution", "latex"),
    ("gsm8k", "gsm8k_test.jsonl", "answer", "number"),
])
def test_reference_solutions_against_own_and_another_items_answer(grader, benchmark, file, solution_field,
                                                                  answer_format):
    golds = [item["gold"] for item in load_items(benchmark, SHARED_BENCHMARKS, None)]
    responses = [_as_response(row[solution_field]) for row in read_jsonl(SHARED_BENCHMARKS / file)]
    own = grader.grade_many([GradeInput(g, answer_format, r) for g, r in zip(golds, responses, strict=True)])
    # The README's claim: MATH-500 500/500, GSM8K 1319/1319.
    assert [(i, g.reason, g.extracted) for i, g in enumerate(own) if not g.correct] == []
    others = _other_answers(golds)
    crossed = grader.grade_many([GradeInput(o, answer_format, r) for o, r in zip(others, responses, strict=True)])
    assert [(i, others[i], g.extracted) for i, g in enumerate(crossed) if g.correct] == []


@pytest.mark.unit
@pytest.mark.parametrize(("gold", "answer_format", "response", "reason"), [
    ("25", "integer", "</think>\\boxed{025}", "correct"),
    ("27", "integer", "</think>\\boxed{27.0}", "correct"),
    ("\\frac{14}{3}", "latex", "</think>\\boxed{\\dfrac{14}{3}}", "correct"),
    ("\\frac{14}{3}", "latex", "</think>\\boxed{5}", "wrong"),
    ("\\text{4:30 p.m.}", "latex", "</think>\\boxed{4:30}", "correct"),
    ("\\text{4:30 p.m.}", "latex", "</think>\\boxed{4:30 a.m.}", "wrong"),
    ("10{,}000", "latex", "</think>\\boxed{10000}", "correct"),
    ("C", "choice", "</think>The answer is (C).", "correct"),
    ("18", "number", "no end of reasoning \\boxed{18}", "truncated"),
    ("18", "number", "</think>I am not sure.", "no_answer"),
])
def test_reason_codes(grader, gold, answer_format, response, reason):
    assert grader.grade_many([GradeInput(gold, answer_format, response)])[0].reason == reason


PATHOLOGICAL_ANSWERS = [
    "9^{9^{9^{9^{9}}}}",
    "100000!",
    "(" * 400 + "1" + ")" * 400,
    "\\frac{" * 60 + "1" + "}{2}" * 60,
    "2^{2^{2^{2^{2^{2^{2}}}}}} - 2^{2^{2^{2^{2^{2^{2}}}}}}",
]


@pytest.fixture(scope="module")
def bounded_grader():
    with Grader(workers=2, timeout_s=2.0) as shared:
        shared.grade_many([GradeInput("\\frac{1}{2}", "latex", "</think>\\boxed{0.5}")])  # warm the workers
        yield shared


@pytest.mark.unit
def test_injected_code_never_runs(bounded_grader, tmp_path):
    marker = tmp_path / "pwned"
    payloads = [
        f"__import__('os').system('touch {marker}')",
        f"\\text{{__import__('os').system('touch {marker}')}}",
        f"exec(\"open('{marker}', 'w').write('x')\")",
        f"eval(compile('open(\"{marker}\",\"w\")', 'x', 'exec'))",
        f"$(touch {marker})",
    ]
    inputs = [GradeInput("2", answer_format, f"</think>\\boxed{{{payload}}}")
              for payload in payloads for answer_format in ("latex", "number")]
    grades = bounded_grader.grade_many(inputs)
    assert not marker.exists()
    assert not any(grade.correct for grade in grades)


@pytest.mark.unit
def test_pathological_answers_are_graded_wrong_or_cut_off(bounded_grader):
    grades = bounded_grader.grade_many([GradeInput("7", "latex", f"</think>\\boxed{{{answer}}}")
                                for answer in PATHOLOGICAL_ANSWERS])
    assert {grade.reason for grade in grades} <= {"wrong", "timeout", "parse_error"}


@pytest.mark.timing
@pytest.mark.parametrize("answer", PATHOLOGICAL_ANSWERS)
def test_a_pathological_answer_is_graded_within_the_bound(bounded_grader, answer):
    """At most the grader's timeout, plus the start-up allowance where the worker replaced one killed for
    overrunning (on the previous answer). The gold differs from the unit test's, so no cached verdict answers."""
    started = time.monotonic()
    bounded_grader.grade_many([GradeInput("8", "latex", f"</think>\\boxed{{{answer}}}")])
    elapsed = time.monotonic() - started
    assert elapsed < bounded_grader.timeout_s + STARTUP_ALLOWANCE_S, elapsed
