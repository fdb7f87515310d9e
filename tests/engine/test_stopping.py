"""SIGINT and SIGTERM during the engine step's asynchronous work: the work is cancelled and wound down, the signal
comes out as KeyboardInterrupt naming it, and the handlers in place before are back."""

import asyncio
import os
import signal

import pytest

from assets.engine.stopping import run_until_stopped

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_cancels_the_work_and_is_raised_after_it_wound_down(signum):
    wound_down = []

    async def work():
        asyncio.get_running_loop().call_later(0.05, os.kill, os.getpid(), signum)
        try:
            await asyncio.sleep(3600)
        finally:
            await asyncio.sleep(0)   # closing connections may await
            wound_down.append(True)

    def mine(*_):
        raise AssertionError("the handler in place before must not see the signal")

    before = signal.signal(signum, mine)
    try:
        with pytest.raises(KeyboardInterrupt, match=f"stopped by {signal.Signals(signum).name}"):
            run_until_stopped(work())
        assert wound_down == [True]
        assert signal.getsignal(signum) is mine
    finally:
        signal.signal(signum, before)


def test_a_signal_is_not_lost_when_the_work_swallows_the_cancellation():
    async def stubborn():
        asyncio.get_running_loop().call_later(0.05, os.kill, os.getpid(), signal.SIGINT)
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            return "carried on"

    with pytest.raises(KeyboardInterrupt, match="stopped by SIGINT"):
        run_until_stopped(stubborn())


def test_without_a_signal_it_is_asyncio_run():
    async def work():
        await asyncio.sleep(0)
        return 42

    assert run_until_stopped(work()) == 42
    previous = signal.getsignal(signal.SIGINT)
    run_until_stopped(work())
    assert signal.getsignal(signal.SIGINT) is previous
