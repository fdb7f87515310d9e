"""`yardstick grade`: outputs made anywhere, graded with the pipeline's code."""

import json

import pytest

from pipelines.cli import main as yardstick

pytestmark = pytest.mark.unit


def _write(path, rows):
    path.write_text("".join((row if isinstance(row, str) else json.dumps(row)) + "\n" for row in rows))


def test_grade_writes_verdicts_and_keeps_the_input_fields(tmp_path, capsys):
    source, result = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    _write(source, [
        {"id": 1, "gold": "#### 1,450", "response": "hmm</think>It is \\boxed{1450}."},
        {"id": 2, "gold": "18", "response": "so many steps but no end"},
        {"id": 3, "gold": "18", "response": "</think>I give up."},
        {"id": 4, "gold": "7", "response": "</think>\\boxed{8}", "reasoning_content": "thinking"},
    ])
    assert yardstick(["grade", "--benchmark", "gsm8k", "--input", str(source), "--output", str(result)]) == 0
    rows = [json.loads(line) for line in result.read_text().splitlines()]
    assert [(r["id"], r["extracted"], r["correct"], r["reason"]) for r in rows] == [
        (1, "1450", True, "correct"), (2, None, False, "truncated"), (3, None, False, "no_answer"),
        (4, "8", False, "wrong")]
    assert rows[3]["reasoning_content"] == "thinking"
    assert "graded 4 responses: 1 correct" in capsys.readouterr().err


@pytest.mark.parametrize(("benchmark", "gold", "response", "correct"), [
    ("aime24", "025", "</think>\\boxed{25}", True),
    ("amc23", 27.0, "</think>\\boxed{27}", True),
    ("mmlu_stem", 2, "</think>The answer is (C).", True),
    ("aqua_rat", "A", "</think>\\boxed{B}", False),
    ("math500", "\\text{4:30 p.m.}", "</think>\\boxed{4:30}", True),
    ("math500", "\\frac{1}{2}", "</think>\\boxed{0.5}", True),
])
def test_each_benchmark_brings_its_answer_format(tmp_path, benchmark, gold, response, correct):
    source, result = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    _write(source, [{"gold": gold, "response": response}])
    assert yardstick(["grade", "--benchmark", benchmark, "--input", str(source), "--output", str(result),
                      "--workers", "1"]) == 0
    assert json.loads(result.read_text())["correct"] is correct


@pytest.mark.parametrize(("line", "message"), [
    ('{"gold": "1"}', "line 2 lacks ['response']"),
    ("not json", "line 2 is not valid JSON"),
    ('["a list"]', "line 2 is not a JSON object"),
    ('{"gold": "x", "response": "r"}', "line 2: gold answer not valid for gsm8k"),
])
def test_a_malformed_line_is_named(tmp_path, capsys, line, message):
    source = tmp_path / "in.jsonl"
    _write(source, [{"gold": "1", "response": "r"}, line])
    code = yardstick(["grade", "--benchmark", "gsm8k", "--input", str(source), "--output", str(tmp_path / "o")])
    assert code == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
