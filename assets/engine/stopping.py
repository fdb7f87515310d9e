"""Ctrl-C and SIGTERM stop the engine step's asynchronous work promptly, every time.

Dagster turns SIGINT and SIGTERM into an exception raised wherever the step's main thread happens to be. Inside
an asyncio event loop that can be one of the loop's callbacks, where asyncio logs any exception but
KeyboardInterrupt and SystemExit and carries on: the signal is lost and the run goes on (1 time in 5 in a trial
of `make run`). Here the event loop takes the two signals itself, cancels the work, lets every request and
connection close, and then raises KeyboardInterrupt, which Dagster reports as the step interrupted.
"""

from __future__ import annotations

import asyncio
import signal
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def run_until_stopped(work: Coroutine[Any, Any, T]) -> T:
    """`asyncio.run(work)`, except that SIGINT or SIGTERM cancels `work` and raises KeyboardInterrupt naming the
    signal once it is wound down. The handlers in place before are put back afterwards. Off the main thread,
    where no signal handler can be set, this is plain `asyncio.run`."""
    if threading.current_thread() is not threading.main_thread():
        return asyncio.run(work)
    received: list[int] = []

    async def guarded() -> T:
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        assert task is not None

        def stop(signum: int) -> None:
            received.append(signum)
            task.cancel()

        previous = {signum: signal.getsignal(signum) for signum in STOP_SIGNALS}
        for signum in STOP_SIGNALS:
            loop.add_signal_handler(signum, stop, signum)
        try:
            return await work
        finally:
            for signum, handler in previous.items():
                loop.remove_signal_handler(signum)
                if handler is not None:   # None: set outside Python, nothing to put back
                    signal.signal(signum, handler)

    try:
        result = asyncio.run(guarded())
    except asyncio.CancelledError:
        if not received:
            raise
        result = None
    if received:
        raise KeyboardInterrupt(f"stopped by {signal.Signals(received[0]).name}")
    return result  # type: ignore[return-value]
