"""`yardstick materialize` (pipelines/supervise.py): Ctrl-C, SIGTERM and a hang-up stop the whole run tree."""

import signal
import subprocess
import time
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from tests.conftest import ROOT, STATE, engine_processes
from tests.pipelines.runs import BIN, OTHER, VARIANT, generated_samples, run_environment

pytestmark = pytest.mark.integration


def _supervised(env: dict[str, str], variant: str, log: Path) -> subprocess.Popen:
    return subprocess.Popen([str(BIN / "yardstick"), "materialize", variant], cwd=ROOT, env=env,
                            stdout=log.open("wb"), stderr=subprocess.STDOUT)


def _wait_for(condition, process: subprocess.Popen, log: Path, what: str, timeout_s: float = 600) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert process.poll() is None, log.read_text()[-3000:]
        assert time.monotonic() < deadline, f"{what}: not within {timeout_s:.0f} s"
        time.sleep(0.5)


def test_signals_stop_a_run_cleanly_even_one_waiting_for_the_engine(tmp_path, tiny_model):
    """A holds the engine and generates; B waits for the engine pool (Dagster's in-process executor does not
    look at signals there). SIGTERM stops B at once, A still running; Ctrl-C stops A within its wind-down: the
    engine stopped, its deployment failed with the reason, both runs failed, no slot held."""
    env = run_environment(tmp_path, items=200)   # A must still be generating when B waits and is stopped
    warehouse = tmp_path / "warehouse.duckdb"
    others = set(engine_processes(str(STATE)))
    logs = {name: tmp_path / f"{name}.log" for name in ("a", "b")}
    holder = _supervised(env, VARIANT, logs["a"])
    _wait_for(lambda: generated_samples(warehouse) >= 2, holder, logs["a"], "A generating")

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


def test_a_hang_up_stops_the_whole_run_tree_like_ctrl_c(tmp_path, tiny_model):
    """The terminal closing (SIGHUP to `yardstick materialize`) stops the run it supervises, whose child runs in a
    session of its own: the engine stopped, the deployment and the run failed with the reason, no slot held."""
    env = run_environment(tmp_path, items=200)
    warehouse = tmp_path / "warehouse.duckdb"
    others = set(engine_processes(str(STATE)))
    log = tmp_path / "run.log"
    supervisor = _supervised(env, VARIANT, log)
    _wait_for(lambda: generated_samples(warehouse) >= 2, supervisor, log, "generating")
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
