"""The serving loop (assets/engine/serving.py) that `yardstick bench` and the `serving_benchmark` asset share.

Tiers per test: choosing the GPUs to watch is `unit`; the loop against the reference server (a process of its
own) is `integration`.
"""

import json
from dataclasses import replace
from pathlib import Path

import pytest

from assets.engine import gpu_telemetry
from assets.engine.gpu_telemetry import GPU_COLUMNS, MEASURED
from assets.engine.loadtest import Endpoint
from assets.engine.serving import endpoint_gpus, serving_rows
from assets.matrix import load_matrix
from pipelines.cli import main as yardstick
from resources.ports import port_listeners
from tests.engine.test_gpu_telemetry import fake_nvml
from tests.instruments.reference_server import running_reference_server

ROOT = Path(__file__).resolve().parents[2]
GPU_ROW_COLUMNS = {*GPU_COLUMNS, "gpu_kwh_per_million_output_tokens"}


@pytest.mark.unit
@pytest.mark.parametrize(("base_url", "environ", "watched"), [
    ("http://127.0.0.1:8000/v1", {}, None),                                # every GPU NVML sees
    ("http://localhost:8000/v1", {"CUDA_VISIBLE_DEVICES": "2,3"}, [2, 3]),
    ("http://[::1]:8000/v1", {"CUDA_VISIBLE_DEVICES": "1"}, [1]),
    ("http://0.0.0.0:8000/v1", {"CUDA_VISIBLE_DEVICES": "0"}, [0]),
    ("https://api.example.com/v1", {"CUDA_VISIBLE_DEVICES": "0"}, "the endpoint is on api.example.com, not on this "
                                                                  "host: its GPUs are not ours to read"),
    ("http://10.0.0.7:8000/v1", {}, "the endpoint is on 10.0.0.7, not on this host: its GPUs are not ours to read"),
    ("http://127.0.0.1:8000/v1", {"CUDA_VISIBLE_DEVICES": "GPU-8f1c"},
     "CUDA_VISIBLE_DEVICES=GPU-8f1c names GPUs by UUID, which this reader does not map to NVML indices"),
])
def test_bench_watches_the_gpus_of_an_endpoint_on_this_host_only(base_url, environ, watched):
    assert endpoint_gpus(base_url, environ) == watched


@pytest.fixture(scope="module")
def server():
    with running_reference_server(ttft_ms=5.0, tpot_ms=1.0, slots=8) as base_url:
        yield base_url


@pytest.mark.integration
def test_bench_and_serving_benchmark_measure_through_the_same_loop(server, tmp_path, monkeypatch):
    """Both read the GPUs (here two fake ones) around each level and report them in the same columns."""
    monkeypatch.setattr(gpu_telemetry, "_load_nvml", lambda: fake_nvml(count=2))
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")
    out = tmp_path / "result.json"
    assert yardstick(["bench", "--base-url", server, "--model", "reference", "--concurrency", "2",
                      "--num-requests", "4", "--warmup", "0", "--input-len", "8", "--output-len", "64",
                      "--output", str(out)]) == 0
    bench_gpus = json.loads(out.read_text())["levels"][0]["gpu"]

    variant = load_matrix(ROOT / "pipelines" / "matrix.gpu.yaml").variant("r1-qwen-32b-bf16-2xh100")   # 2 GPUs
    variant = replace(variant, serving=replace(variant.serving, concurrency=[2], request_rates=[],
                                               requests_per_level=4, warmup_requests=0, input_len=8, output_len=64))
    logged = []
    levels, requests = serving_rows(Endpoint(server, "reference"), variant, (), {"CUDA_VISIBLE_DEVICES": "0,1"},
                                    logged.append, port_listeners)

    assert set(bench_gpus) == GPU_ROW_COLUMNS <= set(levels[0])
    for row in (bench_gpus, levels[0]):
        assert row["gpu_telemetry"] == MEASURED and row["gpu_count"] == 2
        assert row["gpu_power_w_max"] == pytest.approx(500.0)   # the fake GPUs draw 300 W and 200 W
    assert len(requests) == 4 and all(request["ok"] for request in requests)
    assert logged[0] == "load level 1/1: concurrency 2, 4 requests" and f"GPU telemetry: {MEASURED}" in logged
