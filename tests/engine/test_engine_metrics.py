"""What the engine reports about itself during a load level: the Prometheus text parser and the level's summary on
an exposition written by hand and on one captured from llama-server (unit), the sampler against small servers of
the test's own (unit), and a real level against vLLM's CPU build, against llama-server and against a server without
/metrics (integration).

Against vLLM, what is asserted is what the code guarantees (figures present, in range, consistent with the load
the client held), never values that depend on the model or the machine's speed.
"""

import asyncio
from contextlib import asynccontextmanager

import duckdb
import pandas as pd
import pytest

from assets.engine.engine_metrics import (
    ENGINE_METRIC_COLUMNS,
    NOT_REPORTED,
    EngineLevelMetrics,
    EngineMetricsWatch,
    Sample,
    metrics_url,
    parse_exposition,
    read_figures,
    summarise_engine_metrics,
)
from assets.engine.loadtest import Endpoint, Load, RequestTiming, run_level
from assets.engine.requests import level_row
from assets.matrix import EngineSpec, load_matrix
from pipelines import settings
from resources.engines import EngineResource
from resources.launchers.readiness import free_port
from resources.warehouse import WarehouseResource
from tests.instruments.reference_server import running_reference_server
from warehouse import SCHEMA_FILE, utc_now

# Two engine cores (data parallelism), as vLLM 0.32 writes them, with the lines around them that must be skipped.
EXPOSITION = r"""# HELP vllm:num_requests_running Number of requests in model execution batches.
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{engine="0",model_name="tiny"} 3.0
vllm:num_requests_running{engine="1",model_name="tiny"} 2.0
# TYPE vllm:num_requests_waiting gauge
vllm:num_requests_waiting{engine="0",model_name="tiny"} 1.0
vllm:num_requests_waiting{engine="1",model_name="tiny"} 0.0
vllm:num_requests_waiting_by_reason{engine="0",model_name="tiny",reason="capacity"} 1.0
# TYPE vllm:kv_cache_usage_perc gauge
vllm:kv_cache_usage_perc{engine="0",model_name="tiny"} 0.5
vllm:kv_cache_usage_perc{engine="1",model_name="tiny"} 0.25
vllm:kv_cache_usage_perc{engine="2",model_name="tiny"} NaN

# TYPE vllm:prefix_cache_queries counter
vllm:prefix_cache_queries_total{engine="0",model_name="tiny"} 1000.0
vllm:prefix_cache_queries_created{engine="0",model_name="tiny"} 1.7961092375423954e+09
vllm:prefix_cache_queries_total{engine="1",model_name="tiny"} 600.0
vllm:prefix_cache_hits_total{engine="0",model_name="tiny"} 256.0
vllm:prefix_cache_hits_total{engine="1",model_name="tiny"} 144.0
vllm:num_preemptions_total{engine="0",model_name="tiny"} 2.0
vllm:num_preemptions_total{engine="1",model_name="tiny"} 1.0
# TYPE vllm:request_queue_time_seconds histogram
vllm:request_queue_time_seconds_bucket{engine="0",le="0.3",model_name="tiny"} 9.0
vllm:request_queue_time_seconds_bucket{engine="0",le="+Inf",model_name="tiny"} 10.0
vllm:request_queue_time_seconds_count{engine="0",model_name="tiny"} 10.0
vllm:request_queue_time_seconds_sum{engine="0",model_name="tiny"} 1.5
vllm:request_queue_time_seconds_count{engine="1",model_name="tiny"} 6.0
vllm:request_queue_time_seconds_sum{engine="1",model_name="tiny"} 0.5
vllm:cache_config_info{block_size="128",note="a \"quoted\", {braced} value\\ on\ntwo lines"} 1.0
vllm:num_requests_running{engine="9" 7.0
vllm:num_preemptions_total{engine=9} 7.0
http_requests_total{handler="/v1/chat/completions",method="POST",status="2xx"} 9.0 1700000000000
process_open_fds 17
"""
FIGURES = {"running": 5.0, "waiting": 1.0, "kv_cache_usage": 0.375, "prefix_cache_queries": 1600.0,
           "prefix_cache_hits": 400.0, "preemptions": 3.0, "queue_time_s_sum": 2.0, "queue_time_count": 16.0}


# llama-server (build 0c1e57098, --parallel 4 --metrics) while 8 requests ran on the tiny model: 4 in its slots,
# 4 waiting for one; its HELP lines left out. Its series carry no labels.
LLAMACPP_EXPOSITION = """# TYPE llamacpp:prompt_tokens_total counter
llamacpp:prompt_tokens_total 121
# TYPE llamacpp:prompt_tokens_cached_total counter
llamacpp:prompt_tokens_cached_total 83
# TYPE llamacpp:prompt_seconds_total counter
llamacpp:prompt_seconds_total 0.17721
# TYPE llamacpp:tokens_predicted_total counter
llamacpp:tokens_predicted_total 1600
# TYPE llamacpp:tokens_predicted_seconds_total counter
llamacpp:tokens_predicted_seconds_total 5.81636
# TYPE llamacpp:n_decode_total counter
llamacpp:n_decode_total 473
# TYPE llamacpp:n_tokens_max counter
llamacpp:n_tokens_max 216
# TYPE llamacpp:spec_decode_num_draft_tokens_total counter
llamacpp:spec_decode_num_draft_tokens_total 0
# TYPE llamacpp:spec_decode_num_accepted_tokens_total counter
llamacpp:spec_decode_num_accepted_tokens_total 0
# TYPE llamacpp:spec_decode_num_drafts_total counter
llamacpp:spec_decode_num_drafts_total 0
# TYPE llamacpp:prompt_tokens_seconds gauge
llamacpp:prompt_tokens_seconds 750.707
# TYPE llamacpp:predicted_tokens_seconds gauge
llamacpp:predicted_tokens_seconds 0
# TYPE llamacpp:requests_processing gauge
llamacpp:requests_processing 4
# TYPE llamacpp:requests_deferred gauge
llamacpp:requests_deferred 4
# TYPE llamacpp:n_busy_slots_per_decode gauge
llamacpp:n_busy_slots_per_decode 3.9852
"""
# The counters of the same server just before those 8 requests were sent and after they had finished.
LLAMACPP_BEFORE = "llamacpp:prompt_tokens_total 108\nllamacpp:prompt_tokens_cached_total 28\n"
LLAMACPP_AFTER = "llamacpp:prompt_tokens_total 161\nllamacpp:prompt_tokens_cached_total 111\n"


def _exposition(**figures: float) -> str:
    """An exposition of one engine core with these figures (the names `read_figures` returns)."""
    names = {"running": "vllm:num_requests_running", "waiting": "vllm:num_requests_waiting",
             "kv_cache_usage": "vllm:kv_cache_usage_perc", "prefix_cache_queries": "vllm:prefix_cache_queries_total",
             "prefix_cache_hits": "vllm:prefix_cache_hits_total", "preemptions": "vllm:num_preemptions_total",
             "queue_time_s_sum": "vllm:request_queue_time_seconds_sum",
             "queue_time_count": "vllm:request_queue_time_seconds_count"}
    return "".join(f'{names[figure]}{{engine="0",model_name="m"}} {value}\n' for figure, value in figures.items())


@pytest.mark.unit
def test_the_exposition_parses_to_its_samples_comments_and_malformed_lines_skipped():
    samples = parse_exposition(EXPOSITION)
    assert len(samples) == 24   # 26 sample lines, of which 2 are malformed
    assert samples[0] == Sample("vllm:num_requests_running", {"engine": "0", "model_name": "tiny"}, 3.0)
    info = next(sample for sample in samples if sample.name == "vllm:cache_config_info")
    assert info.labels == {"block_size": "128", "note": 'a "quoted", {braced} value\\ on\ntwo lines'}
    assert Sample("http_requests_total", {"handler": "/v1/chat/completions", "method": "POST", "status": "2xx"},
                  9.0) in samples   # the timestamp after the value is not the value
    assert Sample("process_open_fds", {}, 17.0) in samples
    assert not any(sample.labels.get("engine") == "9" for sample in samples)


@pytest.mark.unit
def test_only_the_named_series_are_kept_when_names_are_given():
    samples = parse_exposition(EXPOSITION, {"vllm:num_requests_running", "vllm:request_queue_time_seconds_sum"})
    assert [(sample.name, sample.value) for sample in samples] == [
        ("vllm:num_requests_running", 3.0), ("vllm:num_requests_running", 2.0),
        ("vllm:request_queue_time_seconds_sum", 1.5), ("vllm:request_queue_time_seconds_sum", 0.5)]


@pytest.mark.unit
@pytest.mark.parametrize(("line", "expected"), [
    ('m{a="1"} 2.5', Sample("m", {"a": "1"}, 2.5)),
    ('m{a="1",} 2.5', Sample("m", {"a": "1"}, 2.5)),              # a trailing comma is allowed
    ('m{ a = "1" , b="" } 2.5', Sample("m", {"a": "1", "b": ""}, 2.5)),
    ("m{} 1e3", Sample("m", {}, 1000.0)),
    ("m +Inf", Sample("m", {}, float("inf"))),
    ("m -Inf 1700000000000", Sample("m", {}, float("-inf"))),
    ("  m 1  ", Sample("m", {}, 1.0)),
    ('m{path="a}b"} 1', Sample("m", {"path": "a}b"}, 1.0)),       # a brace inside a label value
])
def test_well_formed_lines(line, expected):
    assert parse_exposition(line) == [expected]


@pytest.mark.unit
@pytest.mark.parametrize("line", [
    'm{a="1" 2.5',          # the labels are not closed
    "m{a=1} 2.5",           # a label value without quotes
    'm{a="1" b="2"} 2.5',   # labels without a comma between them
    'm{a="1} 2.5',          # a label value not closed
    'm{1a="1"} 2.5',        # a label name that is not one
    'm{a="1"} five',        # a value that is not a number
    'm{a="1"}',             # no value
    "m",
    '{a="1"} 2.5',          # no name
    "1m 2.5",
    "m 1 2 3",              # more than a value and a timestamp
    "# TYPE m counter",
    "",
])
def test_malformed_lines_and_comments_give_no_sample(line):
    assert parse_exposition(line) == []
    assert parse_exposition(line, {"m"}) == []


@pytest.mark.unit
def test_figures_are_summed_over_engines_and_the_kv_cache_fraction_averaged():
    assert read_figures(EXPOSITION) == pytest.approx(FIGURES)


@pytest.mark.unit
def test_older_vllm_names_are_read_when_the_current_ones_are_absent():
    older = ('vllm:gpu_cache_usage_perc{model_name="m"} 0.75\n'
             'vllm:gpu_prefix_cache_queries_total{model_name="m"} 10\n'
             'vllm:gpu_prefix_cache_hits_total{model_name="m"} 4\n')
    assert read_figures(older) == {"kv_cache_usage": 0.75, "prefix_cache_queries": 10.0, "prefix_cache_hits": 4.0}


@pytest.mark.unit
def test_llama_cpp_series_are_read_where_they_mean_what_vllms_do():
    """Running and waiting are its busy slots and deferred requests; the prefix-cache lookups are the prompt tokens
    it computed and those it reused, added up. It reports no KV-cache usage, preemptions or queue time."""
    assert read_figures(LLAMACPP_EXPOSITION) == {"running": 4.0, "waiting": 4.0,
                                                 "prefix_cache_queries": 204.0, "prefix_cache_hits": 83.0}


@pytest.mark.unit
@pytest.mark.parametrize(("text", "expected"), [
    # A sum needs every one of its series: the cached tokens alone are hits, not lookups.
    ("llamacpp:prompt_tokens_cached_total 5\n", {"prefix_cache_hits": 5.0}),
    ("llamacpp:prompt_tokens_total 5\n", {}),
    ("llamacpp:prompt_tokens_total 5\nllamacpp:prompt_tokens_cached_total NaN\n", {}),
    # Older builds (before the KV-cache API changed) reported the used share of the cache.
    ("llamacpp:kv_cache_usage_ratio 0.125\nllamacpp:kv_cache_tokens 512\n", {"kv_cache_usage": 0.125}),
    # Another server's names win over nothing and are not mixed with llama.cpp's.
    ("vllm:num_requests_running 2\nllamacpp:requests_processing 4\n", {"running": 2.0}),
])
def test_llama_cpp_lines_and_the_figures_they_give(text, expected):
    assert read_figures(text) == expected


@pytest.mark.unit
def test_a_llama_cpp_level_gets_its_prefix_cache_hit_rate_and_gauges_and_nothing_it_does_not_report():
    during = [read_figures(LLAMACPP_EXPOSITION)]
    summary = summarise_engine_metrics(read_figures(LLAMACPP_BEFORE), during, read_figures(LLAMACPP_AFTER))
    assert summary == EngineLevelMetrics(
        prefix_cache_hit_rate=pytest.approx(83 / 136),   # 8 prompts of 17 tokens; 83 of them reused
        running_max=4, running_mean=4.0, waiting_max=4, waiting_mean=4.0)


@pytest.mark.unit
@pytest.mark.parametrize("text", ["", "<html>not found</html>", "# HELP x\nprocess_open_fds 17\n",
                                  'vllm:kv_cache_usage_perc{engine="0"} NaN\n'])
def test_an_exposition_without_engine_figures_has_none(text):
    assert read_figures(text) == {}


@pytest.mark.unit
def test_a_level_gets_counter_deltas_and_the_max_and_mean_of_the_sampled_gauges():
    before = read_figures(EXPOSITION)
    after = {**FIGURES, "prefix_cache_queries": 2600.0, "prefix_cache_hits": 650.0, "preemptions": 5.0,
             "queue_time_s_sum": 2.8, "queue_time_count": 24.0}
    during = [{"running": 4.0, "waiting": 0.0, "kv_cache_usage": 0.25},
              {"running": 6.0, "waiting": 3.0, "kv_cache_usage": 0.5},
              {"running": 5.0, "waiting": 0.0, "kv_cache_usage": 0.75}]
    assert summarise_engine_metrics(before, during, after) == EngineLevelMetrics(
        prefix_cache_hit_rate=pytest.approx(0.25),   # 250 of 1000 tokens looked up
        kv_cache_usage_max=0.75, kv_cache_usage_mean=pytest.approx(0.5),
        running_max=6, running_mean=pytest.approx(5.0), waiting_max=3, waiting_mean=pytest.approx(1.0),
        preemptions=2, queue_time_ms_mean=pytest.approx(100.0))   # 0.8 s over 8 requests


BEFORE = {"prefix_cache_queries": 100.0, "prefix_cache_hits": 10.0, "preemptions": 1.0, "queue_time_s_sum": 1.0,
          "queue_time_count": 4.0}
GAUGES = [{"running": 2.0, "waiting": 1.0, "kv_cache_usage": 0.1}]


@pytest.mark.unit
@pytest.mark.parametrize(("before", "during", "after", "expected"), [
    # No metrics when the level started: nothing at all, whatever came later.
    (None, GAUGES, BEFORE, NOT_REPORTED),
    # Nothing looked up in the prefix cache, nothing finished: no rate and no mean, not zero.
    (BEFORE, [], BEFORE, EngineLevelMetrics(preemptions=0)),
    # A counter that went down (the server restarted) says nothing about the level.
    (BEFORE, [], {**BEFORE, "preemptions": 0.0, "prefix_cache_queries": 50.0, "queue_time_count": 2.0},
     EngineLevelMetrics()),
    # The read after the level failed: the sampled gauges still count.
    (BEFORE, GAUGES, None, EngineLevelMetrics(kv_cache_usage_max=0.1, kv_cache_usage_mean=0.1, running_max=2,
                                              running_mean=2.0, waiting_max=1, waiting_mean=1.0)),
    # A gauge missing from a sample is left out of that figure only.
    (BEFORE, [{"running": 3.0}, {"running": 1.0, "waiting": 2.0}], {**BEFORE, "prefix_cache_hits": 11.0},
     EngineLevelMetrics(running_max=3, running_mean=2.0, waiting_max=2, waiting_mean=2.0, preemptions=0)),
    # Hits without queries (a server that reports one and not the other): no rate.
    ({"prefix_cache_hits": 1.0}, [], {"prefix_cache_hits": 5.0}, EngineLevelMetrics()),
])
def test_what_a_level_reports_when_reads_are_missing_or_wrong(before, during, after, expected):
    assert summarise_engine_metrics(before, during, after) == expected


@pytest.mark.unit
def test_the_figures_are_the_engine_columns_of_serving_load_levels():
    assert all(column.startswith("engine_") for column in ENGINE_METRIC_COLUMNS)
    assert NOT_REPORTED.row() == dict.fromkeys(ENGINE_METRIC_COLUMNS)
    with duckdb.connect() as connection:
        connection.execute(SCHEMA_FILE.read_text())
        columns = {row[0] for row in connection.execute(
            "SELECT column_name FROM duckdb_columns() WHERE table_name = 'serving_load_levels'").fetchall()}
    variant = load_matrix().variant("tiny-test")
    load = Load(num_requests=1, input_len=8, output_len=4, concurrency=1)
    timing = RequestTiming(ok=True, prompt_tokens=8, output_tokens=4, ttft_ms=10.0, e2el_ms=40.0)
    row = level_row(variant, load, [timing], 1.0, EngineLevelMetrics(running_max=1, preemptions=0))
    assert set(ENGINE_METRIC_COLUMNS) <= set(row) and set(row) | {"variant", "measured_at"} <= columns
    assert row["engine_running_max"] == 1 and row["engine_preemptions"] == 0 and row["engine_waiting_max"] is None
    assert {column: level_row(variant, load, [timing], 1.0)[column] for column in ENGINE_METRIC_COLUMNS} \
        == NOT_REPORTED.row()


@pytest.mark.unit
@pytest.mark.parametrize(("base_url", "expected"), [
    ("http://127.0.0.1:8000/v1", "http://127.0.0.1:8000/metrics"),
    ("http://127.0.0.1:8000/v1/", "http://127.0.0.1:8000/metrics"),
    ("https://api.example.com/v1", "https://api.example.com/metrics"),
    ("https://gateway.example.com/llm/v1", "https://gateway.example.com/llm/metrics"),
])
def test_the_metrics_endpoint_sits_beside_the_openai_base_url(base_url, expected):
    assert metrics_url(base_url) == expected


@asynccontextmanager
async def _canned_server(replies: list[tuple[int, str]]):
    """A loopback HTTP server of this process answering its n-th request with replies[n] (the last one again
    after that); yields its /metrics URL."""
    served = 0

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal served
        await reader.readuntil(b"\r\n\r\n")
        status, body = replies[min(served, len(replies) - 1)]
        served += 1
        payload = body.encode()
        writer.write(f"HTTP/1.1 {status} X\r\nContent-Length: {len(payload)}\r\nConnection: close\r\n\r\n".encode()
                     + payload)
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    async with server:
        yield f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/metrics"


@pytest.mark.unit
def test_the_watch_reads_counters_around_the_block_and_samples_gauges_while_it_is_held():
    """The first read (as the block is entered) sees the counters before; every later one sees them after, with
    the same gauges, so the summary does not depend on how many samples fit in the block."""
    gauges = {"running": 3, "waiting": 1, "kv_cache_usage": 0.5}
    before = _exposition(**gauges, prefix_cache_queries=100, prefix_cache_hits=10, preemptions=0,
                         queue_time_s_sum=1.0, queue_time_count=4)
    after = _exposition(**gauges, prefix_cache_queries=300, prefix_cache_hits=60, preemptions=2,
                        queue_time_s_sum=1.5, queue_time_count=9)

    async def level() -> EngineMetricsWatch:
        async with _canned_server([(200, before), (200, after)]) as url:
            async with EngineMetricsWatch(url, interval_s=0.02) as watch:
                await asyncio.sleep(0.15)
        return watch

    assert asyncio.run(level()).summary == EngineLevelMetrics(
        prefix_cache_hit_rate=0.25, kv_cache_usage_max=0.5, kv_cache_usage_mean=0.5, running_max=3,
        running_mean=3.0, waiting_max=1, waiting_mean=1.0, preemptions=2, queue_time_ms_mean=pytest.approx(100.0))


@pytest.mark.unit
@pytest.mark.parametrize("reply", [(404, '{"error": "not found"}'), (200, "<html>a web page</html>"),
                                   (500, _exposition(running=1))])
def test_a_server_without_metrics_leaves_every_figure_empty_and_the_block_runs(reply):
    async def level() -> tuple[EngineMetricsWatch, bool]:
        async with _canned_server([reply]) as url:
            async with EngineMetricsWatch(url, interval_s=0.02) as watch:
                await asyncio.sleep(0.1)
                ran = True
        return watch, ran

    watch, ran = asyncio.run(level())
    assert ran and watch.summary == NOT_REPORTED


@pytest.mark.unit
def test_a_missing_endpoint_leaves_every_figure_empty_and_the_block_runs():
    async def level() -> tuple[EngineMetricsWatch, bool]:
        async with EngineMetricsWatch(f"http://127.0.0.1:{free_port()}/metrics", interval_s=0.02) as watch:
            await asyncio.sleep(0.1)
            ran = True
        return watch, ran

    watch, ran = asyncio.run(level())
    assert ran and watch.summary == NOT_REPORTED


# A level long enough for the gauges to be sampled several times while requests run on vLLM's CPU build.
LEVEL = Load(num_requests=8, input_len=32, output_len=512, concurrency=4, exact_output_len=True)


@pytest.fixture(scope="module")
def vllm_deployment(tiny_model, tmp_path_factory):
    engine = EngineResource(log_dir=str(tmp_path_factory.mktemp("vllm-logs")), vllm_command=settings.vllm_command(),
                            cpu_threads=2)
    spec = EngineSpec("vllm", {"device": "cpu", "cpu_kvcache_space_gib": 1, "startup_timeout_s": 300})
    with engine.deploy(spec, str(tiny_model), "tiny", "metrics") as deployment:
        yield deployment


@pytest.mark.integration
def test_a_vllm_level_records_the_engines_figures_in_range(vllm_deployment, tmp_path):
    watch = EngineMetricsWatch(metrics_url(vllm_deployment.base_url))
    endpoint = Endpoint(vllm_deployment.base_url, vllm_deployment.served_model)
    timings, duration = asyncio.run(run_level(endpoint, LEVEL, watch))
    assert all(timing.ok for timing in timings), [timing.error for timing in timings]

    figures = watch.summary
    assert None not in figures.row().values(), figures
    assert 0 <= figures.prefix_cache_hit_rate <= 1
    assert 0 <= figures.kv_cache_usage_mean <= figures.kv_cache_usage_max <= 1
    # The client never has more than `concurrency` requests in flight, and the warm-up is over before the watch.
    assert 1 <= figures.running_max <= LEVEL.concurrency and 0 <= figures.running_mean <= figures.running_max
    assert 0 <= figures.waiting_max <= LEVEL.concurrency and 0 <= figures.waiting_mean <= figures.waiting_max
    assert figures.preemptions >= 0 and figures.queue_time_ms_mean >= 0

    warehouse = WarehouseResource(path=str(tmp_path / "w.duckdb"))
    row = level_row(load_matrix().variant("tiny-test-vllm"), LEVEL, timings, duration, figures)
    warehouse.replace_partition("serving_load_levels", "tiny-test-vllm",
                                pd.DataFrame([row]).assign(variant="tiny-test-vllm", measured_at=utc_now()))
    stored = warehouse.query(f"SELECT {', '.join(ENGINE_METRIC_COLUMNS)} FROM serving_load_levels")
    assert stored.iloc[0].to_dict() == pytest.approx(figures.row())


# Twice the server's slots in flight, so that some requests wait for one.
LLAMACPP_SLOTS = 2
LLAMACPP_LEVEL = Load(num_requests=8, input_len=32, output_len=512, concurrency=2 * LLAMACPP_SLOTS,
                      exact_output_len=True)


@pytest.mark.integration
def test_a_llama_cpp_level_records_its_running_and_waiting_requests(tiny_gguf, tmp_path):
    engine = EngineResource(log_dir=str(tmp_path), cpu_threads=2)
    spec = EngineSpec("llamacpp", {"device": "cpu", "parallel": LLAMACPP_SLOTS, "max_model_len": 512})
    with engine.deploy(spec, str(tiny_gguf), "tiny", "metrics-llamacpp") as deployment:
        watch = EngineMetricsWatch(metrics_url(deployment.base_url))
        endpoint = Endpoint(deployment.base_url, deployment.served_model)
        timings, _ = asyncio.run(run_level(endpoint, LLAMACPP_LEVEL, watch))
    assert all(timing.ok for timing in timings), [timing.error for timing in timings]

    figures = watch.summary
    assert 1 <= figures.running_max <= LLAMACPP_SLOTS and 0 <= figures.running_mean <= figures.running_max
    assert 0 <= figures.waiting_max <= LLAMACPP_LEVEL.concurrency
    assert 0 <= figures.waiting_mean <= figures.waiting_max
    assert 0 <= figures.prefix_cache_hit_rate <= 1
    assert figures.preemptions is None and figures.queue_time_ms_mean is None   # llama.cpp has no such series


@pytest.mark.integration
def test_a_level_against_a_server_without_metrics_succeeds_with_every_figure_empty():
    with running_reference_server(ttft_ms=20.0, tpot_ms=5.0, slots=4) as base_url:
        watch = EngineMetricsWatch(metrics_url(base_url))
        load = Load(num_requests=8, input_len=16, output_len=8, concurrency=4)
        timings, _ = asyncio.run(run_level(Endpoint(base_url, "reference"), load, watch))
    assert all(timing.ok for timing in timings)
    assert watch.summary == NOT_REPORTED
