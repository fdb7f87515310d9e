"""Grading code answers: the final fenced code block after the reasoning, run against the benchmark's tests in
the sandbox (assets.grading.sandbox), never in this process.

The program run is a small harness with the answer and the tests inside it as string literals: it compiles the
answer (a SyntaxError is `syntax_error`), runs it (an exception while defining it is `runtime_error`), runs the
tests' `check(candidate)` (an AssertionError is `failed_tests`, any other exception `runtime_error`, a
MemoryError `memory_limit`) and prints a marker only when the tests passed. Time beyond the limits is
`timeout`; more output than the cap is `output_limit`. A passed program is one that printed the marker and
exited 0; the sandbox keeps the host safe from the program, and the marker keeps a program that exits early
with status 0 (sys.exit(0) at import) from counting as a pass.
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from assets.grading.sandbox import Limits, Outcome, run_sandboxed
from assets.matrix.host import usable_cores

CODE_REASONS = ("passed", "failed_tests", "syntax_error", "runtime_error", "timeout", "memory_limit",
                "output_limit", "no_code", "truncated")
# Reasons of a program that ran to its end: its tests ran, whatever they found.
RUNNABLE_REASONS = ("passed", "failed_tests")
DETAIL_CHARS = 600   # of a failing program's stderr (or stdout) kept with its grade, for inspection
EXTRACTED_CHARS = 20_000

DEFAULT_LIMITS = Limits()
# LiveCodeBench runs every test case of a problem (dozens, some large) in one program.
TESTS_LIMITS = Limits(wall_s=30.0, cpu_s=30, output_bytes=256 << 10)
_FENCE = re.compile(r"```[ \t]*([A-Za-z0-9_+-]*)[^\n]*\n(.*?)```", re.DOTALL)

# Exit statuses of the harness, one per way a program can end.
_EXIT = {3: "syntax_error", 4: "runtime_error", 5: "failed_tests", 6: "memory_limit"}
_HARNESS = '''import sys
answer, tests, entry_point, marker = {answer!r}, {tests!r}, {entry_point!r}, {marker!r}
scope = {{"__name__": "__candidate__"}}
def leave(status):
    sys.stdout.flush()
    sys.stderr.flush()
    import os
    os._exit(status)
try:
    compiled = compile(answer, "answer.py", "exec")
except (SyntaxError, ValueError) as error:
    print(f"{{type(error).__name__}}: {{error}}", file=sys.stderr)
    leave(3)
try:
    exec(compiled, scope)
    exec(compile(tests, "tests.py", "exec"), scope)
    candidate = scope[entry_point]
except MemoryError:
    print("MemoryError while defining the answer", file=sys.stderr)
    leave(6)
except BaseException as error:
    import traceback
    traceback.print_exc()
    leave(4)
try:
    scope["check"](candidate)
except AssertionError:
    import traceback
    traceback.print_exc()
    leave(5)
except MemoryError:
    print("MemoryError in the tests", file=sys.stderr)
    leave(6)
except BaseException:
    import traceback
    traceback.print_exc()
    leave(4)
print(marker)
leave(0)
'''


# LiveCodeBench: the answer is a program run once per test case, in one sandbox, with its stdin and stdout
# replaced (stdin tests), or a class Solution whose method is called with each case's arguments (functional tests).
_TESTS_HARNESS = '''import io, json, sys, traceback
answer, tests, func_name, marker = {answer!r}, {tests!r}, {func_name!r}, {marker!r}
def leave(status):
    sys.stdout.flush()
    sys.stderr.flush()
    import os
    os._exit(status)
def same_output(got, expected):
    got = [line.strip() for line in got.strip().splitlines()]
    expected = [line.strip() for line in expected.strip().splitlines()]
    if got == expected:
        return True
    if len(got) != len(expected):
        return False
    for mine, theirs in zip(got, expected):
        mine, theirs = mine.split(), theirs.split()
        if len(mine) != len(theirs):
            return False
        for a, b in zip(mine, theirs):
            if a == b:
                continue
            try:
                if abs(float(a) - float(b)) > 1e-6 * max(1.0, abs(float(b))):
                    return False
            except ValueError:
                return False
    return True
try:
    compiled = compile(answer, "answer.py", "exec")
except (SyntaxError, ValueError) as error:
    print(f"{{type(error).__name__}}: {{error}}", file=sys.stderr)
    leave(3)
real_stdin, real_stdout = sys.stdin, sys.stdout
method = None
for number, case in enumerate(tests, 1):
    try:
        if case["testtype"] == "functional":
            if method is None:
                scope = {{"__name__": "__candidate__"}}
                exec(compiled, scope)
                method = getattr(scope["Solution"](), func_name)
            arguments = [json.loads(line) for line in case["input"].split("\\n") if line.strip()]
            got = json.loads(json.dumps(method(*arguments)))
            passed = got == json.loads(case["output"])
            shown = json.dumps(got)
        else:
            sys.stdin = io.TextIOWrapper(io.BytesIO(case["input"].encode()), encoding="utf-8")
            captured = sys.stdout = io.TextIOWrapper(io.BytesIO(), encoding="utf-8")
            try:
                exec(compiled, {{"__name__": "__main__"}})
            except SystemExit:
                pass
            finally:
                sys.stdin, sys.stdout = real_stdin, real_stdout
            captured.flush()
            shown = captured.buffer.getvalue().decode("utf-8", "replace")
            passed = same_output(shown, case["output"])
    except MemoryError:
        sys.stdin, sys.stdout = real_stdin, real_stdout
        print(f"MemoryError in test {{number}}", file=sys.stderr)
        leave(6)
    except BaseException:
        sys.stdin, sys.stdout = real_stdin, real_stdout
        print(f"test {{number}} of {{len(tests)}} raised:", file=sys.stderr)
        traceback.print_exc()
        leave(4)
    if not passed:
        print(f"test {{number}} of {{len(tests)}}: expected {{case['output'][:200]!r}}, got {{shown[:200]!r}}",
              file=sys.stderr)
        leave(5)
print(marker)
leave(0)
'''


@dataclass(frozen=True)
class CodeGrade:
    reason: str           # one of CODE_REASONS
    detail: str | None    # a failing program's stderr (or why it was stopped), cut to DETAIL_CHARS

    @property
    def passed(self) -> bool:
        return self.reason == "passed"


def extract_code(answer: str) -> str | None:
    """The last fenced code block of the answer (a python one when there are several), or None."""
    blocks = [(language.lower(), body) for language, body in _FENCE.findall(answer or "")]
    if not blocks:
        return None
    python = [body for language, body in blocks if language in ("python", "py", "python3")]
    code = (python or [body for _, body in blocks])[-1]
    return code if code.strip() else None


def program(code: str, gold: str, marker: str) -> str:
    """The harness that grades `code` against the tests in `gold`: HumanEval's (JSON: prompt, entry_point, test;
    the prompt's imports go first, so an answer that repeats only the function still has them) or LiveCodeBench's
    (JSON: tests, func_name)."""
    spec = json.loads(gold)
    if "tests" in spec:
        return _TESTS_HARNESS.format(answer=code, tests=spec["tests"], func_name=spec.get("func_name"),
                                     marker=marker)
    imports = "\n".join(line for line in spec["prompt"].splitlines()
                        if line.startswith(("import ", "from ")))
    return _HARNESS.format(answer=f"{imports}\n{code}" if imports else code, tests=spec["test"],
                           entry_point=spec["entry_point"], marker=marker)


def classify(outcome: Outcome, marker: str) -> CodeGrade:
    """The reason a sandboxed run earns, from how it ended."""
    def detail(text: str) -> str | None:
        text = text.strip()
        return text[-DETAIL_CHARS:] if text else None

    if outcome.output_exceeded:
        return CodeGrade("output_limit", "stopped: it wrote more output than the sandbox keeps")
    if outcome.timed_out:
        return CodeGrade("timeout", f"stopped after {outcome.wall_s:.1f} s of wall-clock time")
    code = outcome.exit_code
    signal_number = outcome.signal or (code - 128 if code is not None and code > 128 else None)
    if signal_number in (9, 24):   # SIGKILL at the hard CPU limit, SIGXCPU at the soft one
        return CodeGrade("timeout", "stopped at its CPU-time limit")
    if code == 0:
        if outcome.stdout.rstrip().endswith(marker):
            return CodeGrade("passed", None)
        return CodeGrade("runtime_error", "exited 0 before its tests ran")
    if code in _EXIT:
        reason = _EXIT[code]
        if reason == "runtime_error" and "MemoryError" in outcome.stderr:
            reason = "memory_limit"
        return CodeGrade(reason, detail(outcome.stderr) or detail(outcome.stdout))
    return CodeGrade("runtime_error", detail(outcome.stderr) or f"ended with status {code}, signal {signal_number}")


def grade_code(code: str, gold: str, limits: Limits | None = None) -> CodeGrade:
    """`limits` default: DEFAULT_LIMITS, or TESTS_LIMITS for a benchmark with many test cases per problem."""
    marker = f"yardstick-tests-passed-{secrets.token_hex(16)}"
    limits = limits or (TESTS_LIMITS if "tests" in json.loads(gold) else DEFAULT_LIMITS)
    return classify(run_sandboxed(program(code, gold, marker), limits), marker)


def grade_code_many(pairs: Sequence[tuple[str, str]], workers: int | None = None,
                    limits: Limits | None = None) -> list[CodeGrade]:
    """Grade (code, gold) pairs, `workers` sandboxes at a time (default: one per core)."""
    with ThreadPoolExecutor(max_workers=workers or usable_cores()) as pool:
        return list(pool.map(lambda pair: grade_code(pair[0], pair[1], limits), pairs))
