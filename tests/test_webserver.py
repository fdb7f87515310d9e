"""The Dagster webserver loads the code location and answers with the asset graph."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import httpx
import pytest

from pipelines.definitions import defs
from resources.launchers.readiness import free_port

ROOT = Path(__file__).resolve().parent.parent
EXPECTED_ASSETS = {"benchmark_items", "model_snapshot", "quantized_model", "engine_deployment",
                   "benchmark_generations", "serving_benchmark", "graded_answers", "benchmark_scores",
                   "quantization_loss", "cost_rollup", "published_evaluation", "leaderboard"}


@pytest.mark.unit
def test_definitions_load():
    dg.Definitions.validate_loadable(defs)
    assert {key.to_user_string() for key in defs.resolve_all_asset_keys()} == EXPECTED_ASSETS
    assert defs.resolve_schedule_def("nightly_eval")
    assert defs.resolve_sensor_def("dead_runs")


@pytest.mark.integration
def test_webserver_serves_the_asset_graph(tmp_path):
    port = free_port()
    webserver = Path(sys.executable).with_name("dagster-webserver")
    own_state = {"DAGSTER_HOME": str(tmp_path), "YARDSTICK_WAREHOUSE": str(tmp_path / "warehouse.duckdb")}
    process = subprocess.Popen(
        [str(webserver), "-w", str(ROOT / "workspace.yaml"), "-h", "127.0.0.1", "-p", str(port)],
        cwd=ROOT, env={**os.environ, **own_state}, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL, start_new_session=True,
    )
    try:
        query = {"query": "{ assetNodes { assetKey { path } } }"}
        deadline = time.monotonic() + 120
        nodes = None
        while time.monotonic() < deadline:
            try:
                answer = httpx.post(f"http://127.0.0.1:{port}/graphql", json=query, timeout=5).json()
                nodes = answer.get("data", {}).get("assetNodes")
                if nodes:
                    break
            except (httpx.HTTPError, ValueError):
                pass
            assert process.poll() is None, "dagster-webserver exited"
            time.sleep(1)
        assert nodes, "the webserver never answered with asset nodes"
        assert {node["assetKey"]["path"][-1] for node in nodes} == EXPECTED_ASSETS
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)
