"""Runs that die leave nothing held: a `dagster asset materialize` killed with SIGKILL during generation holds
the engine pool's slot and leaves its deployment `running` until recovery frees both, after which the next run
resumes exactly where it stopped. SIGINT and SIGTERM stop a run promptly and cleanly, also one that waits for the
engine pool. The process-liveness rules recovery relies on are unit tests."""

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
import yaml

from assets.engine.liveness import WORKER_TAG, Worker, this_worker
from assets.processes import read_stat
from tests.conftest import ROOT, STATE, engine_processes

BIN = Path(sys.executable).parent
VARIANT = "tiny-dies"
OTHER = "tiny-waits"   # a second variant, to wait for the engine pool while the first holds it
ITEMS, K = 40, 2


@pytest.mark.unit
def test_this_process_is_alive():
    state, why = this_worker().state()
    assert state == "alive", why
    assert Worker.from_tag(this_worker().tag()) == this_worker()


@pytest.mark.unit
def test_a_process_that_exited_is_dead():
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    worker = Worker.from_tag(this_worker().tag().rsplit(" ", 2)[0] + f" {child.pid} "
                             + str(read_stat(child.pid).start_ticks))
    assert worker.state()[0] == "alive"
    child.kill()
    child.wait()
    state, why = worker.state()
    assert state == "dead" and f"process {child.pid} no longer exists" in why


@pytest.mark.unit
def test_a_reused_pid_or_a_restart_is_dead_and_another_host_is_not_judged():
    me = this_worker()
    assert Worker(me.host, me.boot, me.pid, "1").state()[0] == "dead"     # same pid, another start: reused
    state, why = Worker(me.host, "another-boot", me.pid, me.started).state()
    assert state == "dead" and "restarted" in why
    assert Worker(me.host + "-elsewhere", me.boot, me.pid, me.started).state()[0] == "elsewhere"
    assert Worker.from_tag("not a worker tag") is None


def _environment(tmp_path: Path, items: int = ITEMS) -> dict[str, str]:
    test_matrix = yaml.safe_load((ROOT / "tests" / "matrix.test.yaml").read_text())
    defaults = {**test_matrix["defaults"], "benchmarks": {"arith": items},
                "protocol": {**test_matrix["defaults"]["protocol"], "k": K, "k_by_benchmark": {}}}
    variant = {"quantization": "none",
               "serving": {"concurrency": [1], "request_rates": [], "requests_per_level": 2}}
    matrix = {"defaults": defaults, "variants": {VARIANT: variant, OTHER: variant}}
    (tmp_path / "matrix.yaml").write_text(yaml.safe_dump(matrix))
    dagster_home = tmp_path / "dagster"
    dagster_home.mkdir()
    (dagster_home / "dagster.yaml").write_text((ROOT / "pipelines" / "dagster.yaml").read_text())
    # A host with one engine device, whatever this one has: the engine pool holds one step, and the second waits.
    return {**os.environ, "YARDSTICK_MATRIX": str(tmp_path / "matrix.yaml"), "YARDSTICK_HOME": str(STATE),
            "YARDSTICK_WAREHOUSE": str(tmp_path / "warehouse.duckdb"), "DAGSTER_HOME": str(dagster_home),
            "YARDSTICK_DEVICES": "0"}


def _materialize(env: dict[str, str], log: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [str(BIN / "dagster"), "asset", "materialize", "-m", "pipelines.definitions", "--select", "*",
         "--partition", VARIANT], cwd=ROOT, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT,
        start_new_session=True)


def _supervised(env: dict[str, str], variant: str, log: Path) -> subprocess.Popen:
    return subprocess.Popen([str(BIN / "yardstick"), "materialize", variant], cwd=ROOT, env=env,
                            stdout=log.open("wb"), stderr=subprocess.STDOUT)


def _generated(warehouse: Path, variant: str = VARIANT) -> int:
    try:
        with duckdb.connect(str(warehouse), read_only=True) as connection:
            return connection.execute("SELECT count(*) FROM benchmark_generations WHERE variant = ?",
                                      [variant]).fetchone()[0]
    except (duckdb.Error, OSError):   # not created yet, or being written this instant
        return 0


@pytest.mark.integration
def test_a_killed_run_frees_its_slot_and_the_next_resumes_exactly(tmp_path, tiny_model):
    env = _environment(tmp_path)
    warehouse = tmp_path / "warehouse.duckdb"
    others = set(engine_processes(str(STATE)))   # engines serving from the test state folder before this run
    first = _materialize(env, tmp_path / "first.log")
    deadline = time.monotonic() + 600
    while _generated(warehouse) < 4:
        assert first.poll() is None, (tmp_path / "first.log").read_text()[-3000:]
        assert time.monotonic() < deadline, "no sample generated in 10 minutes"
        time.sleep(0.5)
    os.kill(first.pid, signal.SIGKILL)   # the run's own process only, as the OOM killer would
    first.wait()
    kept = _generated(warehouse)
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


def _wait_for(condition, process: subprocess.Popen, log: Path, what: str, timeout_s: float = 600) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert process.poll() is None, log.read_text()[-3000:]
        assert time.monotonic() < deadline, f"{what}: not within {timeout_s:.0f} s"
        time.sleep(0.5)


@pytest.mark.integration
def test_signals_stop_a_run_cleanly_even_one_waiting_for_the_engine(tmp_path, tiny_model):
    """A holds the engine and generates; B waits for the engine pool (Dagster's in-process executor does not
    look at signals there). SIGTERM stops B at once, A still running; Ctrl-C stops A within its wind-down: the
    engine stopped, its deployment failed with the reason, both runs failed, no slot held."""
    env = _environment(tmp_path, items=200)   # A must still be generating when B waits and is stopped
    warehouse = tmp_path / "warehouse.duckdb"
    others = set(engine_processes(str(STATE)))
    logs = {name: tmp_path / f"{name}.log" for name in ("a", "b")}
    holder = _supervised(env, VARIANT, logs["a"])
    _wait_for(lambda: _generated(warehouse) >= 2, holder, logs["a"], "A generating")

    waiter = _supervised(env, OTHER, logs["b"])

    def b_waits() -> bool:
        with dg.DagsterInstance.from_config(env["DAGSTER_HOME"]) as instance:
            return bool(instance.event_log_storage.get_concurrency_info("engine").pending_run_ids)

    _wait_for(b_waits, waiter, logs["b"], "B waiting for the engine pool")
    waiter.send_signal(signal.SIGTERM)
    assert waiter.wait(timeout=60) == 128 + signal.SIGTERM, logs["b"].read_text()[-3000:]
    assert "waiting for the engine pool" in logs["b"].read_text()
    assert holder.poll() is None   # A goes on

    holder.send_signal(signal.SIGINT)
    assert holder.wait(timeout=120) == 128 + signal.SIGINT, logs["a"].read_text()[-3000:]
    assert "stopped by SIGINT; rerun to resume" in logs["a"].read_text()
    assert not set(engine_processes(str(STATE))) - others
    with dg.DagsterInstance.from_config(env["DAGSTER_HOME"]) as instance:
        runs = {run.tags["dagster/partition"]: run for run in instance.get_runs()}
        assert {name: run.status for name, run in runs.items()} == {
            VARIANT: dg.DagsterRunStatus.FAILURE, OTHER: dg.DagsterRunStatus.FAILURE}
        assert not instance.event_log_storage.get_concurrency_run_ids()
    with duckdb.connect(str(warehouse), read_only=True) as connection:
        deployments = connection.execute("SELECT variant, status, failure FROM engine_deployments").fetchall()
    assert len(deployments) == 1
    variant, status, failure = deployments[0]
    assert (variant, status) == (VARIANT, "failed") and "stopped by SIGTERM" in failure


@pytest.mark.integration
def test_a_hang_up_stops_the_whole_run_tree_like_ctrl_c(tmp_path, tiny_model):
    """The terminal closing (SIGHUP to `yardstick materialize`) stops the run it supervises, whose child runs in a
    session of its own: the engine stopped, the deployment and the run failed with the reason, no slot held."""
    env = _environment(tmp_path, items=200)
    warehouse = tmp_path / "warehouse.duckdb"
    others = set(engine_processes(str(STATE)))
    log = tmp_path / "run.log"
    supervisor = _supervised(env, VARIANT, log)
    _wait_for(lambda: _generated(warehouse) >= 2, supervisor, log, "generating")
    supervisor.send_signal(signal.SIGHUP)
    assert supervisor.wait(timeout=120) == 128 + signal.SIGHUP, log.read_text()[-3000:]
    assert "stopped by SIGHUP; rerun to resume" in log.read_text()
    assert not set(engine_processes(str(STATE))) - others
    with dg.DagsterInstance.from_config(env["DAGSTER_HOME"]) as instance:
        (run,) = instance.get_runs()
        assert run.status == dg.DagsterRunStatus.FAILURE
        assert not instance.event_log_storage.get_concurrency_run_ids()
    with duckdb.connect(str(warehouse), read_only=True) as connection:
        (status, failure), = connection.execute("SELECT status, failure FROM engine_deployments").fetchall()
        (recorded,) = connection.execute("SELECT status FROM evaluation_runs WHERE run_id = ?", [run.run_id]).fetchone()
    assert status == "failed" and "stopped by SIGTERM" in failure and recorded == "failed_run"


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
