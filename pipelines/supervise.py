"""`yardstick materialize VARIANT...`: `dagster asset materialize` of every asset for each variant, as many at once
as the host has engine devices, stopped promptly and cleanly by Ctrl-C, SIGTERM or a hang-up (SIGHUP) whatever the
runs are doing, and leaving nothing held.

The `engine` pool's limit is set to the host's device count first (one slot per GPU, or per CPU engine slot), so
Dagster queues engine steps beyond it; a step inside it claims the devices its variant needs (resources.devices)
and waits there while they are taken.

Dagster turns the two signals into an interruption of the running step, which winds down (the engine is stopped,
its deployment marked failed, its devices freed) and fails the run. One state does not answer: a run whose engine
step waits for the `engine` pool (its slots are all taken) sleeps in Dagster's in-process executor, which never
looks at signals there. So each run works in a child process; a signal here is passed on to every child as
SIGTERM, no variant is started after it, and a child is killed when it is waiting for the pool (it holds nothing
yet), or when it has not wound down within `STOP_GRACE_S`. Recovery then frees whatever a killed run held
(pipelines.recovery).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg

from assets.engine.defs import ENGINE_POOL
from assets.engine.devices import Host
from assets.leaderboard.history import record_not_run
from assets.matrix import Matrix
from pipelines.recovery import WORKING, record_failed_runs, recover
from resources.warehouse import WarehouseResource
from warehouse import utc_now

# Longer than an interrupted engine step needs to stop its engine (vLLM is given 30 s after SIGTERM).
STOP_GRACE_S = 60.0
POLL_S = 0.2


@dataclass
class _Run:
    """One variant's `dagster asset materialize` child."""

    variant: str
    child: subprocess.Popen
    started: float     # time.time() at its start: its Dagster run is made after
    killed: str = ""   # why it was killed, if it was


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


POOL_SIZING_TRIES = 5


def size_engine_pool(instance: dg.DagsterInstance, host: Host) -> None:
    """Set the `engine` pool's limit to the host's device count, so Dagster runs as many engine steps at once as
    the host could hold if each needed one device (a step that needs more waits for its devices inside)."""
    slots = len(host.devices)
    for attempt in range(POOL_SIZING_TRIES):
        try:
            instance.event_log_storage.set_concurrency_slots(ENGINE_POOL, slots)
            return
        except Exception:   # noqa: BLE001 - variants started at once race to create the pool's row (PostgreSQL)
            if instance.event_log_storage.get_concurrency_info(ENGINE_POOL).slot_count == slots:
                return   # another process set the same limit
            if attempt == POOL_SIZING_TRIES - 1:
                raise
            time.sleep(0.2 * (attempt + 1))


def _start(variant: str, selection: str) -> _Run:
    command = [str(Path(sys.executable).parent / "dagster"), "asset", "materialize", "-m", "pipelines.definitions",
               "--select", selection, "--partition", variant]
    print(f"== materializing {'every asset' if selection == '*' else selection} for variant {variant}", flush=True)
    # A session of its own: a Ctrl-C at the terminal reaches the child once, from here, not twice.
    return _Run(variant, subprocess.Popen(command, start_new_session=True), time.time())


def _stop_stragglers(running: list[_Run], stopping_since: float) -> None:
    """After a signal: kill a child that has not stopped within the grace time, or that waits for the engine pool."""
    for run in running:
        if run.killed:
            continue
        if time.monotonic() - stopping_since > STOP_GRACE_S:
            run.killed = f"it did not stop within {STOP_GRACE_S:.0f} s of SIGTERM and was killed"
        elif os.environ.get("DAGSTER_HOME"):
            with dg.DagsterInstance.get() as instance:
                if _waiting_for_pool(instance, run.variant, run.started):
                    run.killed = ("it was waiting for the engine pool, where Dagster does not look at signals, "
                                  "and was killed (it held nothing yet)")
        if run.killed:
            print(f"yardstick: the run of {run.variant} {run.killed}", file=sys.stderr)
            run.child.kill()


# What stops a run tree: Ctrl-C, SIGTERM, and the terminal closing (SIGHUP), which reaches this process only: each
# child runs in its own session, so without this it and its engine would go on under init, finish and publish.
STOPPING_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def _leave_the_terminal() -> None:
    """After a hang-up, what would be printed to the terminal that is gone goes nowhere, rather than failing."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    for stream in (sys.stdout, sys.stderr):
        try:
            if os.isatty(stream.fileno()):
                os.dup2(devnull, stream.fileno())
        except (OSError, ValueError):
            continue
    os.close(devnull)


def route(matrix: Matrix, variants: list[str], warehouse: WarehouseResource) -> list[str]:
    """Say where each variant runs: a variant served by its fallback engine says so and why; one that nothing on this
    host can serve is reported as not run, with why, recorded in evaluation_runs, and left out. Returns the others."""
    runnable = []
    for name in variants:
        variant = matrix.variant(name)
        if variant.not_runnable:
            print(f"yardstick: variant {name} not run: {variant.not_runnable}", file=sys.stderr, flush=True)
            with warehouse.connect() as connection:
                record_not_run(connection, f"not-run-{uuid.uuid4().hex[:12]}", name, "manual", utc_now(),
                               variant.not_runnable)
            continue
        print(f"== {name}: {variant.engine_note or f'served by {variant.engine.kind}'}", flush=True)
        runnable.append(name)
    return runnable


def materialize(variants: list[str], warehouse: WarehouseResource, host: Host, selection: str = "*",
                jobs: int | None = None) -> int:
    """Run each variant's materialization, up to `jobs` (default: the host's device count) at once; returns 0,
    the exit code of the first variant that failed (each failed one named), or 128 + the signal's number when a
    signal stopped them."""
    if os.environ.get("DAGSTER_HOME"):
        with dg.DagsterInstance.get() as instance:
            size_engine_pool(instance, host)
    jobs = max(1, jobs or len(host.devices))
    if len(variants) > 1:
        print(f"== {len(variants)} variants, up to {jobs} at once (this host has {host.describe()})", flush=True)
    if min(jobs, len(variants)) > len(host.devices):
        print(f"yardstick: warning: {min(jobs, len(variants))} runs at once on {len(host.devices)} engine "
              f"{host.unit}(s): a run waiting for the engine pool spins on a core in Dagster 1.13's in-process "
              "executor (its wait between slot checks comes out as 0 s), taking CPU from the engines that run; "
              "on a CPU host keep --jobs at the engine slots", file=sys.stderr, flush=True)
    queued, running, finished = list(variants), [], {}
    received: list[int] = []

    def stop(signum: int, _frame) -> None:
        if signum == signal.SIGHUP:
            _leave_the_terminal()
        if not received:
            for run in running:
                if run.child.poll() is None:
                    run.child.send_signal(signal.SIGTERM)
        received.append(signum)

    previous = {signum: signal.signal(signum, stop) for signum in STOPPING_SIGNALS}
    try:
        stopping_since = None
        while running or (queued and not received):
            while queued and not received and len(running) < jobs:
                running.append(_start(queued.pop(0), selection))
            time.sleep(POLL_S)
            for run in [run for run in running if run.child.poll() is not None]:
                running.remove(run)
                finished[run.variant] = run
            if received:
                stopping_since = stopping_since or time.monotonic()
                _stop_stragglers(running, stopping_since)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    if received:
        name = signal.Signals(received[0]).name
        if os.environ.get("DAGSTER_HOME"):
            with dg.DagsterInstance.get() as instance:
                for run in finished.values():
                    if run.killed:
                        _fail_killed_runs(instance, run.variant, run.started, f"stopped by {name}: {run.killed}")
                for recovery in recover(instance, warehouse):
                    print(f"yardstick recover: {recovery.what}", file=sys.stderr)
        print(f"yardstick: stopped by {name}; rerun to resume where it stopped", file=sys.stderr)
        return 128 + received[0]
    failed = [run for run in finished.values() if run.child.returncode]
    if failed and os.environ.get("DAGSTER_HOME"):
        with dg.DagsterInstance.get() as instance:
            record_failed_runs(instance, warehouse, since=_datetime(min(run.started for run in failed)))
    for run in failed:
        print(f"yardstick: variant {run.variant} failed (exit code {run.child.returncode}); its log is above",
              file=sys.stderr)
    return failed[0].child.returncode if failed else 0
