"""Runs that died leave nothing held.

A run killed with SIGKILL, by the OOM killer or by a machine restart never reports its end: Dagster keeps it as
started, the engine pool's slot its engine step claimed stays claimed (so the next run waits on "Step blocked by
limit for pool engine" for good), and its `engine_deployments` row says `running` forever. Dagster's run
monitoring cannot see it: the default run launcher has no health check, and `dagster asset materialize` runs in
its own process without a launcher at all.

So the engine step tags its run with who runs it (`assets.engine.liveness`), and recovery, Dagster's own way:
- a run whose tagged process is dead is reported failed to the instance (`report_run_failed`, the event a run
  that ends normally writes), with the reason;
- the concurrency slots of every finished run that still holds some are freed (what the daemon's run monitoring
  does after `free_slots_after_run_end_seconds`; `make run` has no daemon);
- every deployment row still `running` whose run is no longer in progress is marked `failed` with the reason.

It runs as a sensor under the daemon (`dagster dev`, a deployment) and as `yardstick recover`, which `make run`
calls before it materializes anything.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import dagster as dg

from assets.engine.liveness import WORKER_TAG, Worker
from assets.leaderboard.history import record_failed_run, run_trigger
from resources.warehouse import WarehouseResource
from warehouse import utc_now

# A run in these has (or is given) a process that works on it; in the others it has none, or it ended.
WORKING = [dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.CANCELING]


@dataclass(frozen=True)
class Recovery:
    run_id: str
    what: str   # what was done, for the log


def _failure_message(instance: dg.DagsterInstance, run_id: str) -> str | None:
    """Why a run failed: its first failed step and that step's error (what the engine's log said, say), else the
    run's own failure message."""
    steps = instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.STEP_FAILURE, limit=1).records
    event = steps[0].event_log_entry.dagster_event if steps else None
    error = getattr(getattr(event, "event_specific_data", None), "error", None) if event else None
    if event is not None and error is not None:
        while error.cause is not None:   # Dagster wraps the step's own error: what it says is innermost
            error = error.cause
        return f"step {event.step_key} failed: {error.message.strip()}"[:4000]
    records = instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.RUN_FAILURE, limit=1,
                                           ascending=False).records
    if not records or records[0].event_log_entry.dagster_event is None:
        return None
    return records[0].event_log_entry.dagster_event.message


# How many of the latest failed runs recovery looks at for ones evaluation_runs does not hold yet.
FAILED_RUNS_SWEPT = 50


def record_failed_runs(instance: dg.DagsterInstance, warehouse: WarehouseResource,
                       since: datetime | None = None) -> list[Recovery]:
    """Record in evaluation_runs, with why, each failed run of a variant that is not there yet: however it was
    started (`make run`, `yardstick materialize`, `dagster asset materialize`, the UI, the schedule), with or without
    the daemon whose `failed_runs` sensor records them as they fail."""
    records = instance.get_run_records(dg.RunsFilter(statuses=[dg.DagsterRunStatus.FAILURE], created_after=since),
                                       limit=FAILED_RUNS_SWEPT)
    failed = [record for record in records if record.dagster_run.tags.get("dagster/partition")]
    if not failed or not warehouse.exists():
        return []
    done = []
    with warehouse.connect() as connection:
        for record in failed:
            run, variant = record.dagster_run, record.dagster_run.tags["dagster/partition"]
            message = _failure_message(instance, run.run_id) or "the run failed"
            # When it failed, not when it is recorded: a run published since stays the later one.
            ended = (datetime.fromtimestamp(record.end_time, UTC).replace(tzinfo=None) if record.end_time
                     else utc_now())
            if record_failed_run(connection, run.run_id, variant, run_trigger(run.tags), ended, message):
                done.append(Recovery(run.run_id, f"failed run {run.run_id} of {variant} recorded: {message}"))
    return done


def fail_dead_runs(instance: dg.DagsterInstance) -> list[Recovery]:
    """Report failed every in-progress run whose tagged process is dead on this host."""
    done = []
    for record in instance.get_run_records(dg.RunsFilter(statuses=WORKING)):
        run = record.dagster_run
        worker = Worker.from_tag(run.tags.get(WORKER_TAG, ""))
        if worker is None:
            continue
        state, why = worker.state()
        if state != "dead":
            continue
        instance.report_run_failed(run, f"The run's process died: {why}. Marked failed by yardstick's recovery, "
                                        "which frees what the run held; rerun it to resume where it stopped.")
        done.append(Recovery(run.run_id, f"run {run.run_id} marked failed: {why}"))
    return done


def free_finished_runs_slots(instance: dg.DagsterInstance) -> list[Recovery]:
    """Free the concurrency slots (and pending claims) still held by runs that are no longer in progress."""
    storage = instance.event_log_storage
    if not storage.supports_global_concurrency_limits:
        return []
    holding = storage.get_concurrency_run_ids()
    if not holding:
        return []
    in_progress = {record.dagster_run.run_id for record in instance.get_run_records(
        dg.RunsFilter(run_ids=list(holding), statuses=WORKING))}
    done = []
    for run_id in sorted(holding - in_progress):
        storage.free_concurrency_slots_for_run(run_id)
        done.append(Recovery(run_id, f"run {run_id}: freed the concurrency slots it still held"))
    return done


def fail_orphaned_deployments(instance: dg.DagsterInstance, warehouse: WarehouseResource) -> list[Recovery]:
    """Mark `failed`, with the reason, every deployment row still `running` whose run is not in progress."""
    if not warehouse.exists():
        return []
    running = warehouse.query("SELECT variant, run_id FROM engine_deployments WHERE status = 'running'")
    done = []
    for variant, run_id in running.itertuples(index=False):
        run = instance.get_run_by_id(run_id)
        if run is not None and run.status in WORKING:
            continue
        if run is None:
            reason = "its run is not in this Dagster instance (deleted, or another DAGSTER_HOME)"
        else:
            reason = _failure_message(instance, run_id) or f"its run ended {run.status.value}"
        with warehouse.connect() as connection:
            connection.execute(
                "UPDATE engine_deployments SET status = 'failed', stopped_at = coalesce(stopped_at, now()), "
                "failure = ? WHERE variant = ? AND run_id = ? AND status = 'running'", [reason, variant, run_id])
        done.append(Recovery(run_id, f"deployment of {variant} in run {run_id} marked failed: {reason}"))
    return done


def recover(instance: dg.DagsterInstance, warehouse: WarehouseResource) -> list[Recovery]:
    """Everything dead runs left held, freed; what was done, one line each."""
    return (fail_dead_runs(instance) + free_finished_runs_slots(instance)
            + fail_orphaned_deployments(instance, warehouse) + record_failed_runs(instance, warehouse))


@dg.sensor(minimum_interval_seconds=30, default_status=dg.DefaultSensorStatus.RUNNING,
           description="Frees what runs that died (SIGKILL, out of memory, a restart) still hold: marks them failed, "
                       "frees their engine-pool slot and marks their engine deployment failed.")
def dead_runs(context: dg.SensorEvaluationContext, warehouse: WarehouseResource) -> dg.SkipReason:
    done = recover(context.instance, warehouse)
    for recovery in done:
        context.log.warning(recovery.what)
    return dg.SkipReason("; ".join(r.what for r in done) if done else "no dead run holds anything")


@dg.run_failure_sensor(default_status=dg.DefaultSensorStatus.RUNNING,
                       description="Records every failed run of a variant (a nightly run included) in evaluation_runs "
                                   "with its failure, so a night that failed shows in `yardstick history`.")
def failed_runs(context: dg.RunFailureSensorContext, warehouse: WarehouseResource) -> None:
    run = context.dagster_run
    variant = run.tags.get("dagster/partition")
    if not variant or not warehouse.exists():
        return
    message = _failure_message(context.instance, run.run_id) or context.failure_event.message or "the run failed"
    with warehouse.connect() as connection:
        record_failed_run(connection, run.run_id, variant, run_trigger(run.tags), utc_now(), message)
    context.log.info(f"recorded failed run {run.run_id} of {variant}")
