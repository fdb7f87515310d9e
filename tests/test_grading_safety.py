"""Model output is untrusted: it never executes, and every grading call returns within its bound.

The verdicts are `unit` tests; how long the bound takes on the clock is `timing`, judged against the bound the
pool itself promises (its timeout, and the start-up allowance of a worker that replaced a killed one).
"""

import time

import pytest

from assets.grading.equivalence import GradeInput, Grader
from assets.grading.extraction import split_reasoning
from assets.grading.formats import direct_equal, extract_answer
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


TERMINAL_ESCAPES = "\x1b]0;PWNED-TITLE\x07\x1b[31m\x1b[2J\u202e"


@pytest.mark.unit
def test_model_text_a_library_logs_reaches_the_terminal_bounded_and_escaped(capfd):
    """math-verify logs the whole answer it timed out on, from the grading worker: a response with terminal escape
    sequences and 75 kB of algebra reaches stderr as one bounded line with the escapes shown, not sent."""
    hostile = TERMINAL_ESCAPES + "+".join(f"\\frac{{1}}{{x^{{{i}}}}}" for i in range(4000))
    with Grader(workers=1, timeout_s=1.0) as grader:
        (grade,) = grader.grade_many([GradeInput("2", "number", f"</think>\\boxed{{{hostile}}}", None, "stop")])
    assert not grade.correct
    logged = capfd.readouterr().err
    assert "\x1b" not in logged and "\x07" not in logged and "\u202e" not in logged
    assert len(logged) < 1000
    if logged:   # math-verify says it timed out (it may finish first on a fast CPU): then as the operator sees it
        assert "\\x1b]0;PWNED-TITLE\\x07\\x1b[31m" in logged and "more characters)" in logged


@pytest.mark.unit
@pytest.mark.parametrize(("text", "printed"), [
    ("plain", "plain"),
    ("a\x1b[31mred\x1b[0m", "a\\x1b[31mred\\x1b[0m"),
    ("two\nlines\ttab", "two\\nlines\\ttab"),
    ("\u202eevil", "\\u202eevil"),
    ("x" * 400, "x" * 300 + "… (100 more characters)"),
])
def test_shown_bounds_and_escapes(text, printed):
    from assets.grading.shown import shown

    assert shown(text) == printed
