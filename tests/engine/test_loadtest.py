"""The load generator measured against a reference server whose timing is known.

Tiers per test: the fidelity checks are `timing` (judged against the reference server's known timing and its own
report of what it served), a failed request against the server is `integration`, prompt building is `unit`.
"""

import gc
import json
import os
import threading
import time
from dataclasses import replace

import pandas as pd
import pytest

from assets.engine.loadtest import Endpoint, Load, level_prompts, load_levels, request_body
from assets.engine.requests import serving_loads, serving_prompts
from assets.matrix import load_matrix
from pipelines.cli import main as yardstick
from tests.conftest import ROOT
from tests.instruments.reference_server import running_reference_server, served_stats

# Latencies of the order of a real engine's.
TTFT_MS, TPOT_MS, SLOTS, OUTPUT = 300.0, 30.0, 64, 16


@pytest.fixture(scope="module")
def server():
    with running_reference_server(TTFT_MS, TPOT_MS, SLOTS) as base_url:
        yield base_url


def _bench(tmp_path, base_url, *args) -> dict:
    out = tmp_path / "result.json"
    assert yardstick(["bench", "--base-url", base_url, "--model", "reference", "--input-len", "32",
                      "--output-len", str(OUTPUT), "--output", str(out), *args]) == 0
    return json.loads(out.read_text())


@pytest.mark.timing
def test_latencies_within_five_percent_of_the_truth(server, tmp_path):
    result = _bench(tmp_path, server, "--concurrency", "1,16", "--num-requests", "48")
    for level in result["levels"]:
        assert level["completed"] == 48 and level["failed"] == 0
        assert level["ttft_ms"]["mean"] == pytest.approx(TTFT_MS, rel=0.05)
        assert level["tpot_ms"]["mean"] == pytest.approx(TPOT_MS, rel=0.05)
        assert level["itl_ms"]["p50"] == pytest.approx(TPOT_MS, rel=0.05)
        assert level["e2el_ms"]["mean"] == pytest.approx(TTFT_MS + (OUTPUT - 1) * TPOT_MS, rel=0.05)
        assert level["goodput"] == pytest.approx(level["request_throughput"])
    assert set(result["levels"][0]) >= {"concurrency", "completed", "failed", "duration_s", "request_throughput",
                                        "output_throughput", "ttft_ms", "tpot_ms", "itl_ms", "e2el_ms"}


@pytest.mark.timing
def test_itl_is_token_weighted_when_chunks_carry_several_tokens(tmp_path):
    """16 tokens as chunks of 1, 4, 4, 4, 3: gaps of 80 ms (60 for the last) that are 20 ms per token."""
    with running_reference_server(TTFT_MS, TPOT_MS, SLOTS, tokens_per_chunk=4) as base_url:
        weighted = _bench(tmp_path, base_url, "--concurrency", "4", "--num-requests", "16", "--per-chunk-usage")
        per_chunk = _bench(tmp_path, base_url, "--concurrency", "4", "--num-requests", "16")
    level = weighted["levels"][0]
    assert level["completed"] == 16
    assert level["itl_ms"]["p50"] == pytest.approx(TPOT_MS, rel=0.05)
    assert level["itl_ms"]["mean"] == pytest.approx(level["tpot_ms"]["mean"], rel=0.05)  # every token once
    assert level["tpot_ms"]["mean"] == pytest.approx(TPOT_MS, rel=0.05)
    # Without usage on every chunk a chunk counts as one token, and the gaps are the chunks'.
    assert per_chunk["levels"][0]["itl_ms"]["p50"] == pytest.approx(4 * TPOT_MS, rel=0.05)
    assert per_chunk["levels"][0]["tpot_ms"]["mean"] == pytest.approx(TPOT_MS, rel=0.05)


@pytest.mark.timing
def test_the_client_keeps_the_server_saturated_at_concurrency_256(tmp_path):
    waves = 80
    ttft_ms, tpot_ms = 100.0, 20.0
    nominal = SLOTS / ((ttft_ms + (OUTPUT - 1) * tpot_ms) / 1000)  # requests per second
    pauses, started = [], [0.0]   # the garbage collector's pauses, reported with a failure

    def timed_collection(phase: str, info: dict) -> None:
        if phase == "start":
            started[0] = time.perf_counter()
        else:
            pauses.append(time.perf_counter() - started[0])

    gc.callbacks.append(timed_collection)
    try:
        with running_reference_server(ttft_ms, tpot_ms, SLOTS) as base_url:
            # A multiple of the slots, so the last wave fills the server like every other; 80 waves (32 s), so that a
            # moment the client loses to a busy machine at the end of the run (0.7 s on CI's) is not 3% of it.
            result = _bench(tmp_path, base_url, "--concurrency", "256", "--num-requests", str(waves * SLOTS),
                            "--warmup", "0")
            served = served_stats(base_url)
    finally:
        gc.callbacks.remove(timed_collection)
    level = result["levels"][0]
    report = (level["request_throughput"], nominal, served, {
        "gc_pauses": len(pauses), "gc_longest_s": max(pauses, default=0), "threads": threading.active_count(),
        "loadavg": os.getloadavg()})
    assert level["failed"] == 0 and served["completed"] == waves * SLOTS
    # The ruler held its timing ...
    assert served["mean_service_s"] == pytest.approx(SLOTS / nominal, rel=0.05), report
    # ... the client never left it idle: a slot was free with no request waiting under 3% of the time (the
    # server's own hand-over of a freed slot is its capacity, and takes longer on a loaded machine) ...
    assert served["starved_fraction"] <= 0.03, report
    # ... so what the server delivered was its capacity, and the client measured at least 97% of it.
    assert level["request_throughput"] >= 0.97 * served["delivered_rps"], report


@pytest.mark.timing
def test_the_ruler_notices_a_client_that_leaves_slots_idle(tmp_path):
    """The control for the test above: 16 requests in flight on 64 slots starve three quarters of them."""
    with running_reference_server(100.0, 20.0, SLOTS) as base_url:
        _bench(tmp_path, base_url, "--concurrency", "16", "--num-requests", "64", "--warmup", "0")
        served = served_stats(base_url)
    assert served["completed"] == 64 and served["starved_fraction"] == pytest.approx(0.75, abs=0.05)


@pytest.mark.timing
def test_poisson_arrivals_at_a_rate(server, tmp_path):
    result = _bench(tmp_path, server, "--concurrency", "", "--request-rate", "20", "--num-requests", "60")
    level = result["levels"][0]
    assert level["request_rate"] == 20 and level["completed"] == 60
    assert level["request_throughput"] == pytest.approx(20, rel=0.35)


@pytest.mark.integration
def test_a_refused_request_is_a_failure_with_the_servers_answer(server, tmp_path):
    out = tmp_path / "result.json"
    code = yardstick(["bench", "--base-url", server.replace("/v1", "/nowhere"), "--model", "reference",
                      "--concurrency", "1", "--num-requests", "2", "--warmup", "0", "--output", str(out)])
    level = json.loads(out.read_text())["levels"][0]
    assert code == 1 and level["failed"] == 2 and "HTTP 404" in level["errors"][0]


@pytest.mark.unit
def test_no_request_repeats_an_earlier_prompt_so_prefix_caches_cannot_flatter():
    synthetic = level_prompts(Load(concurrency=4, num_requests=50, input_len=64, output_len=8, warmup=2))
    assert len(synthetic) == 52 and len(set(synthetic)) == 52
    assert len({prompt.split()[0] for prompt in synthetic}) > 1 and all(len(p.split()) == 64 for p in synthetic)
    real = level_prompts(Load(concurrency=4, num_requests=5, input_len=0, output_len=8, warmup=1,
                              prompts=("What is 1 + 1?", "What is 2 + 2?")))
    assert real == ["What is 1 + 1?", "What is 2 + 2?", "(1) What is 1 + 1?", "(1) What is 2 + 2?",
                    "(2) What is 1 + 1?", "(2) What is 2 + 2?"]


@pytest.mark.unit
@pytest.mark.parametrize("prompts", [(), ("What is 1 + 1?", "What is 2 + 2?", "What is 3 + 3?")])
def test_no_level_of_a_sweep_repeats_a_prompt_an_earlier_level_sent(prompts):
    """Every level's prompts are its own: an engine that keeps earlier prompts (vLLM's prefix cache, llama.cpp's
    prompt cache in RAM) would otherwise skip the prefill of every level after the first."""
    levels = load_levels([1, 4, 16], [2.0], num_requests=7, input_len=16, output_len=8, warmup=1, prompts=prompts)
    sent = [prompt for level in levels for prompt in level_prompts(level)]
    assert len(levels) == 4 and len(sent) == 4 * 8 and len(set(sent)) == len(sent)
    assert [level.seed for level in load_levels([1, 4], [], seed=3, num_requests=1, input_len=4,
                                                output_len=1)] == [3000, 3001]


@pytest.mark.unit
def test_real_prompt_levels_send_what_the_evaluation_sends():
    variant = load_matrix(ROOT / "tests" / "matrix.test.yaml").variant("tiny-test-w8a16")
    variant = replace(variant, protocol=replace(variant.protocol, system_prompt="You are a careful mathematician."))
    items = pd.DataFrame({"benchmark": ["arith", "arith"], "problem": ["What is 2 + 3?", "What is 7 - 4?"]})
    prompts = serving_prompts(variant, items)
    assert prompts[0].startswith("What is 2 + 3?\n") and variant.protocol.prompt_suffix in prompts[0]
    load = serving_loads(variant, {"temperature": 0.6}, prompts)[0]
    body = request_body(Endpoint("http://x/v1", "m"), level_prompts(load)[0], load)
    assert body["messages"] == [{"role": "system", "content": "You are a careful mathematician."},
                                {"role": "user", "content": prompts[0]}]
    # Synthetic levels measure the engine on prompts of a set length, with nothing before them.
    synthetic = serving_loads(variant, {})[0]
    assert [m["role"] for m in request_body(Endpoint("http://x/v1", "m"), "a b c", synthetic)["messages"]] == ["user"]
