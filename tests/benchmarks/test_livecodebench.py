"""LiveCodeBench: rows in its format (written here: two problems of our own and one too old for the window), the
release and contest-date window, the hub's encoded private tests (and a pickle that is not plain data, refused),
and its stdin and functional tests graded in the sandbox."""

import base64
import json
import os
import pickle
import zlib
from datetime import date

import pytest

from assets.benchmarks.items import load_items
from assets.benchmarks.livecodebench import decode_tests
from assets.benchmarks.sources import BenchmarkDataError
from assets.grading.code import grade_code
from assets.matrix import MatrixError, load_matrix

pytestmark = pytest.mark.integration


def encoded(tests: list[dict]) -> str:
    """As the hub stores private tests: base64 of zlib of a pickled JSON string."""
    return base64.b64encode(zlib.compress(pickle.dumps(json.dumps(tests)))).decode()


ROWS = [
    {"question_id": "sum-two", "question_title": "Sum", "platform": "atcoder", "contest_date": "2024-09-01T00:00:00",
     "question_content": "Read two integers A and B from one line and print A + B.", "starter_code": "",
     "metadata": "{}", "difficulty": "easy",
     "public_test_cases": json.dumps([{"input": "1 2\n", "output": "3\n", "testtype": "stdin"}]),
     "private_test_cases": encoded([{"input": "10 20\n", "output": "30\n", "testtype": "stdin"},
                                    {"input": "-5 5\n", "output": "0\n", "testtype": "stdin"}])},
    {"question_id": "list-total", "question_title": "Total", "platform": "leetcode",
     "contest_date": "2025-03-01T00:00:00", "question_content": "Return the sum of nums.", "difficulty": "easy",
     "starter_code": "class Solution:\n    def total(self, nums: list[int]) -> int:\n        ",
     "metadata": json.dumps({"func_name": "total"}),
     "public_test_cases": json.dumps([{"input": "[1, 2, 3]", "output": "6", "testtype": "functional"}]),
     "private_test_cases": json.dumps([{"input": "[]", "output": "0", "testtype": "functional"}])},
    {"question_id": "too-old", "question_title": "Old", "platform": "codeforces",
     "contest_date": "2023-01-01T00:00:00", "question_content": "Print 1.", "starter_code": "", "metadata": "{}",
     "difficulty": "easy", "public_test_cases": json.dumps([{"input": "", "output": "1", "testtype": "stdin"}]),
     "private_test_cases": "[]"},
]


@pytest.fixture
def mirror(tmp_path):
    (tmp_path / "livecodebench.jsonl").write_text("".join(json.dumps(row) + "\n" for row in ROWS))
    return tmp_path


def test_the_window_keeps_the_problems_dated_in_it(mirror):
    assert [item["item_id"] for item in load_items("livecodebench", mirror, None)] == [
        "sum-two", "list-total", "too-old"]
    assert [item["item_id"] for item in load_items("livecodebench", mirror, None, {"since": "2024-01-01"})] == [
        "sum-two", "list-total"]
    assert [item["item_id"] for item in load_items("livecodebench", mirror, None,
                                                   {"since": "2024-01-01", "until": "2024-12-31"})] == ["sum-two"]
    first = load_items("livecodebench", mirror, 1)[0]
    assert len(json.loads(first["gold"])["tests"]) == 3   # public and decoded private tests
    assert "standard input" in first["problem"] and "\\boxed" not in first["problem"]
    with pytest.raises(BenchmarkDataError, match="release 'release_v9' unknown"):
        load_items("livecodebench", mirror, None, {"release": "release_v9"})


def test_a_test_case_pickle_may_hold_plain_data_only():
    class Payload:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    hostile = base64.b64encode(zlib.compress(pickle.dumps(Payload()))).decode()
    with pytest.raises(ValueError, match="plain data only"):
        decode_tests(hostile)
    assert decode_tests(encoded([{"input": "1", "output": "1", "testtype": "stdin"}]))[0]["input"] == "1"


def test_stdin_and_functional_answers_are_graded_by_their_tests(mirror):
    stdin, functional = (item["gold"] for item in load_items("livecodebench", mirror, 2))
    assert grade_code("a, b = map(int, input().split())\nprint(a + b)\n", stdin).reason == "passed"
    assert grade_code("import sys\na, b = map(int, sys.stdin.buffer.read().split())\nsys.stdout.write(f'{a+b}\\n')",
                      stdin).reason == "passed"
    wrong = grade_code("a, b = map(int, input().split())\nprint(a - b)\n", stdin)
    assert wrong.reason == "failed_tests" and "test 1 of 3" in wrong.detail
    assert grade_code("print(int(input()) +)", stdin).reason == "syntax_error"
    assert grade_code("class Solution:\n    def total(self, nums):\n        return sum(nums)\n",
                      functional).reason == "passed"
    assert grade_code("class Solution:\n    def total(self, nums):\n        return sum(nums) if nums else max(nums)\n",
                      functional).reason == "runtime_error"   # max([]) raises on the private test
    assert grade_code("class Solution:\n    def total(self, nums):\n        return len(nums)\n",
                      functional).reason == "failed_tests"


def test_the_matrix_checks_benchmark_options(tmp_path):
    body = ("benchmark_options: {livecodebench: {release: release_v4, since: 2024-08-01}}\nvariants:\n  v1:\n"
            "    model: {path: /x}\n    engine: {kind: transformers}\n    hardware: cpu-2vcpu\n"
            "    benchmarks: {livecodebench: 10}\n")
    matrix = tmp_path / "matrix.yaml"
    matrix.write_text(body)
    assert load_matrix(matrix).benchmark_options == {"livecodebench": {"release": "release_v4",
                                                                       "since": date(2024, 8, 1)}}
    matrix.write_text(body.replace("release_v4", "release_v0"))
    with pytest.raises(MatrixError, match="release 'release_v0' unknown"):
        load_matrix(matrix)
    matrix.write_text(body.replace("livecodebench: {release", "gsm8k: {release"))
    with pytest.raises(MatrixError, match="benchmark 'gsm8k' takes no options"):
        load_matrix(matrix)


def test_the_grade_command_grades_livecodebench_answers_from_the_mirror(mirror, tmp_path, monkeypatch, capsys):
    from pipelines.cli import main as yardstick

    monkeypatch.setenv("YARDSTICK_BENCHMARK_MIRROR", str(mirror))
    source, graded = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    source.write_text(json.dumps({"item_id": "sum-two", "response": "</think>\n```python\nprint(sum(map(int, "
                                                                    "input().split())))\n```"}) + "\n"
                      + json.dumps({"item_id": "list-total", "response": "</think> no idea"}) + "\n")
    assert yardstick(["grade", "--benchmark", "livecodebench", "--input", str(source), "--output", str(graded)]) == 0
    assert [json.loads(line)["reason"] for line in graded.read_text().splitlines()] == ["passed", "no_code"]
