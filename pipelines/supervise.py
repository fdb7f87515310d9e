"""`yardstick materialize VARIANT`: `dagster asset materialize` of every asset for one variant, stopped promptly and
cleanly by Ctrl-C or SIGTERM whatever the run is doing, and leaving nothing held.

Dagster turns the two signals into an interruption of the running step, which winds down (the engine is stopped,
its deployment marked failed) and fails the run. One state does not answer: a run whose engine step waits for the
`engine` pool (another run holds it) sleeps in Dagster's in-process executor, which never looks at signals there.
So the run works in a child process; a signal here is passed on to it as SIGTERM, and the child is killed when it
is waiting for the pool (it holds nothing yet), or when it has not wound down within `STOP_GRACE_S`. Recovery
then frees whatever the killed run held (pipelines.recovery).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg

from assets.engine.defs import ENGINE_POOL
from pipelines.recovery import WORKING, recover
from resources.warehouse import WarehouseResource

# Longer than an interrupted engine step needs to stop its engine (vLLM is given 30 s after SIGTERM).
STOP_GRACE_S = 60.0
POLL_S = 0.2


def _our_runs(instance: dg.DagsterInstance, variant: str, since: float) -> list[dg.DagsterRun]:
    """This variant's runs made since `since` (the child's) that are still working."""
    return [record.dagster_run for record in instance.get_run_records(dg.RunsFilter(
        statuses=WORKING, tags={"dagster/partition": variant}, created_after=_datetime(since)))]


def _waiting_for_pool(instance: dg.DagsterInstance, variant: str, since: float) -> bool:
    """Whether this variant's run, started after `since`, has a step waiting for the engine pool."""
    runs = _our_runs(instance, variant, since)
    if not runs:
        return False
    info = instance.event_log_storage.get_concurrency_info(ENGINE_POOL)
    return any(run.run_id in info.pending_run_ids for run in runs)


def _fail_killed_runs(instance: dg.DagsterInstance, variant: str, since: float, why: str) -> None:
    """The child was killed: its run cannot say so itself. Report it failed and free what it held or waited for."""
    for run in _our_runs(instance, variant, since):
        instance.report_run_failed(run, why)
        instance.event_log_storage.free_concurrency_slots_for_run(run.run_id)
        print(f"yardstick: run {run.run_id} marked failed: {why}", file=sys.stderr)


def _datetime(timestamp: float) -> datetime:
    return datetime.fromtimestamp(timestamp, UTC)


def materialize(variant: str, warehouse: WarehouseResource, selection: str = "*") -> int:
    """Run the materialization; returns its exit code, or 128 + the signal's number when a signal stopped it."""
    command = [str(Path(sys.executable).parent / "dagster"), "asset", "materialize", "-m", "pipelines.definitions",
               "--select", selection, "--partition", variant]
    received: list[int] = []

    def stop(signum: int, _frame) -> None:
        if not received and child.poll() is None:
            child.send_signal(signal.SIGTERM)
        received.append(signum)

    started = time.time()
    # A session of its own: a Ctrl-C at the terminal reaches the child once, from here, not twice.
    child = subprocess.Popen(command, start_new_session=True)
    previous = {signum: signal.signal(signum, stop) for signum in (signal.SIGINT, signal.SIGTERM)}
    try:
        stopping_since, killed = None, ""
        while child.poll() is None:
            time.sleep(POLL_S)
            if not received:
                continue
            stopping_since = stopping_since or time.monotonic()
            if time.monotonic() - stopping_since > STOP_GRACE_S:
                killed = f"it did not stop within {STOP_GRACE_S:.0f} s of SIGTERM and was killed"
                print(f"yardstick: the run {killed}", file=sys.stderr)
                child.kill()
            elif os.environ.get("DAGSTER_HOME"):
                with dg.DagsterInstance.get() as instance:
                    if _waiting_for_pool(instance, variant, started):
                        killed = ("it was waiting for the engine pool, where Dagster does not look at signals, "
                                  "and was killed (it held nothing yet)")
                        print(f"yardstick: the run {killed}", file=sys.stderr)
                        child.kill()
        code = child.wait()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    if received:
        name = signal.Signals(received[0]).name
        if os.environ.get("DAGSTER_HOME"):
            with dg.DagsterInstance.get() as instance:
                if killed:
                    _fail_killed_runs(instance, variant, started, f"stopped by {name}: {killed}")
                for recovery in recover(instance, warehouse):
                    print(f"yardstick recover: {recovery.what}", file=sys.stderr)
        print(f"yardstick: stopped by {name}; rerun to resume where it stopped", file=sys.stderr)
        return 128 + received[0]
    return code
