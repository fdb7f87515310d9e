"""Model output is untrusted: it never executes, and every grading call returns within its bound.

The verdicts are `unit` tests; how long the bound takes on the clock is `timing`, judged against the bound the
pool itself promises (its timeout, and the start-up allowance of a worker that replaced a killed one).
"""

import time

import pytest

from assets.grading.equivalence import GradeInput, Grader
from assets.grading.pool import STARTUP_ALLOWANCE_S, TIMEOUT, BoundedPool, CallFailure
from tests.instruments.pool_functions import echo_hang_or_crash

PATHOLOGICAL_ANSWERS = [
    "9^{9^{9^{9^{9}}}}",
    "100000!",
    "(" * 400 + "1" + ")" * 400,
    "\\frac{" * 60 + "1" + "}{2}" * 60,
    "2^{2^{2^{2^{2^{2^{2}}}}}} - 2^{2^{2^{2^{2^{2^{2}}}}}}",
]


@pytest.mark.unit
def test_a_hung_worker_is_replaced_and_the_rest_of_the_batch_is_done():
    pool = BoundedPool(echo_hang_or_crash, workers=2, timeout_s=1.0, startup_allowance_s=5.0)
    try:
        pool.map([("warm",), ("up",)])
        results = pool.map([("a",), ("hang",), ("b",), ("crash",), ("c",), ("raise",), ("d",)])
    finally:
        pool.close()
    assert results[0::2] == ["a", "b", "c", "d"]
    assert results[1] == CallFailure(TIMEOUT, "over 1 s")
    assert isinstance(results[3], CallFailure) and results[3].kind == "crashed"
    assert isinstance(results[5], CallFailure) and "ValueError" in results[5].detail
    assert pool.replaced == 2


@pytest.mark.timing
def test_a_hung_call_costs_its_bound_not_its_hang():
    """The hung call would sleep 600 s; the batch takes at most what the pool promises: the hung call's bound,
    then the next call's on the worker that replaced the killed one, start-up allowance included."""
    pool = BoundedPool(echo_hang_or_crash, workers=1, timeout_s=1.0, startup_allowance_s=5.0)
    try:
        pool.map([("warm",)])
        started = time.monotonic()
        results = pool.map([("hang",), ("after",)])
        elapsed = time.monotonic() - started
    finally:
        pool.close()
    assert results == [CallFailure(TIMEOUT, "over 1 s"), "after"]
    assert elapsed < 2 * pool.timeout_s + pool.startup_allowance_s, elapsed


@pytest.fixture(scope="module")
def grader():
    with Grader(workers=2, timeout_s=2.0) as shared:
        shared.grade_many([GradeInput("\\frac{1}{2}", "latex", "</think>\\boxed{0.5}")])  # warm the workers
        yield shared


@pytest.mark.unit
def test_injected_code_never_runs(grader, tmp_path):
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
    grades = grader.grade_many(inputs)
    assert not marker.exists()
    assert not any(grade.correct for grade in grades)


@pytest.mark.unit
def test_pathological_answers_are_graded_wrong_or_cut_off(grader):
    grades = grader.grade_many([GradeInput("7", "latex", f"</think>\\boxed{{{answer}}}")
                                for answer in PATHOLOGICAL_ANSWERS])
    assert {grade.reason for grade in grades} <= {"wrong", "timeout", "parse_error"}


@pytest.mark.timing
@pytest.mark.parametrize("answer", PATHOLOGICAL_ANSWERS)
def test_a_pathological_answer_is_graded_within_the_bound(grader, answer):
    """At most the grader's timeout, plus the start-up allowance where the worker replaced one killed for
    overrunning (on the previous answer). The gold differs from the unit test's, so no cached verdict answers."""
    started = time.monotonic()
    grader.grade_many([GradeInput("8", "latex", f"</think>\\boxed{{{answer}}}")])
    elapsed = time.monotonic() - started
    assert elapsed < grader.timeout_s + STARTUP_ALLOWANCE_S, elapsed
