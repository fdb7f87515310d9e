"""How the engine step generates (assets/engine/generation.py): the cached prompt tokens each API reports, and
transient faults, measured against the fault-injecting proxy (tests/instruments/fault_proxy.py) in front of
the real vLLM engine serving the tiny model: an API variant whose endpoint answers a share of its requests with
429/5xx, dropped connections and stalls still finishes in one run, with every retry recorded; one whose every
request fails stops with a clear message, keeping what finished; and no credential in its URL is stored."""

import os
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest
import yaml
from openai.types import CompletionUsage

from assets.engine.generation import reported_cached_prompt_tokens
from assets.matrix import load_matrix
from assets.variants import SAMPLE_TABLES, drawn_on
from pipelines.definitions import defs
from resources.launchers.readiness import free_port
from resources.matrix import MatrixResource
from resources.warehouse import WarehouseResource
from tests.conftest import needs_shared
from tests.instruments.fault_proxy import running_fault_proxy

VARIANT = "tiny-test-api"   # a partition of the test matrix; its settings come from the matrix each test writes

MATRIX = load_matrix()

ITEMS, K = 100, 2           # 200 samples

# Short backoff keeps the test quick; the deadline is well above a request's time on a busy two-core machine and
# below the proxy's stall, so every stall is abandoned by the deadline, not by the proxy closing the connection.
FAST_RETRIES = {"base_delay_s": 0.05, "max_delay_s": 0.5, "request_deadline_s": 10}

STALL_S = 20


@pytest.fixture(scope="module")
def engine(tiny_model):
    """The tiny model served by vLLM's CPU build, started once for the module outside the pipeline."""
    spec = MATRIX.variant("tiny-test-vllm")
    deployment = defs.resources["engine"].deploy(
        spec.engine, str(tiny_model), served_name="tiny-endpoint", log_name="fault-proxy-upstream",
        warmup_sampling={"temperature": spec.protocol.temperature, "top_p": spec.protocol.top_p})
    with deployment as running:
        yield running


def api_matrix(tmp_path: Path, retry: dict, items: int = ITEMS, **variant) -> MatrixResource:
    body = {"variants": {VARIANT: {**variant,
        "model": None, "hardware": None, "api_price": "deepseek-reasoner",
        "engine": {"kind": "external", "base_url_env": "YARDSTICK_TEST_ENDPOINT", "model": "tiny-endpoint",
                   "concurrency": 8, "retry": retry},
        "protocol": {"preset": "deepseek-r1", "k": K, "max_tokens": 32},
        "benchmarks": {"arith": items},
        "serving": {"concurrency": [], "request_rates": []}}}}
    path = tmp_path / "matrix.yaml"
    path.write_text(yaml.safe_dump(body))
    return MatrixResource(path=str(path), benchmark_mirror=defs.resources["matrix"].benchmark_mirror)


def run(warehouse: WarehouseResource, matrix: MatrixResource, instance: dg.DagsterInstance | None = None):
    job = defs.resolve_implicit_global_asset_job_def()
    return job.execute_in_process(partition_key=VARIANT, raise_on_error=False, instance=instance,
                                  resources={**defs.resources, "warehouse": warehouse, "matrix": matrix})


def failure_message(result) -> str:
    """The failed steps' errors with their causes (Dagster wraps what the step raised)."""
    messages = []
    for event in result.get_step_failure_events():
        error = event.step_failure_data.error
        while error is not None:
            messages.append(error.message)
            error = error.cause
    return "\n".join(messages)


def samples(warehouse: WarehouseResource):
    return warehouse.query("SELECT benchmark, item_id, sample_index, attempts, last_error FROM "
                           "benchmark_generations WHERE variant = ?", [VARIANT])


@pytest.mark.integration
@needs_shared
def test_ten_percent_faults_are_absorbed_and_every_retry_is_recorded(engine, tmp_path, monkeypatch):
    warehouse = WarehouseResource(path=str(tmp_path / "warehouse.duckdb"))
    with running_fault_proxy(engine.base_url, share=0.10, stall_s=STALL_S, seed=11) as proxy:
        monkeypatch.setenv("YARDSTICK_TEST_ENDPOINT", proxy.base_url)
        result = run(warehouse, api_matrix(tmp_path, FAST_RETRIES))
        stats = proxy.stats()
    assert result.success, failure_message(result)
    found = samples(warehouse)
    assert len(found) == ITEMS * K
    assert len(found.drop_duplicates(["benchmark", "item_id", "sample_index"])) == len(found)
    assert set(found["sample_index"]) == set(range(K))
    # Every attempt passed through the proxy, faulted or forwarded, and each is on record: a faulted request never
    # reaches the engine, so it cost one retry (a forwarded one is retried only if it outlived the deadline).
    assert stats["injected_total"] > 0 and stats["forwarded"] >= ITEMS * K
    assert int(found["attempts"].sum()) == stats["forwarded"] + stats["injected_total"]
    retries = int((found["attempts"] - 1).sum())
    retried = found[found["attempts"] > 1]
    assert retried["last_error"].notna().all() and found[found["attempts"] == 1]["last_error"].isna().all()
    assert retried["last_error"].str.contains(proxy.base_url, regex=False).all()   # every error names the URL
    generations = result.asset_materializations_for_node("engine_step")
    recorded = next(m.metadata for m in generations if m.asset_key.path == ["benchmark_generations"])
    assert recorded["retries"].value == retries
    assert sum(recorded["retries_by_error"].value.values()) == retries
    graded = warehouse.query("SELECT count(*) AS n FROM graded_answers WHERE variant = ?", [VARIANT]).iloc[0]["n"]
    assert graded == ITEMS * K


@pytest.mark.integration
@needs_shared
def test_every_request_failing_stops_with_a_clear_message_keeping_what_finished(engine, tmp_path, monkeypatch):
    warehouse = WarehouseResource(path=str(tmp_path / "warehouse.duckdb"))
    matrix = api_matrix(tmp_path, {**FAST_RETRIES, "budget": 30})
    # One proxy for both runs: samples are fingerprinted by the endpoint's URL, so the rerun must see the same one.
    with running_fault_proxy(engine.base_url, share=1.0, kinds=("429", "500", "503"), clean_first=24) as proxy:
        monkeypatch.setenv("YARDSTICK_TEST_ENDPOINT", proxy.base_url)
        result = run(warehouse, matrix)
        assert not result.success
        message = failure_message(result)
        assert f"generation stopped after 24 of {ITEMS * K} samples" in message
        assert "retry budget of 30 retries is spent" in message and proxy.base_url in message
        assert "rerun resumes" in message
        assert len(samples(warehouse)) == 24 == proxy.stats()["forwarded"]
        deployment = warehouse.query("SELECT status FROM engine_deployments WHERE variant = ?", [VARIANT])
        assert deployment["status"].tolist() == ["failed"]

        proxy.plan.share = 0.0   # the endpoint recovers: the rerun asks only for what is missing
        assert run(warehouse, matrix).success
        assert proxy.stats()["forwarded"] == ITEMS * K
    found = samples(warehouse)
    assert len(found) == ITEMS * K == len(found.drop_duplicates(["benchmark", "item_id", "sample_index"]))


@pytest.mark.integration
@needs_shared
def test_an_api_baseline_resampled_daily_asks_its_subset_afresh_each_day(engine, tmp_path, monkeypatch):
    """`resample: daily`: a rerun the same day reuses that day's samples; the next day's run asks every item
    again (what the provider serves tonight) and keeps the day before's samples as they were."""
    warehouse = WarehouseResource(path=str(tmp_path / "warehouse.duckdb"))
    matrix = api_matrix(tmp_path, FAST_RETRIES, items=5, resample="daily")
    asked = 5 * K
    with running_fault_proxy(engine.base_url, share=0.0) as proxy:
        monkeypatch.setenv("YARDSTICK_TEST_ENDPOINT", proxy.base_url)
        assert run(warehouse, matrix).success
        assert run(warehouse, matrix).success
        assert proxy.stats()["forwarded"] == asked   # the same day: nothing asked again
        # What a warehouse holds the next morning: these samples were drawn yesterday.
        snapshot = warehouse.query("SELECT fingerprint, recorded_at FROM model_snapshots WHERE variant = ?",
                                   [VARIANT]).iloc[0]
        spec = load_matrix(matrix.path).variant(VARIANT)
        today = f"{snapshot['recorded_at']:%Y-%m-%d}"
        yesterday = f"{snapshot['recorded_at'] - pd.Timedelta(days=1):%Y-%m-%d}"
        drawn_today, drawn_yesterday = (drawn_on(spec, snapshot["fingerprint"], day) for day in (today, yesterday))
        for table in SAMPLE_TABLES:
            warehouse.query(f"UPDATE {table} SET config_hash = ? WHERE variant = ? AND config_hash = ?",
                            [drawn_yesterday, VARIANT, drawn_today])
        before = warehouse.query("SELECT * FROM benchmark_generations ORDER BY ALL")
        assert run(warehouse, matrix).success
        assert proxy.stats()["forwarded"] == 2 * asked   # the new day's run asked every item again
    kept = warehouse.query("SELECT * FROM benchmark_generations WHERE config_hash = ? ORDER BY ALL", [drawn_yesterday])
    pd.testing.assert_frame_equal(kept, before)
    published = warehouse.query("SELECT run_id, count(*) AS n FROM published_samples WHERE variant = ? "
                                "GROUP BY run_id", [VARIANT])
    assert published["n"].tolist() == [asked] * 3   # each run published that day's samples only
    scored = warehouse.query("SELECT DISTINCT config_hash FROM graded_answers WHERE variant = ?", [VARIANT])
    assert sorted(scored["config_hash"]) == sorted([drawn_today, drawn_yesterday])


@pytest.mark.integration
@needs_shared
def test_an_unreachable_endpoint_fails_naming_its_url(tmp_path, monkeypatch):
    warehouse = WarehouseResource(path=str(tmp_path / "warehouse.duckdb"))
    url = f"http://127.0.0.1:{free_port()}/v1"   # nothing listens there
    monkeypatch.setenv("YARDSTICK_TEST_ENDPOINT", url)
    result = run(warehouse, api_matrix(tmp_path, {**FAST_RETRIES, "budget": 3}, items=2))
    assert not result.success
    message = failure_message(result)
    assert f"connection error at {url}" in message and "retry budget of 3 retries is spent" in message


@pytest.mark.integration
@needs_shared
def test_credentials_in_the_endpoint_url_reach_neither_the_warehouse_nor_dagster(engine, tmp_path, monkeypatch):
    secret = "sk-test-5ecr3t-in-the-url"
    warehouse = WarehouseResource(path=str(tmp_path / "warehouse.duckdb"))
    home = tmp_path / "dagster-home"
    home.mkdir()
    with running_fault_proxy(engine.base_url, share=0.0) as proxy:
        with_key = proxy.base_url.replace("http://", f"http://user:{secret}@")
        monkeypatch.setenv("YARDSTICK_TEST_ENDPOINT", with_key)
        with dg.DagsterInstance.local_temp(str(home)) as instance:   # event storage and logs on disk, in home
            result = run(warehouse, api_matrix(tmp_path, FAST_RETRIES, items=3), instance)
        assert result.success, failure_message(result)
    with warehouse.connect(read_only=True) as connection:
        tables = [row[0] for row in connection.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_type = 'BASE TABLE'").fetchall()]
        for table in tables:
            text = connection.execute(f"SELECT * FROM {table}").df().to_csv()
            assert secret not in text, f"the secret is stored in {table}"
    stored = warehouse.query("SELECT base_url FROM engine_deployments WHERE variant = ?", [VARIANT])
    assert stored["base_url"].tolist() == [proxy.base_url]
    revision = warehouse.query("SELECT revision FROM model_snapshots WHERE variant = ?", [VARIANT])
    assert revision["revision"].tolist() == [proxy.base_url]
    leaked = [str(path) for path in home.rglob("*") if path.is_file() and secret.encode() in path.read_bytes()]
    assert leaked == [], f"the secret is in Dagster's storage: {leaked}"
    assert os.environ["YARDSTICK_TEST_ENDPOINT"] == with_key   # the run used the URL with its key to connect


@pytest.mark.unit
def test_cached_prompt_tokens_are_read_as_each_api_reports_them():
    openai_style = CompletionUsage.model_validate({"prompt_tokens": 1000, "completion_tokens": 50, "total_tokens": 1050,
                                                   "prompt_tokens_details": {"cached_tokens": 768}})
    deepseek_style = CompletionUsage.model_validate({"prompt_tokens": 1000, "completion_tokens": 50,
                                                     "total_tokens": 1050, "prompt_cache_hit_tokens": 640,
                                                     "prompt_cache_miss_tokens": 360})
    silent = CompletionUsage.model_validate({"prompt_tokens": 1000, "completion_tokens": 50, "total_tokens": 1050})
    assert reported_cached_prompt_tokens(openai_style) == 768
    assert reported_cached_prompt_tokens(deepseek_style) == 640
    assert reported_cached_prompt_tokens(silent) is None and reported_cached_prompt_tokens(None) is None
