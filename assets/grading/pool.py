"""Worker processes that run one call each at a time under a wall-clock bound.

A worker that overruns its bound is killed and replaced, and the rest of the batch goes on; a worker that
dies is replaced and its call reported as failed. Threads cannot do this (a hung C-level sympy call cannot
be interrupted in a thread), and `concurrent.futures` pools break as a whole when one worker dies.
"""

from __future__ import annotations

import multiprocessing
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from typing import Any

TIMEOUT = "timeout"
CRASHED = "crashed"
STARTUP_ALLOWANCE_S = 30.0


@dataclass(frozen=True)
class CallFailure:
    kind: str  # timeout | crashed | error
    detail: str = ""


def _serve(connection: Connection, function: Callable[..., Any]) -> None:
    while True:
        try:
            task_id, args = connection.recv()
        except EOFError:
            return
        try:
            connection.send((task_id, True, function(*args)))
        except Exception as error:  # noqa: BLE001 - reported to the parent as this call's failure
            connection.send((task_id, False, f"{type(error).__name__}: {error}"[:500]))


class _Worker:
    def __init__(self, context: Any, function: Callable[..., Any]):
        self.connection, child = context.Pipe()
        self.process = context.Process(target=_serve, args=(child, function), daemon=True)
        self.process.start()
        child.close()
        self.task: int | None = None
        self.deadline = 0.0
        self.fresh = True  # its first call also pays for the imports

    def kill(self) -> None:
        self.process.kill()
        self.process.join()
        self.connection.close()


class BoundedPool:
    """`map` runs `function(*args)` for every args tuple on `workers` processes, each call bounded."""

    def __init__(self, function: Callable[..., Any], workers: int, timeout_s: float,
                 startup_allowance_s: float = STARTUP_ALLOWANCE_S):
        self.function = function
        self.size = max(1, workers)
        self.timeout_s = timeout_s
        self.startup_allowance_s = startup_allowance_s
        self._context = multiprocessing.get_context("spawn")
        self._workers: list[_Worker] = []
        self.replaced = 0

    def close(self) -> None:
        for worker in self._workers:
            worker.kill()
        self._workers = []

    def _ensure_workers(self) -> None:
        self._workers = [w for w in self._workers if w.process.is_alive()]
        while len(self._workers) < self.size:
            self._workers.append(_Worker(self._context, self.function))

    def _replace(self, worker: _Worker) -> None:
        worker.kill()
        self._workers.remove(worker)
        self._workers.append(_Worker(self._context, self.function))
        self.replaced += 1

    def map(self, calls: Sequence[tuple]) -> list[Any]:
        """Results in call order; a call that failed gives a CallFailure instead of its result."""
        self._ensure_workers()
        results: list[Any] = [None] * len(calls)
        queue = deque(range(len(calls)))
        busy: dict[Connection, _Worker] = {}

        def dispatch(worker: _Worker) -> None:
            task = queue.popleft()
            worker.task = task
            worker.deadline = time.monotonic() + self.timeout_s + (self.startup_allowance_s if worker.fresh else 0.0)
            worker.connection.send((task, calls[task]))
            busy[worker.connection] = worker

        for worker in list(self._workers):
            if queue:
                dispatch(worker)
        while busy:
            now = time.monotonic()
            next_deadline = min(w.deadline for w in busy.values())
            ready = wait(list(busy), timeout=max(0.0, next_deadline - now))
            for connection in ready:
                worker = busy.pop(connection)
                try:
                    task, ok, value = connection.recv()
                    results[task] = value if ok else CallFailure("error", value)
                    worker.fresh = False
                except (EOFError, OSError):
                    results[worker.task] = CallFailure(CRASHED, f"exit code {worker.process.exitcode}")
                    self._replace(worker)
                    worker = self._workers[-1]
                if queue:
                    dispatch(worker)
            now = time.monotonic()
            for connection, worker in list(busy.items()):
                if now >= worker.deadline:
                    busy.pop(connection)
                    results[worker.task] = CallFailure(TIMEOUT, f"over {self.timeout_s:.0f} s")
                    self._replace(worker)
                    if queue:
                        dispatch(self._workers[-1])
        return results
