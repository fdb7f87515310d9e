"""The `yardstick` command's package (pipelines/cli/): each command where its group's module says, the console
script and `python -m pipelines.cli` reaching the same `main`, and what a refused command prints and returns.

Tiers per test: parsing and refusals are `unit`; the command run as a process of its own is `integration`.
"""

import json
import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

import pytest

from assets.grading.equivalence import REASONS
from pipelines.cli import main, parser
from pipelines.cli import main as yardstick
from tests.conftest import needs_shared

ROOT = Path(__file__).resolve().parents[2]

TEST_MATRIX = str(ROOT / "tests" / "matrix.test.yaml")


@pytest.mark.unit
@pytest.mark.parametrize(("argv", "module"), [
    (["variants"], "runs"),
    (["materialize", "v"], "runs"),
    (["recover"], "runs"),
    (["k8s-config"], "runs"),
    (["report"], "results"),
    (["leaderboard"], "results"),
    (["history", "v"], "results"),
    (["regressions"], "results"),
    (["compact"], "results"),
    (["grade", "--benchmark", "arith", "--input", "in", "--output", "out"], "grade"),
    (["bench", "--base-url", "http://x/v1", "--model", "m", "--output", "out"], "bench"),
    (["plan"], "models"),
    (["build-tiny-model", "folder"], "models"),
])
def test_each_command_is_handled_in_its_groups_module(argv, module):
    assert parser().parse_args(argv).handler.__module__ == f"pipelines.cli.{module}"


@pytest.mark.unit
def test_help_lists_every_command_in_its_order(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    assert ("{variants,history,report,regressions,compact,recover,materialize,leaderboard,grade,bench,plan,"
            "build-tiny-model,k8s-config}") in capsys.readouterr().out


@pytest.mark.unit
def test_the_console_script_is_main():
    (script,) = [point for point in entry_points(group="console_scripts") if point.name == "yardstick"]
    assert script.load() is main


@pytest.mark.unit
@pytest.mark.parametrize(("argv", "message"), [
    (["variants", "nosuch", "--matrix", TEST_MATRIX], "yardstick: unknown variant nosuch; the matrix "),
    (["variants", "--matrix", "/nonexistent/matrix.yaml"], "yardstick: "),
    (["plan", "--gpu", "nosuch", "--matrix", TEST_MATRIX], "yardstick: unknown GPU 'nosuch'; known: "),
    (["bench", "--base-url", "http://x/v1", "--model", "m", "--output", "out", "--concurrency", "one"],
     "yardstick: expected comma-separated numbers, got 'one'"),
])
def test_a_refused_command_says_why_and_exits_2(argv, message, capsys):
    assert main(argv) == 2
    assert capsys.readouterr().err.startswith(message)


@pytest.mark.integration
def test_python_dash_m_runs_the_command():
    done = subprocess.run([sys.executable, "-m", "pipelines.cli", "variants", "--matrix", TEST_MATRIX],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.split()[:2] == ["tiny-test", "tiny-test-w8a16"]


def _write(path, rows):
    path.write_text("".join((row if isinstance(row, str) else json.dumps(row)) + "\n" for row in rows))


@pytest.mark.unit
def test_grade_writes_verdicts_and_keeps_the_input_fields(tmp_path, capsys):
    source, result = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    _write(source, [
        {"id": 1, "gold": "#### 1,450", "response": "hmm</think>It is \\boxed{1450}."},
        {"id": 2, "gold": "18", "response": "<think>so many steps but no end"},
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


@pytest.mark.unit
@pytest.mark.parametrize(("response", "finish_reason", "default", "prefilled"), [
    ("The total is \\boxed{18}.", "stop", ("18", "correct"), (None, "truncated")),     # a plain answer
    ("We add 9 and 9 to get 18.", None, ("18", "correct"), (None, "truncated")),
    ("We add 9 and 9 to get", "length", (None, "truncated"), (None, "truncated")),      # cut by the limit
    ("<think>9 and 9 make", "length", (None, "truncated"), (None, "truncated")),       # reasoning never closed
    ("9 and 9</think>\\boxed{18}", "stop", ("18", "correct"), ("18", "correct")),
])
def test_the_response_decides_unless_think_prefill_is_asked(tmp_path, response, finish_reason, default, prefilled):
    """Outputs made elsewhere carry no promise that they start inside <think>: by default what the response shows
    decides; --think-prefill keeps R1's strict reading (no </think>, no answer)."""
    source = tmp_path / "in.jsonl"
    _write(source, [{"gold": "18", "response": response, "finish_reason": finish_reason}])
    for flags, expected in (([], default), (["--think-prefill"], prefilled)):
        result = tmp_path / "out.jsonl"
        assert yardstick(["grade", "--benchmark", "gsm8k", "--input", str(source), "--output", str(result),
                          "--workers", "1", *flags]) == 0
        row = json.loads(result.read_text())
        assert (row["extracted"], row["reason"]) == expected, flags


@pytest.mark.unit
@pytest.mark.parametrize(("benchmark", "gold", "response", "correct"), [
    ("aime24", "025", "</think>\\boxed{25}", True),
    ("amc23", 27.0, "</think>\\boxed{27}", True),
    ("mmlu_stem", 2, "</think>The answer is (C).", True),
    ("mmlu_stem", 2, "</think>**Answer:** C", True),
    ("mmlu_stem", 2, "</think>Answer: (C)", True),
    ("mmlu_stem", 2, "</think>Only (C) fits.", True),
    ("mmlu_stem", 2, "</think>(A) is too small and (C) too large.", False),   # two letters: no guess
    ("mmlu_stem", 2, "</think>Clearly the Cat did it.", False),               # a stray letter is not an answer
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


@pytest.mark.unit
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


@pytest.mark.unit
def test_a_file_of_hostile_strings_is_graded_line_by_line_as_strict_json(tmp_path, capsys):
    """Strings a model can emit: each line comes back graded, with a reason, in strict ASCII JSON that reads
    back to exactly the response that went in (the lone surrogate included)."""
    from tests.grading.test_extraction import HOSTILE_RESPONSES

    source, result = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    names = list(HOSTILE_RESPONSES)
    _write(source, [{"name": name, "gold": "7", "response": HOSTILE_RESPONSES[name]} for name in names])
    assert yardstick(["grade", "--benchmark", "math500", "--input", str(source), "--output", str(result),
                      "--workers", "1"]) == 0
    raw = result.read_bytes()
    assert raw.isascii()
    lines = raw.decode("ascii").splitlines()
    assert len(lines) == len(names)
    strict = {"parse_constant": lambda name: pytest.fail(f"{name} in strict JSON output")}
    rows = [json.loads(line, **strict) for line in lines]
    assert [row["name"] for row in rows] == names
    for row in rows:
        assert row["response"] == HOSTILE_RESPONSES[row["name"]], row["name"]
        assert row["reason"] in REASONS, row
    assert f"graded {len(names)} responses" in capsys.readouterr().err


def _existing_output(path):
    path.write_text('{"previous": "results"}\n' * 3)
    return path.read_bytes()


@pytest.mark.unit
def test_a_bad_line_leaves_an_existing_output_as_it_was(tmp_path, capsys):
    source, result = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    before = _existing_output(result)
    _write(source, [{"gold": "1", "response": "</think>\\boxed{1}"}, {"gold": "2", "response": "</think>2"},
                    "{broken"])
    assert yardstick(["grade", "--benchmark", "gsm8k", "--input", str(source), "--output", str(result)]) == 2
    assert "line 3 is not valid JSON" in capsys.readouterr().err
    assert result.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.jsonl", "out.jsonl"]


@pytest.mark.unit
def test_a_failure_while_writing_leaves_no_partial_output(tmp_path):
    """The output goes to a temporary file moved into place when complete: a write that fails on the third row
    (here a value strict JSON cannot hold) leaves the previous file byte for byte, and no temporary file."""
    from assets.grading.equivalence import Grade
    from assets.grading.files import write_graded

    result = tmp_path / "out.jsonl"
    before = _existing_output(result)
    rows = [{"gold": "1"}, {"gold": "2"}, {"gold": float("nan")}]
    grades = [Grade("1", True, "correct")] * 3
    with pytest.raises(ValueError):
        write_graded(result, rows, grades)
    assert result.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["out.jsonl"]


@pytest.mark.unit
def test_an_invalid_byte_is_reported_with_its_line(tmp_path, capsys):
    source = tmp_path / "in.jsonl"
    source.write_bytes(b'{"gold": "1", "response": "a"}\n{"gold": "2", "response": "caf\xe9"}\n')
    code = yardstick(["grade", "--benchmark", "gsm8k", "--input", str(source), "--output", str(tmp_path / "o")])
    assert code == 2
    error = capsys.readouterr().err
    assert "line 2 is not valid UTF-8" in error and "Traceback" not in error
    assert not (tmp_path / "o").exists()


@pytest.mark.unit
@pytest.mark.parametrize("benchmark", ["gsm8k", "math500", "aime24"])
@pytest.mark.parametrize("gold", ["NaN", "Infinity", "-Infinity", "1e999", '"nan"', '"inf"', '"1e999"'])
def test_a_non_finite_gold_is_refused_with_its_line(tmp_path, capsys, benchmark, gold):
    source = tmp_path / "in.jsonl"
    _write(source, ['{"gold": "1", "response": "r"}', '{"gold": ' + gold + ', "response": "</think>\\\\boxed{inf}"}'])
    code = yardstick(["grade", "--benchmark", benchmark, "--input", str(source), "--output", str(tmp_path / "o")])
    assert code == 2
    error = capsys.readouterr().err
    assert "line 2" in error and "finite" in error, error
    assert not (tmp_path / "o").exists()


@pytest.mark.unit
@needs_shared
@pytest.mark.parametrize(("benchmark", "mirror_file", "solution"), [
    ("math500", "math500.jsonl", "solution"),
    ("gsm8k", "gsm8k_test.jsonl", "answer"),
])
def test_reference_solutions_are_graded_correct_without_flags(tmp_path, capsys, benchmark, mirror_file, solution):
    """Plain outputs made elsewhere (no think tags): the datasets' own reference solutions, graded with the
    command's defaults against their own answers. At least 99.5% must come back correct (here: all)."""
    from assets.benchmarks.sources import read_jsonl
    from tests.conftest import SHARED_BENCHMARKS

    rows = read_jsonl(SHARED_BENCHMARKS / mirror_file)
    source, result = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    _write(source, [{"gold": row["answer"], "response": row[solution]} for row in rows])
    assert yardstick(["grade", "--benchmark", benchmark, "--input", str(source), "--output", str(result)]) == 0
    graded = [json.loads(line) for line in result.read_text().splitlines()]
    correct = sum(row["correct"] for row in graded)
    assert len(graded) == len(rows) and correct >= 0.995 * len(rows), [
        (row["gold"], row["extracted"], row["reason"]) for row in graded if not row["correct"]][:10]


def _special(tmp_path, kind):
    """An output path that is not a regular file, and a way to tell it is still what it was."""
    import os

    path = tmp_path / "out.jsonl"
    if kind == "symlink":
        target = tmp_path / "target.jsonl"
        target.write_text("kept\n")
        path.symlink_to(target)
        return path, lambda: path.is_symlink() and target.read_text() == "kept\n"
    if kind == "fifo":
        os.mkfifo(path)
        return path, lambda: path.is_fifo()
    if kind == "folder":
        path.mkdir()
        return path, lambda: path.is_dir()
    return "/dev/null", lambda: os.path.exists("/dev/null") and not os.path.isfile("/dev/null")


@pytest.mark.unit
@pytest.mark.parametrize(("kind", "named"), [("symlink", "a symbolic link"), ("fifo", "a FIFO"),
                                             ("folder", "a folder"), ("device", "a device")])
def test_an_output_that_is_not_a_regular_file_is_refused_before_grading_and_left_as_it_was(tmp_path, capsys, kind,
                                                                                           named):
    source = tmp_path / "in.jsonl"
    _write(source, [{"gold": "1", "response": "</think>\\boxed{1}"}])
    output, unchanged = _special(tmp_path, kind)
    assert yardstick(["grade", "--benchmark", "gsm8k", "--input", str(source), "--output", str(output)]) == 2
    assert f"output {output} is {named}; it would be replaced, not written through" in capsys.readouterr().err
    assert unchanged()


@pytest.mark.unit
def test_dash_writes_the_verdicts_to_standard_output(tmp_path, capsys):
    source = tmp_path / "in.jsonl"
    _write(source, [{"gold": "1", "response": "</think>\\boxed{1}"}, {"gold": "2", "response": "</think>3"}])
    assert yardstick(["grade", "--benchmark", "gsm8k", "--input", str(source), "--output", "-"]) == 0
    captured = capsys.readouterr()
    assert [json.loads(line)["reason"] for line in captured.out.splitlines()] == ["correct", "wrong"]
    assert "wrote standard output" in captured.err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.jsonl"]


@pytest.mark.unit
def test_cli_reports_a_missing_warehouse(tmp_path, capsys):
    assert yardstick(["leaderboard", "--warehouse", str(tmp_path / "none.duckdb")]) == 2
    assert "does not exist yet; run `make run`" in capsys.readouterr().err
    assert not (tmp_path / "none.duckdb").exists()   # reading the leaderboard never creates a warehouse
    assert yardstick(["variants"]) == 0
    assert capsys.readouterr().out.split() == ["tiny-test", "tiny-test-w8a16", "tiny-test-api", "tiny-test-vllm",
                                                  "tiny-test-llamacpp"]


@pytest.mark.unit
def test_variants_command_checks_names_against_the_matrix(capsys):
    assert yardstick(["variants", "tiny-test", "nope", "tiny-test"]) == 2
    error = capsys.readouterr().err
    assert "unknown variant nope; the matrix" in error and "has: tiny-test, tiny-test-w8a16, tiny-test-api" in error
    assert yardstick(["variants", "tiny-test-api", "tiny-test", "tiny-test-api"]) == 0
    assert capsys.readouterr().out.split() == ["tiny-test-api", "tiny-test"]


@pytest.mark.unit
def test_grading_a_folder_or_an_empty_file_says_so_and_writes_nothing(tmp_path, capsys):
    from pipelines.cli import main as yardstick

    output = tmp_path / "out.jsonl"
    assert yardstick(["grade", "--benchmark", "gsm8k", "--input", str(tmp_path), "--output", str(output)]) == 2
    assert f"{tmp_path} cannot be read (Is a directory); name a JSONL file" in capsys.readouterr().err
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n\n")
    assert yardstick(["grade", "--benchmark", "gsm8k", "--input", str(empty), "--output", str(output)]) == 2
    assert f"{empty} has no lines to grade; nothing was written" in capsys.readouterr().err
    assert not output.exists()
