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
import os
import re
import secrets
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from assets.grading.sandbox import Limits, Outcome, run_sandboxed

CODE_REASONS = ("passed", "failed_tests", "syntax_error", "runtime_error", "timeout", "memory_limit",
                "output_limit", "no_code", "truncated")
# Reasons of a program that ran to its end: its tests ran, whatever they found.
RUNNABLE_REASONS = ("passed", "failed_tests")
DETAIL_CHARS = 600   # of a failing program's stderr (or stdout) kept with its grade, for inspection
EXTRACTED_CHARS = 20_000

DEFAULT_LIMITS = Limits()
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
    """The harness that grades `code` against the tests in `gold` (JSON: prompt, entry_point, test). The
    prompt's imports go first: an answer that repeats only the function still has them."""
    spec = json.loads(gold)
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


def grade_code(code: str, gold: str, limits: Limits = DEFAULT_LIMITS) -> CodeGrade:
    marker = f"yardstick-tests-passed-{secrets.token_hex(16)}"
    return classify(run_sandboxed(program(code, gold, marker), limits), marker)


def grade_code_many(pairs: Sequence[tuple[str, str]], workers: int | None = None,
                    limits: Limits = DEFAULT_LIMITS) -> list[CodeGrade]:
    """Grade (code, gold) pairs, `workers` sandboxes at a time (default: one per core)."""
    with ThreadPoolExecutor(max_workers=workers or os.cpu_count() or 1) as pool:
        return list(pool.map(lambda pair: grade_code(pair[0], pair[1], limits), pairs))
