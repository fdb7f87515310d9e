"""The answer formats: what each extracts from a response's answer part, and when an answer equals the gold.
A wrong extraction or verdict found by hand becomes a row here."""

import pytest

from assets.grading.formats import ANSWER_FORMATS, CHOICE, CODE, INTEGER, LATEX, NUMBER, answer_format

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(("fmt", "text", "expected"), [
    (LATEX, "so \\boxed{\\frac{1}{2}}", "\\frac{1}{2}"),
    (LATEX, "x = 3 so the answer is 3", None),
    (LATEX, "\\boxed{1} then \\fbox{2}", "2"),
    (NUMBER, "so she makes \\boxed{18} dollars", "18"),
    (NUMBER, "She makes $18 every day.\n#### 18", "18"),
    (NUMBER, "#### 7 and later 9", "7"),
    (NUMBER, "It costs 1,450,000 in all", "1,450,000"),
    (NUMBER, "no digits at all", None),
    (INTEGER, "\\boxed{204}", "204"),
    (INTEGER, "The answer is 204", None),
    (CHOICE, "\\boxed{\\text{C}}", "C"),
    (CHOICE, "\\boxed{42}", None),
    (CHOICE, "The answer is (B), not (A).", "B"),
    (CHOICE, "**Answer:** D", "D"),
    (CHOICE, "Between (A) and (C) I pick neither", None),
    (CHOICE, "I think (C) fits", "C"),
    (CHOICE, "C.", "C"),
    (CHOICE, "Clearly it is the third", None),
    (CODE, "Here:\n```python\ndef f():\n    return 1\n```", "def f():\n    return 1\n"),
    (CODE, "```\nprint(1)\n```\n```python\nprint(2)\n```\n```\nprint(3)\n```", "print(2)\n"),
    (CODE, "no code here", None),
    (CODE, "```python\n   \n```", None),
])
def test_extract(fmt, text, expected):
    assert fmt.extract(text) == expected


@pytest.mark.parametrize(("fmt", "answer", "gold", "expected"), [
    (LATEX, "0.5", "0.50", True),
    (LATEX, "4:30", "\\text{4:30 p.m.}", True),
    (LATEX, "4:30 a.m.", "\\text{4:30 p.m.}", False),
    (LATEX, "10000", "10{,}000", True),
    (LATEX, "\\dfrac{14}{3}", "\\frac{14}{3}", None),     # undecided: math-verify decides
    (NUMBER, "$18", "18", True),
    (NUMBER, "1,450", "1450", True),
    (NUMBER, "x+1", "2", None),
    (INTEGER, "025", "25", True),
    (INTEGER, "27.0", "27", True),
    (INTEGER, "x+1", "2", False),                          # never sent to math-verify
    (CHOICE, " c ", "C", True),
    (CHOICE, "B", "C", False),
    (CODE, "print(1)", "print(1)", True),
    (CODE, "print(1)", "print(1) ", False),
])
def test_equal(fmt, answer, gold, expected):
    assert fmt.equal(answer, gold) is expected


@pytest.mark.parametrize(("name", "symbolic", "runs_tests", "uses_protocol_instruction"), [
    ("latex", True, False, True),
    ("number", True, False, True),
    ("integer", False, False, True),
    ("choice", False, False, True),
    ("code", False, True, False),
])
def test_each_stored_name_finds_its_format(name, symbolic, runs_tests, uses_protocol_instruction):
    fmt = answer_format(name)
    assert (fmt.name, fmt.symbolic, fmt.runs_tests, fmt.uses_protocol_instruction) == (
        name, symbolic, runs_tests, uses_protocol_instruction)


def test_an_unknown_format_names_the_known_ones():
    with pytest.raises(ValueError, match="answer format 'letters' unknown; known: choice, code, integer, latex"):
        answer_format("letters")
    assert set(ANSWER_FORMATS) == {"latex", "number", "integer", "choice", "code"}
