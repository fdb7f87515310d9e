"""Model output is untrusted: it never executes, and every grading call returns within its bound."""

import time

import pytest

from assets.grading.equivalence import GradeInput, Grader
from assets.grading.pool import TIMEOUT, BoundedPool, CallFailure
from tests.pool_functions import echo_hang_or_crash


def test_a_hung_worker_is_replaced_and_the_rest_of_the_batch_is_done():
    pool = BoundedPool(echo_hang_or_crash, workers=2, timeout_s=1.0, startup_allowance_s=5.0)
    try:
        pool.map([("warm",), ("up",)])
        started = time.monotonic()
        results = pool.map([("a",), ("hang",), ("b",), ("crash",), ("c",), ("raise",), ("d",)])
        assert time.monotonic() - started < 20
    finally:
        pool.close()
    assert results[0::2] == ["a", "b", "c", "d"]
    assert results[1] == CallFailure(TIMEOUT, "over 1 s")
    assert isinstance(results[3], CallFailure) and results[3].kind == "crashed"
    assert isinstance(results[5], CallFailure) and "ValueError" in results[5].detail
    assert pool.replaced == 2


@pytest.fixture(scope="module")
def grader():
    with Grader(workers=2, timeout_s=2.0) as shared:
        shared.grade_many([GradeInput("\\frac{1}{2}", "latex", "</think>\\boxed{0.5}")])  # warm the workers
        yield shared


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


@pytest.mark.parametrize("prediction", [
    "9^{9^{9^{9^{9}}}}",
    "100000!",
    "(" * 400 + "1" + ")" * 400,
    "\\frac{" * 60 + "1" + "}{2}" * 60,
    "2^{2^{2^{2^{2^{2^{2}}}}}} - 2^{2^{2^{2^{2^{2^{2}}}}}}",
])
def test_pathological_answers_return_within_the_bound(grader, prediction):
    started = time.monotonic()
    grade = grader.grade_many([GradeInput("7", "latex", f"</think>\\boxed{{{prediction}}}")])[0]
    assert time.monotonic() - started < 2.0 * 2 + 10
    assert grade.reason in {"wrong", "timeout", "parse_error"}
