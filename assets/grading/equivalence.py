"""Is a prediction the gold answer? Numbers and choice letters compare directly; the rest goes to
math-verify in bounded worker processes, with a cache because k samples repeat the same answers.

math-verify's own timeout is signal-based, so it only works in a process's main thread: every symbolic check
runs in a worker process, and a worker that still hangs is killed and replaced (see `pool`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from itertools import combinations
from typing import Self

from assets.grading.extraction import split_reasoning
from assets.grading.formats import answer_format, direct_equal, extract_answer
from assets.grading.pool import TIMEOUT, BoundedPool, CallFailure
from assets.grading.shown import guard_library_logs
from assets.matrix.host import usable_cores

DEFAULT_TIMEOUT_S = 5.0
REASONS = ("correct", "wrong", "no_answer", "truncated", "parse_error", "timeout")


@dataclass(frozen=True)
class GradeInput:
    gold: str
    answer_format: str
    response: str
    reasoning_content: str | None = None
    finish_reason: str | None = None
    reasoning_prefilled: bool = True


@dataclass(frozen=True)
class Grade:
    extracted: str | None
    correct: bool
    reason: str  # one of REASONS, or of CODE_REASONS for code
    detail: str | None = None   # code: what a failing program printed to stderr, cut short


def symbolic_equal(gold: str, prediction: str, timeout_s: float) -> bool | None:
    """math-verify on (gold, prediction); None when either side cannot be parsed. Runs in a worker, whose
    math-verify logs (the whole answer it timed out on) are bounded and escaped."""
    from math_verify import parse, verify

    guard_library_logs()
    timeout = max(1, math.ceil(timeout_s))
    gold_parsed = parse(f"${gold}$", parsing_timeout=timeout)
    predicted = parse(f"$\\boxed{{{prediction}}}$", parsing_timeout=timeout)
    if not gold_parsed or not predicted:
        return None
    return bool(verify(gold_parsed, predicted, timeout_seconds=timeout))


class Grader:
    """Grades batches of responses; reuse one instance (the cache and the workers live in it) and close it."""

    def __init__(self, workers: int | None = None, timeout_s: float = DEFAULT_TIMEOUT_S):
        self.timeout_s = timeout_s
        self.workers = workers or usable_cores()
        self._pool = BoundedPool(symbolic_equal, self.workers, timeout_s)
        self._cache: dict[tuple[str, str, str], bool | str | None] = {}

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._pool.close()

    def equal_many(self, pairs: Sequence[tuple[str, str, str]]) -> list[bool | str | None]:
        """Verdict per (gold, prediction, format): True, False, None (unparseable) or 'timeout'."""
        keys = [(gold.strip(), prediction.strip(), name) for gold, prediction, name in pairs]
        symbolic: list[tuple[str, str, str]] = []
        for key in dict.fromkeys(keys):
            if key in self._cache:
                continue
            direct = direct_equal(*key)
            if direct is not None or not answer_format(key[2]).symbolic:
                self._cache[key] = bool(direct)
            else:
                symbolic.append(key)
        outcomes = self._pool.map([(gold, prediction, self.timeout_s) for gold, prediction, _ in symbolic])
        for key, outcome in zip(symbolic, outcomes, strict=True):
            if isinstance(outcome, CallFailure):
                self._cache[key] = TIMEOUT if outcome.kind == TIMEOUT else None
            else:
                self._cache[key] = outcome
        return [self._cache[key] for key in keys]

    def grade_many(self, inputs: Sequence[GradeInput]) -> list[Grade]:
        """A grade per input: math answers checked for equivalence with the gold, code run against its tests in
        the sandbox (assets.grading.code)."""
        is_code = [answer_format(item.answer_format).runs_tests for item in inputs]
        math = iter(self._grade_math([item for item, code in zip(inputs, is_code, strict=True) if not code]))
        code = iter(self._grade_code([item for item, code in zip(inputs, is_code, strict=True) if code]))
        return [next(code) if code_item else next(math) for code_item in is_code]

    def _grade_code(self, inputs: Sequence[GradeInput]) -> list[Grade]:
        if not inputs:
            return []
        from assets.grading.code import EXTRACTED_CHARS, grade_code_many
        from assets.grading.sandbox import check_sandbox

        check_sandbox()   # nothing runs unsandboxed: without bubblewrap this says how to install it
        found: list[str | None | Grade] = []
        for item in inputs:
            split = split_reasoning(item.response, item.reasoning_content, item.reasoning_prefilled,
                                    item.finish_reason)
            code = extract_answer(split.answer, item.answer_format) if split.terminated else None
            found.append(code if code is not None else Grade(None, False,
                                                             "truncated" if not split.terminated else "no_code"))
        to_run = [(code, item.gold) for code, item in zip(found, inputs, strict=True) if isinstance(code, str)]
        ran = iter(grade_code_many(to_run, workers=self.workers))
        grades = []
        for code in found:
            if isinstance(code, Grade):
                grades.append(code)
                continue
            outcome = next(ran)
            grades.append(Grade(code[:EXTRACTED_CHARS], outcome.passed, outcome.reason, outcome.detail))
        return grades

    def _grade_math(self, inputs: Sequence[GradeInput]) -> list[Grade]:
        extracted: list[str | None] = []
        early: list[str | None] = []
        for item in inputs:
            split = split_reasoning(item.response, item.reasoning_content, item.reasoning_prefilled,
                                    item.finish_reason)
            answer = extract_answer(split.answer, item.answer_format) if split.terminated else None
            extracted.append(answer)
            early.append("truncated" if not split.terminated else "no_answer" if answer is None else None)
        to_check = [(item.gold, answer, item.answer_format)
                    for item, answer in zip(inputs, extracted, strict=True) if answer is not None]
        verdicts = iter(self.equal_many(to_check))
        grades = []
        for answer, reason in zip(extracted, early, strict=True):
            if reason is not None:
                grades.append(Grade(None, False, reason))
                continue
            verdict = next(verdicts)
            if verdict == TIMEOUT:
                grades.append(Grade(answer, False, "timeout"))
            elif verdict is None:
                grades.append(Grade(answer, False, "parse_error"))
            else:
                grades.append(Grade(answer, bool(verdict), "correct" if verdict else "wrong"))
        return grades


def answer_equivalence(grader: Grader, answer_groups: Iterable[Sequence[str]], format_name: str
                       ) -> Callable[[str, str], bool]:
    """A `same(a, b)` for answers that appear together in a group (one item's samples), decided by the
    grader once per distinct pair, so majority votes count "\\frac{1}{2}" and "0.5" as one answer. Code answers
    are the same only when identical (their behaviour is not compared)."""
    if answer_format(format_name).runs_tests:
        return lambda first, second: first == second
    pairs = sorted({pair for group in answer_groups for pair in combinations(sorted(set(group)), 2)})
    verdicts = dict(zip(pairs, grader.equal_many([(a, b, format_name) for a, b in pairs]), strict=True))

    def same(first: str, second: str) -> bool:
        return first == second or verdicts.get((first, second)) is True or verdicts.get((second, first)) is True

    return same
