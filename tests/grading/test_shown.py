"""What is shown of model text (assets/grading/shown.py): bounded and with terminal escapes made harmless."""

import pytest

from assets.grading.equivalence import GradeInput, Grader

pytestmark = pytest.mark.unit


TERMINAL_ESCAPES = "\x1b]0;PWNED-TITLE\x07\x1b[31m\x1b[2J\u202e"


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
