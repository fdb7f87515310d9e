"""The llama.cpp launcher (resources/launchers/llamacpp.py): its command line, and llama.cpp for real (the build
`make llama.cpp` caches) serving the tiny model's GGUF file.

What is asserted is what the engine and the launcher guarantee (ready, named, versioned with its commit, seeded
samples repeat, the reasoning split at the end-of-reasoning tag, exact lengths under `ignore_eos`, nothing left
running), never what the model happens to say.
"""

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import httpx
import openai
import pytest

from assets.benchmarks.prompts import build_messages
from assets.benchmarks.synthetic import arithmetic_items
from assets.engine.loadtest import Endpoint, Load, run_level
from assets.matrix import EngineSpec, load_matrix
from assets.models.gguf import DEFAULT_BUILD
from assets.models.tiny import THINK_CLOSE, THINK_OPEN
from pipelines import settings
from resources.engines import EngineError, EngineResource
from resources.launchers import DeployRequest, llamacpp
from tests.conftest import live_processes

SPEC = EngineSpec("llamacpp", {"parallel": 8, "max_model_len": 1024, "startup_timeout_s": 120})
PROTOCOL = load_matrix().variant("tiny-test").protocol
SAMPLING = {"temperature": 0.6, "top_p": 0.95}


def engine() -> EngineResource:
    return EngineResource(log_dir=str(settings.home() / "test-logs"), cpu_threads=2)


@pytest.fixture(scope="module")
def served(tiny_gguf):
    """One llama-server for the module: (deployment, process group); afterwards nothing of it may be left."""
    with engine().deploy(SPEC, str(tiny_gguf), served_name="tiny-llamacpp", log_name="test-llamacpp-engine",
                         warmup_sampling=SAMPLING) as deployment:
        group = os.getpgid(deployment.pid)
        yield deployment, group
    assert live_processes(group=group) == [], "llama-server outlived the stop"


def chat(deployment, messages, **body) -> dict:
    response = httpx.post(f"{deployment.base_url}/chat/completions", timeout=300,
                          json={"model": deployment.served_model, "messages": messages, **body})
    response.raise_for_status()
    return response.json()


def problem(index: int) -> list[dict]:
    return build_messages(arithmetic_items(index + 1)[index]["problem"], PROTOCOL)


@pytest.mark.integration
def test_ready_under_its_name_with_the_version_and_commit_that_run(served):
    deployment, _ = served
    commit = (DEFAULT_BUILD / "src" / "COMMIT").read_text()[:9]
    assert deployment.engine == "llamacpp" and deployment.engine_version.startswith("llama.cpp ")
    assert f"commit {commit}" in deployment.engine_version
    assert deployment.startup_seconds > 0
    models = httpx.get(f"{deployment.base_url}/models", timeout=10).json()
    assert [model["id"] for model in models["data"]] == ["tiny-llamacpp"]
    for flag in ("--jinja", "--metrics"):
        assert flag in deployment.argv
    assert deployment.argv[deployment.argv.index("--parallel") + 1] == "8"
    assert deployment.argv[deployment.argv.index("-c") + 1] == str(8 * 1024)   # every slot its max_model_len


@pytest.mark.integration
def test_a_seed_reproduces_a_sample_exactly_also_batched(served):
    """Each sample's own seed gives the same reply alone and batched with seven others in the server's slots."""
    deployment, _ = served
    body = {**SAMPLING, "max_tokens": 48}

    async def sample_all() -> list[dict]:
        async with httpx.AsyncClient(timeout=300) as client:
            async def one(index: int) -> dict:
                response = await client.post(f"{deployment.base_url}/chat/completions", json={
                    "model": deployment.served_model, "messages": problem(index), "seed": 1000 + index, **body})
                return response.raise_for_status().json()["choices"][0]["message"]
            return await asyncio.gather(*(one(index) for index in range(8)))

    batched = asyncio.run(sample_all())
    alone = [chat(deployment, problem(i), seed=1000 + i, **body)["choices"][0]["message"] for i in (0, 5)]
    assert asyncio.run(sample_all()) == batched
    assert alone == [batched[0], batched[5]]


@pytest.mark.integration
def test_the_reasoning_is_split_at_the_end_of_reasoning_tag(served):
    """The same prompt and seed through the raw completion endpoint give the text the model wrote: the chat reply
    must have everything before </think> as `reasoning_content` and what follows as `content`."""
    deployment, _ = served
    root = deployment.base_url.removesuffix("/v1")
    for index in range(6):
        messages = problem(index)
        reply = chat(deployment, messages, max_tokens=64, seed=index, **SAMPLING)["choices"][0]["message"]
        prompt = httpx.post(f"{root}/apply-template", json={"messages": messages}, timeout=30).json()["prompt"]
        assert prompt.endswith(f"{THINK_OPEN}\n")
        raw = httpx.post(f"{root}/completion", timeout=300, json={
            "prompt": prompt, "n_predict": 64, "seed": index, **SAMPLING}).json()["content"]
        if THINK_CLOSE in raw:
            reasoning, answer = raw.split(THINK_CLOSE, 1)
            assert reply["reasoning_content"].strip() == reasoning.strip()
            assert (reply["content"] or "").strip() == answer.strip()
        else:   # never closed: all of it is reasoning, no answer
            assert not reply.get("content") and reply["reasoning_content"].strip() == raw.strip()


@pytest.mark.integration
def test_exact_length_load_level(served):
    deployment, _ = served
    endpoint = Endpoint(deployment.base_url, deployment.served_model)
    load = Load(concurrency=4, num_requests=8, input_len=32, output_len=24, sampling={"temperature": 0.6},
                exact_output_len=SPEC.settings.FORCES_OUTPUT_LENGTH,
                per_chunk_usage=SPEC.settings.USAGE_PER_CHUNK)
    timings, duration = asyncio.run(run_level(endpoint, load))
    assert duration > 0 and len(timings) == 8
    for timing in timings:
        assert timing.ok, timing.error
        assert timing.output_tokens == 24 and timing.prompt_tokens > 0
        assert timing.ttft_ms <= timing.e2el_ms


@pytest.mark.integration
def test_a_file_llamacpp_cannot_load_fails_with_its_log_tail(tmp_path):
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(b"not a gguf file")
    with pytest.raises(EngineError) as raised, engine().deploy(SPEC, str(broken), "broken", "test-llamacpp-broken"):
        pass
    log = settings.home() / "test-logs" / "test-llamacpp-broken.log"
    assert "exited with code" in str(raised.value) and str(log) in str(raised.value)
    assert live_processes(str(broken)) == []


@pytest.mark.unit
def test_a_checkpoint_that_is_not_gguf_is_refused_before_anything_starts(tmp_path):
    request = DeployRequest(model_path=str(tmp_path), served_name="m", log_path=tmp_path / "l.log")
    with pytest.raises(EngineError, match="llama.cpp serves GGUF files"):
        llamacpp.launch(engine(), SPEC.settings, request, 8000)


KILLED_STEP = textwrap.dedent("""
    import os, sys, time
    from assets.matrix import EngineSpec
    from resources.engines import EngineResource
    engine = EngineResource(log_dir=sys.argv[2], cpu_threads=2)
    with engine.deploy(EngineSpec("llamacpp", {"parallel": 2}), sys.argv[1], "tiny", "killed-step") as deployment:
        print(os.getpgid(deployment.pid), flush=True)
        time.sleep(600)
""")


@pytest.mark.integration
def test_a_sigkilled_step_leaves_no_llamacpp_process(tiny_gguf, tmp_path):
    step = subprocess.Popen([sys.executable, "-c", KILLED_STEP, str(tiny_gguf), str(tmp_path)],
                            stdout=subprocess.PIPE, text=True, cwd=os.getcwd())
    try:
        line = step.stdout.readline()
        log = (tmp_path / "killed-step.log").read_text() if (tmp_path / "killed-step.log").exists() else ""
        assert line.strip(), f"the step died before llama-server was ready:\n{log}"
        group = int(line)
        assert live_processes(group=group)
        step.send_signal(signal.SIGKILL)
        step.wait()
        deadline = time.monotonic() + 30
        while live_processes(group=group) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert live_processes(group=group) == []
    finally:
        step.kill()


def _flag(argv: list[str], flag: str) -> str | None:
    return argv[argv.index(flag) + 1] if flag in argv else None


@pytest.mark.unit
def test_argv_offloads_every_layer_on_gpus_and_none_on_a_cpu():
    on_cpu = llamacpp.argv("llama-server", "/m.gguf", "m", EngineSpec("llamacpp", {}).settings, "127.0.0.1", 1, 8, 2)
    assert _flag(on_cpu, "--n-gpu-layers") == "0" and _flag(on_cpu, "--threads") == "2"
    assert _flag(on_cpu, "--reasoning-format") == "deepseek" and _flag(on_cpu, "-c") == str(8 * 4096)
    gpus = EngineSpec("llamacpp", {"device": "cuda", "tensor_split": [1, 1], "rpc": ["10.0.0.2:50052"],
                                   "max_model_len": 8192, "threads": 4}).settings
    on_gpus = llamacpp.argv("docker run ghcr.io/ggml-org/llama.cpp:server-cuda", "/m.gguf", "m", gpus, "0.0.0.0",
                            8080, 4, 2)
    assert on_gpus[:3] == ["docker", "run", "ghcr.io/ggml-org/llama.cpp:server-cuda"]
    assert _flag(on_gpus, "--n-gpu-layers") == "999" and _flag(on_gpus, "--tensor-split") == "1,1"
    assert _flag(on_gpus, "--rpc") == "10.0.0.2:50052" and _flag(on_gpus, "-c") == str(4 * 8192)
    assert _flag(on_gpus, "--threads") == "4" and gpus.node_count == 2 and gpus.devices_spanned == 2


@pytest.mark.unit
def test_yardstick_llamacpp_server_selects_another_build(monkeypatch, tmp_path):
    from assets.models.gguf import LlamaCppError, llamacpp_tool

    monkeypatch.setenv("YARDSTICK_LLAMACPP_SERVER", "/opt/llama/bin/llama-server --verbose")
    assert llamacpp_tool("server") == "/opt/llama/bin/llama-server --verbose"
    monkeypatch.delenv("YARDSTICK_LLAMACPP_SERVER")
    monkeypatch.setattr("assets.models.gguf.DEFAULT_BUILD", tmp_path)
    with pytest.raises(LlamaCppError, match="make llama.cpp"):
        llamacpp_tool("server")


README = Path(__file__).resolve().parents[3] / "README.md"


def readme_ollama_variant() -> str:
    """The Ollama example variant as the README shows it."""
    text = README.read_text()
    block = text[text.index("<!-- ollama-example"):]
    return block[block.index("```yaml\n") + 8:block.index("```\n", block.index("```yaml"))]


@pytest.mark.integration
def test_the_readmes_ollama_variant_evaluates_through_llama_server(served, tmp_path):
    """llama-server stands in for Ollama (llama.cpp is what Ollama runs): the README's variant, pointed at it, loads
    as an external endpoint and its samples come back through the project's own request path, seeded, with the
    reasoning apart."""
    from assets.engine.generation import SampleRequest, generate
    from assets.engine.requests import generation_sampling

    deployment, _ = served
    variant_yaml = (readme_ollama_variant().replace("http://127.0.0.1:11434/v1", deployment.base_url)
                    .replace('"deepseek-r1:7b"', deployment.served_model))
    matrix = tmp_path / "matrix.yaml"
    matrix.write_text("defaults:\n  benchmarks: {arith: 2}\n  protocol: {preset: deepseek-r1, k: 1, max_tokens: 48}\n"
                      f"variants:\n{variant_yaml}")
    variant = load_matrix(matrix).variant("r1-qwen-7b-ollama")
    assert variant.engine.kind == "external" and variant.hardware == "cpu-2vcpu"
    with engine().deploy(variant.engine, "", served_name="", log_name="ollama-stand-in") as endpoint:
        client = openai.AsyncOpenAI(base_url=endpoint.base_url, api_key=endpoint.api_key)
        requests = [SampleRequest("arith", str(i), 0, problem(i), seed=7 + i) for i in range(3)]
        rows: list[dict] = []
        report = asyncio.run(generate(client, endpoint.served_model, requests, generation_sampling(variant), 2,
                                      rows.extend))
    assert report.finished == 3 and sorted(row["seed"] for row in rows) == [7, 8, 9]
    assert all(THINK_CLOSE not in row["response"] for row in rows)
