"""Runs that die leave nothing held: a `dagster asset materialize` killed with SIGKILL during generation holds
the engine pool's slot and leaves its deployment `running` until recovery frees both, after which the next run
resumes exactly where it stopped; the sensors and `yardstick recover` record dead and failed runs
(pipelines/recovery.py)."""

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import duckdb
import pandas as pd
import pytest

from assets.engine.liveness import WORKER_TAG, Worker, this_worker
from tests.conftest import ROOT, STATE, engine_processes
from tests.pipelines.runs import BIN, ITEMS, VARIANT, K, generated_samples, run_environment


def _materialize(env: dict[str, str], log: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [str(BIN / "dagster"), "asset", "materialize", "-m", "pipelines.definitions", "--select", "*",
         "--partition", VARIANT], cwd=ROOT, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT,
        start_new_session=True)


@pytest.mark.integration
def test_a_killed_run_frees_its_slot_and_the_next_resumes_exactly(tmp_path, tiny_model):
    env = run_environment(tmp_path)
    warehouse = tmp_path / "warehouse.duckdb"
    others = set(engine_processes(str(STATE)))   # engines serving from the test state folder before this run
    first = _materialize(env, tmp_path / "first.log")
    deadline = time.monotonic() + 600
    while generated_samples(warehouse) < 4:
        assert first.poll() is None, (tmp_path / "first.log").read_text()[-3000:]
        assert time.monotonic() < deadline, "no sample generated in 10 minutes"
        time.sleep(0.5)
    os.kill(first.pid, signal.SIGKILL)   # the run's own process only, as the OOM killer would
    first.wait()
    kept = generated_samples(warehouse)
    assert 0 < kept < ITEMS * K
    for _ in range(60):   # the engine exits with its parent (PR_SET_PDEATHSIG)
        if not set(engine_processes(str(STATE))) - others:
            break
        time.sleep(0.5)
    assert not set(engine_processes(str(STATE))) - others

    with dg.DagsterInstance.from_config(env["DAGSTER_HOME"]) as instance:
        (dead,) = instance.get_runs()
        assert dead.status == dg.DagsterRunStatus.STARTED
        assert Worker.from_tag(dead.tags[WORKER_TAG]).host == socket.gethostname()
        assert dead.run_id in instance.event_log_storage.get_concurrency_run_ids()   # the slot it holds

    recovered = subprocess.run([str(BIN / "yardstick"), "recover"], env=env, capture_output=True, text=True,
                               timeout=120, check=True)
    assert f"run {dead.run_id} marked failed: its process {first.pid} no longer exists" in recovered.stderr
    assert f"run {dead.run_id}: freed the concurrency slots" in recovered.stderr
    with dg.DagsterInstance.from_config(env["DAGSTER_HOME"]) as instance:
        assert instance.get_run_by_id(dead.run_id).status == dg.DagsterRunStatus.FAILURE
        assert dead.run_id not in instance.event_log_storage.get_concurrency_run_ids()
    with duckdb.connect(str(warehouse), read_only=True) as connection:
        status, failure = connection.execute(
            "SELECT status, failure FROM engine_deployments WHERE run_id = ?", [dead.run_id]).fetchone()
    assert status == "failed" and "process" in failure and "no longer exists" in failure
    again = subprocess.run([str(BIN / "yardstick"), "recover"], env=env, capture_output=True, text=True,
                           timeout=120, check=True)
    assert again.stderr == ""   # nothing left to free

    second = _materialize(env, tmp_path / "second.log")
    assert second.wait(timeout=900) == 0, (tmp_path / "second.log").read_text()[-3000:]
    with duckdb.connect(str(warehouse), read_only=True) as connection:
        rows, distinct, by_first = connection.execute(
            "SELECT count(*), count(DISTINCT (benchmark, item_id, sample_index)), "
            "count(*) FILTER (WHERE run_id = ?) FROM benchmark_generations", [dead.run_id]).fetchone()
        statuses = dict(connection.execute("SELECT run_id, status FROM engine_deployments").fetchall())
    assert rows == distinct == ITEMS * K
    assert by_first == kept   # what the killed run finished is kept, and only the rest was generated
    assert sorted(statuses.values()) == ["failed", "stopped"]


@dg.op
def _nothing() -> None:
    pass


@dg.job
def _a_job() -> None:
    _nothing()


@pytest.mark.unit
def test_the_sensor_reports_a_dead_run_and_frees_what_it_held(tmp_path):
    """The `dead_runs` sensor under the daemon: a started run whose tagged process is gone is failed, its slot
    freed and its deployment marked failed; nothing else is touched."""
    from pipelines.recovery import dead_runs
    from resources.warehouse import WarehouseResource

    warehouse = WarehouseResource(path=str(tmp_path / "warehouse.duckdb"))
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    me = this_worker()
    gone = Worker(me.host, me.boot, child.pid, me.started)   # the start time of a process that is no more
    with dg.instance_for_test(temp_dir=str(tmp_path)) as instance:
        dead, alive = (instance.create_run_for_job(_a_job, status=dg.DagsterRunStatus.STARTED, tags={WORKER_TAG: tag})
                       for tag in (gone.tag(), me.tag()))
        instance.event_log_storage.set_concurrency_slots("engine", 1)
        instance.event_log_storage.claim_concurrency_slot("engine", dead.run_id, "engine_step")
        warehouse.query("INSERT INTO engine_deployments (variant, run_id, engine, base_url, served_model, started_at, "
                        "status) VALUES ('v', ?, 'vllm', 'http://h/v1', 'm', now(), 'running')", [dead.run_id])
        context = dg.build_sensor_context(instance=instance, resources={"warehouse": warehouse})
        result = dead_runs(context)
        assert f"run {dead.run_id} marked failed" in result.skip_message
        assert instance.get_run_by_id(dead.run_id).status == dg.DagsterRunStatus.FAILURE
        assert instance.get_run_by_id(alive.run_id).status == dg.DagsterRunStatus.STARTED
        assert not instance.event_log_storage.get_concurrency_info("engine").claimed_slots
        assert dead_runs(context).skip_message == "no dead run holds anything"
    status, failure = warehouse.query("SELECT status, failure FROM engine_deployments").iloc[0]
    assert status == "failed" and "The run's process died" in failure


@pytest.mark.unit
def test_a_failed_run_is_recorded_by_the_sensor(tmp_path):
    """The `failed_runs` sensor: a failed run of a variant (a nightly one here) lands in evaluation_runs with its
    failure, so the night shows in the variant's history; a run with a recorded failed check keeps that record."""
    from pipelines.recovery import failed_runs
    from resources.warehouse import WarehouseResource

    warehouse = WarehouseResource(path=str(tmp_path / "warehouse.duckdb"))
    warehouse.query("SELECT 1")
    with dg.instance_for_test(temp_dir=str(tmp_path)) as instance:
        run = instance.create_run_for_job(_a_job, status=dg.DagsterRunStatus.STARTED, tags={
            "dagster/partition": "tiny-test", "dagster/schedule_name": "nightly_eval"})
        event = instance.report_run_failed(run, "engine_step failed: the retry budget is spent")
        context = dg.build_run_status_sensor_context(
            sensor_name="failed_runs", dagster_instance=instance, dagster_run=instance.get_run_by_id(run.run_id),
            dagster_event=event, resources={"warehouse": warehouse}).for_run_failure()
        failed_runs(context)
    recorded = warehouse.query("SELECT run_id, variant, status, run_trigger, evidence FROM evaluation_runs")
    assert recorded[["run_id", "variant", "status", "run_trigger"]].values.tolist() == [
        [run.run_id, "tiny-test", "failed_run", "schedule nightly_eval"]]
    assert "retry budget is spent" in recorded["evidence"].iloc[0]


@pytest.mark.unit
def test_recovery_records_the_failed_runs_no_sensor_saw_once_each(tmp_path):
    """A run that failed with no daemon to run the `failed_runs` sensor (a bare `dagster asset materialize`) is
    recorded by `yardstick recover`, once; a run of no variant is not."""
    from pipelines.recovery import record_failed_runs
    from resources.warehouse import WarehouseResource

    warehouse = WarehouseResource(path=str(tmp_path / "warehouse.duckdb"))
    warehouse.query("SELECT 1")
    with dg.instance_for_test(temp_dir=str(tmp_path)) as instance:
        failed = instance.create_run_for_job(_a_job, status=dg.DagsterRunStatus.STARTED,
                                             tags={"dagster/partition": "tiny-test"})
        instance.report_run_failed(failed, "engine_step failed: vllm exited with code 1 before it was ready")
        other = instance.create_run_for_job(_a_job, status=dg.DagsterRunStatus.STARTED)
        instance.report_run_failed(other, "not a variant's run")
        (ended,) = [record.end_time for record in instance.get_run_records(dg.RunsFilter(run_ids=[failed.run_id]))]
        time.sleep(1.5)
        first = record_failed_runs(instance, warehouse)
        again = record_failed_runs(instance, warehouse)
    assert [recovery.run_id for recovery in first] == [failed.run_id] and again == []
    recorded = warehouse.query("SELECT run_id, variant, status, run_trigger, evidence, evaluated_at "
                               "FROM evaluation_runs")
    assert recorded[["run_id", "variant", "status", "run_trigger"]].values.tolist() == [
        [failed.run_id, "tiny-test", "failed_run", "manual"]]
    assert "exited with code 1 before it was ready" in recorded["evidence"].iloc[0]
    # Dated when it failed, not when it was recorded: a run published in between stays the later one.
    assert abs((recorded["evaluated_at"].iloc[0] - pd.Timestamp(ended, unit="s")).total_seconds()) < 1
