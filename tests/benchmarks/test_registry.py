"""The registry: every benchmark by its own name, each reading its rows into (problem, gold) its own way."""

import json

import pytest

from assets.benchmarks.items import load_items
from assets.benchmarks.registry import BENCHMARKS, benchmark_named
from assets.benchmarks.sources import BenchmarkDataError
from tests.conftest import SHARED_BENCHMARKS, needs_shared

pytestmark = pytest.mark.unit


GPQA_ROW = {"Record ID": "rec1", "Question": " Which is heaviest? ", "Correct Answer": "lead ",
            "Incorrect Answer 1": "wood", "Incorrect Answer 2": "air", "Incorrect Answer 3": "cork"}

HUMANEVAL_ROW = {"task_id": "HumanEval/0", "prompt": "def f():\n    \"\"\"One.\"\"\"\n\n",
                 "entry_point": "f", "test": "def check(candidate):\n    assert candidate() == 1\n"}


@pytest.mark.parametrize(("name", "row", "problem", "gold", "answer_format"), [
    ("gsm8k", {"question": "How many?", "answer": "2 + 2 = 4\n#### 1,450"}, "How many?", "1450", "number"),
    ("math500", {"problem": "Half?", "answer": " \\frac{1}{2} ", "unique_id": "t/1"}, "Half?", "\\frac{1}{2}",
     "latex"),
    ("aime24", {"problem": "P", "answer": "025", "id": 1}, "P", "25", "integer"),
    ("aime25", {"problem": "P", "answer": 7, "id": 1}, "P", "7", "integer"),
    ("amc23", {"problem": "P", "answer": 27.0, "id": 1}, "P", "27", "integer"),
    ("arith", {"problem": "What is 2 + 3?", "answer": 5, "id": "arith-000"}, "What is 2 + 3?", "5", "integer"),
    ("mmlu_stem", {"question": "Q?", "choices": ["x", "y"], "answer": 1, "type": "astronomy"},
     "Q?\n\nA. x\nB. y", "B", "choice"),
    ("aqua_rat", {"question": "Q?", "options": ["A)5", "B)6"], "correct": "b"}, "Q?\n\nA)5\nB)6", "B", "choice"),
    ("gpqa_diamond", GPQA_ROW, "Which is heaviest?\n\nA. cork\nB. air\nC. wood\nD. lead", "D", "choice"),
])
def test_each_benchmark_reads_its_rows(name, row, problem, gold, answer_format):
    benchmark = benchmark_named(name)
    read_problem, raw_gold = benchmark.item(row, 0)
    assert (read_problem, benchmark.normalise_gold(raw_gold), benchmark.answer_format.name) == (
        problem, gold, answer_format)


def test_a_code_benchmark_asks_for_a_fenced_block_and_keeps_the_tests_as_gold():
    humaneval = benchmark_named("humaneval")
    problem, raw_gold = humaneval.item(HUMANEVAL_ROW, 0)
    assert problem.startswith("Complete the following Python function.")
    assert problem.endswith("```python\ndef f():\n    \"\"\"One.\"\"\"\n```")
    assert json.loads(humaneval.normalise_gold(raw_gold)) == {k: HUMANEVAL_ROW[k] for k in ("prompt", "entry_point",
                                                                                               "test")}
    assert humaneval.answer_format.runs_tests


def test_every_benchmark_is_registered_under_its_own_name():
    assert all(benchmark.name == name for name, benchmark in BENCHMARKS.items())
    assert set(BENCHMARKS) == {"gsm8k", "math500", "aime24", "aime25", "amc23", "mmlu_stem", "aqua_rat",
                               "gpqa_diamond", "humaneval", "livecodebench", "arith"}


def test_an_unknown_benchmark_names_the_known_ones():
    with pytest.raises(BenchmarkDataError, match="benchmark 'gsm9k' unknown; known: aime24, aime25, amc23"):
        benchmark_named("gsm9k")


@pytest.mark.parametrize(("name", "options", "error"), [
    ("gsm8k", {"since": "2025-01-01"}, r"benchmark 'gsm8k' takes no options, got \['since'\]"),
    ("livecodebench", {"release": "release_v99"}, "livecodebench release 'release_v99' unknown"),
    ("livecodebench", {"since": "soon"}, "livecodebench 'since' is a date"),
])
def test_options_are_checked(name, options, error):
    with pytest.raises(ValueError, match=error):
        benchmark_named(name).checked_options(options)


@pytest.mark.parametrize(("name", "options", "checked"), [
    ("gsm8k", None, {}),
    ("gsm8k", {}, {}),
    ("livecodebench", {"release": "release_v2", "since": "2024-01-01"}, {"release": "release_v2",
                                                                         "since": "2024-01-01"}),
])
def test_checked_options_are_the_options_as_given(name, options, checked):
    assert benchmark_named(name).checked_options(options) == checked


@needs_shared
def test_multiple_choice_golds_are_letters():
    mmlu = load_items("mmlu_stem", SHARED_BENCHMARKS, 50)
    aqua = load_items("aqua_rat", SHARED_BENCHMARKS, 50)
    assert {item["gold"] for item in mmlu} <= set("ABCD") and {item["gold"] for item in aqua} <= set("ABCDE")
    assert "\nA. " in mmlu[0]["problem"] and "\nA)" in aqua[0]["problem"]
