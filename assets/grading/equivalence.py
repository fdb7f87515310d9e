"""Is a prediction the gold answer? Numbers compare directly; LaTeX goes to math-verify in worker processes.

math-verify's timeout is signal-based and only works in a process's main thread, so every symbolic check runs
in a pool of worker processes, each bounded; a worker that still hangs is killed and the pool rebuilt.
"""

from __future__ import annotations

import math
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from typing import Self

from assets.grading.extraction import as_number, extract_answer, split_reasoning

DEFAULT_TIMEOUT_S = 5.0


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
    reason: str  # correct | wrong | no_answer | truncated | parse_error | timeout


def symbolic_equal(gold: str, prediction: str, timeout_s: float) -> bool | None:
    """math-verify on (gold, prediction); None when either side cannot be parsed. Runs in a worker."""
    from math_verify import parse, verify

    timeout = max(1, math.ceil(timeout_s))
    gold_parsed = parse(f"${gold}$", parsing_timeout=timeout)
    predicted = parse(f"$\\boxed{{{prediction}}}$", parsing_timeout=timeout)
    if not gold_parsed or not predicted:
        return None
    return bool(verify(gold_parsed, predicted, timeout_seconds=timeout))


def numeric_equal(gold: str, prediction: str) -> bool | None:
    gold_value, predicted_value = as_number(gold), as_number(prediction)
    if gold_value is None or predicted_value is None:
        return None
    return math.isclose(gold_value, predicted_value, rel_tol=1e-9, abs_tol=1e-9)


class Grader:
    """Grades batches of responses; reuse one instance, and close it (or use it as a context manager)."""

    def __init__(self, workers: int | None = None, timeout_s: float = DEFAULT_TIMEOUT_S):
        self.workers = workers or os.cpu_count() or 1
        self.timeout_s = timeout_s
        self._executor: ProcessPoolExecutor | None = None
        self._cache: dict[tuple[str, str], bool | None] = {}

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None

    def _pool(self) -> ProcessPoolExecutor:
        if self._executor is None:
            self._executor = ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context("spawn"))
        return self._executor

    def _kill_pool(self) -> None:
        """A worker outlived its bound: kill every worker and start afresh on the next call."""
        children = multiprocessing.active_children()
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None
        for child in children:
            child.kill()

    def grade_many(self, inputs: list[GradeInput]) -> list[Grade]:
        extracted: list[tuple[str | None, str]] = []
        for item in inputs:
            split = split_reasoning(item.response, item.reasoning_content, item.reasoning_prefilled,
                                    item.finish_reason)
            if not split.terminated:
                extracted.append((None, "truncated"))
                continue
            answer = extract_answer(split.answer, item.answer_format)
            extracted.append((answer, "no_answer") if answer is None else (answer, ""))

        verdicts: dict[tuple[str, str], bool | str | None] = {}
        symbolic: dict[tuple[str, str], object] = {}
        for item, (answer, _) in zip(inputs, extracted):
            if answer is None:
                continue
            key = (item.gold, answer.strip())
            if key in verdicts or key in symbolic:
                continue
            if key in self._cache:
                verdicts[key] = self._cache[key]
                continue
            numeric = numeric_equal(*key) if item.answer_format != "latex" else None
            if numeric is not None:
                verdicts[key] = numeric
            else:
                symbolic[key] = self._pool().submit(symbolic_equal, key[0], key[1], self.timeout_s)
        pending = list(symbolic.items())
        while pending:
            key, future = pending.pop(0)
            try:
                verdicts[key] = future.result(timeout=self.timeout_s * 2 + 5)
            except FutureTimeout:
                verdicts[key] = "timeout"
                self._kill_pool()
                pending = [(k, self._pool().submit(symbolic_equal, k[0], k[1], self.timeout_s)) for k, _ in pending]
            except Exception:  # noqa: BLE001 - any failure inside the parser is a parse error of that answer
                verdicts[key] = None
        self._cache.update({key: value for key, value in verdicts.items() if value != "timeout"})

        grades = []
        for item, (answer, reason) in zip(inputs, extracted):
            if answer is None:
                grades.append(Grade(None, False, reason))
                continue
            verdict = verdicts[(item.gold, answer.strip())]
            if verdict == "timeout":
                grades.append(Grade(answer, False, "timeout"))
            elif verdict is None:
                grades.append(Grade(answer, False, "parse_error"))
            else:
                grades.append(Grade(answer, bool(verdict), "correct" if verdict else "wrong"))
        return grades
