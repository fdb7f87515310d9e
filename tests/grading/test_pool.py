"""The bounded grading pool (assets/grading/pool.py): a hung worker is replaced and a hung call costs its bound.

How long the bound takes on the clock is `timing`, judged against the bound the pool itself promises (its
timeout, and the start-up allowance of a worker that replaced a killed one).
"""

import time

import pytest

from assets.grading.pool import TIMEOUT, BoundedPool, CallFailure
from tests.instruments.pool_functions import echo_hang_or_crash


@pytest.mark.unit
def test_a_hung_worker_is_replaced_and_the_rest_of_the_batch_is_done():
    pool = BoundedPool(echo_hang_or_crash, workers=2, timeout_s=1.0, startup_allowance_s=5.0)
    try:
        pool.map([("warm",), ("up",)])
        results = pool.map([("a",), ("hang",), ("b",), ("crash",), ("c",), ("raise",), ("d",)])
    finally:
        pool.close()
    assert results[0::2] == ["a", "b", "c", "d"]
    assert results[1] == CallFailure(TIMEOUT, "over 1 s")
    assert isinstance(results[3], CallFailure) and results[3].kind == "crashed"
    assert isinstance(results[5], CallFailure) and "ValueError" in results[5].detail
    assert pool.replaced == 2


@pytest.mark.timing
def test_a_hung_call_costs_its_bound_not_its_hang():
    """The hung call would sleep 600 s; the batch takes at most what the pool promises: the hung call's bound,
    then the next call's on the worker that replaced the killed one, start-up allowance included."""
    pool = BoundedPool(echo_hang_or_crash, workers=1, timeout_s=1.0, startup_allowance_s=5.0)
    try:
        pool.map([("warm",)])
        started = time.monotonic()
        results = pool.map([("hang",), ("after",)])
        elapsed = time.monotonic() - started
    finally:
        pool.close()
    assert results == [CallFailure(TIMEOUT, "over 1 s"), "after"]
    assert elapsed < 2 * pool.timeout_s + pool.startup_allowance_s, elapsed
