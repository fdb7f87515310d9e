"""The CPU engine for real: start, ready, sampling as the protocol says, stop with nothing left behind; and an
engine that fails to start says why."""

import os
import sys

import httpx
import pytest

from assets.matrix import EngineSpec
from resources.engines import EngineError, EngineResource
from tests.conftest import engine_processes, live_processes
from tests.instruments.vllm_standin import STANDIN_VERSION

pytestmark = pytest.mark.integration

SPEC = EngineSpec(kind="transformers", options={"device": "cpu", "startup_timeout_s": 120, "cb_num_blocks": 64,
                                                 "cb_max_batch_tokens": 256})
# Far from what the tiny model was trained on, so its next-token distribution is wide and samples differ.
PROMPT = [{"role": "user", "content": "Describe the history of the printing press in a few sentences."}]


def _complete(deployment, max_tokens: int, **sampling) -> dict:
    body = {"model": deployment.served_model, "messages": PROMPT, "max_tokens": max_tokens, **sampling}
    response = httpx.post(f"{deployment.base_url}/chat/completions", json=body, timeout=120)
    response.raise_for_status()
    return response.json()


def _text(reply: dict) -> str:
    message = reply["choices"][0]["message"]
    return (message.get("reasoning_content") or "") + (message.get("content") or "")


def assert_within_limit(reply: dict, max_tokens: int) -> None:
    """The engine's guarantee: at most max_tokens, and fewer only when the model itself stopped (whether the tiny
    model says EOS early depends on the CPU's floating-point path, so the count itself is not asserted)."""
    tokens, finish = reply["usage"]["completion_tokens"], reply["choices"][0]["finish_reason"]
    assert 1 <= tokens <= max_tokens and (tokens == max_tokens or finish == "stop"), (tokens, finish)


def test_sampling_varies_between_samples_and_max_tokens_is_per_request(tiny_model, tmp_path):
    sampling = {"temperature": 0.6, "top_p": 0.95}
    with EngineResource(log_dir=str(tmp_path)).deploy(SPEC, str(tiny_model), "tiny", "sampled",
                                                      warmup_sampling=sampling) as deployment:
        pid = deployment.pid
        samples = {_text(_complete(deployment, 12, **sampling)) for _ in range(6)}
        short = _complete(deployment, 3, **sampling)
    assert len(samples) > 1, "k samples at temperature 0.6 were all identical"
    assert_within_limit(short, 3)   # the limit is the request's own, not the warm-up's
    assert engine_processes(str(tiny_model)) == [] and pid not in engine_processes("serve")


def test_greedy_engine_repeats_itself(tiny_model, tmp_path):
    greedy = {"temperature": 0.0}
    with EngineResource(log_dir=str(tmp_path)).deploy(SPEC, str(tiny_model), "tiny", "greedy",
                                                      warmup_sampling=greedy) as deployment:
        replies = [_complete(deployment, 12, **greedy) for _ in range(3)]
    assert len({_text(reply) for reply in replies}) == 1
    for reply in replies:
        assert_within_limit(reply, 12)
    assert engine_processes(str(tiny_model)) == []


def test_engine_that_fails_to_start_shows_its_log_tail(tmp_path):
    broken = tmp_path / "broken-model"
    broken.mkdir()
    (broken / "config.json").write_text('{"model_type": "no-such-architecture"}')
    engine = EngineResource(log_dir=str(tmp_path / "logs"))
    spec = EngineSpec(kind="transformers", options={"device": "cpu", "startup_timeout_s": 120})
    with pytest.raises(EngineError) as raised, engine.deploy(spec, str(broken), served_name="broken",
                                                             log_name="broken", warmup_sampling={"temperature": 0.6}):
        pass
    message = str(raised.value)
    assert "last lines of" in message and "broken.log" in message
    last_log_line = (tmp_path / "logs" / "broken.log").read_text().strip().splitlines()[-1]
    assert "exited with code" in message and last_log_line in message
    assert engine_processes(str(broken)) == []


VLLM_STANDIN = f"{sys.executable} -m tests.instruments.vllm_standin"
VLLM_SPEC = EngineSpec(kind="vllm", options={"tensor_parallel_size": 2, "max_model_len": 4096,
                                             "startup_timeout_s": 60})


def test_vllm_launcher_lifecycle_against_a_real_server_process(tmp_path, monkeypatch):
    """The vLLM path of the launcher, run against a stand-in server process that takes vLLM's argv: it
    starts, is ready once /health and /v1/models answer, serves, logs, and leaves no process behind, even
    the child it started."""
    monkeypatch.setenv("STANDIN_CHILD", "1")
    model = tmp_path / "model"
    model.mkdir()
    engine = EngineResource(log_dir=str(tmp_path / "logs"), vllm_command=VLLM_STANDIN)
    with engine.deploy(VLLM_SPEC, str(model), served_name="my-variant", log_name="standin") as deployment:
        assert deployment.engine == "vllm" and deployment.served_model == "my-variant"
        assert deployment.engine_version == STANDIN_VERSION   # what the running server says, not what is installed here
        assert deployment.argv[3:5] == ["serve", str(model)]
        models = httpx.get(f"{deployment.base_url}/models", timeout=10).json()
        assert [m["id"] for m in models["data"]] == ["my-variant"]
        reply = httpx.post(f"{deployment.base_url}/chat/completions", timeout=30, json={
            "model": "my-variant", "max_tokens": 4, "messages": [{"role": "user", "content": "hi"}]}).json()
        assert reply["usage"]["completion_tokens"] == 4
        group = os.getpgid(deployment.pid)
    log = (tmp_path / "logs" / "standin.log").read_text()
    assert "--tensor-parallel-size 2" in log and "--max-model-len 4096" in log
    assert live_processes(group=group) == []   # nothing of the group is left running, the child included


def test_vllm_out_of_memory_at_load_says_what_to_change(tmp_path, monkeypatch):
    monkeypatch.setenv("STANDIN_FAIL", "oom")
    model = tmp_path / "model"
    model.mkdir()
    engine = EngineResource(log_dir=str(tmp_path / "logs"), vllm_command=VLLM_STANDIN)
    with pytest.raises(EngineError) as raised, engine.deploy(VLLM_SPEC, str(model), "v", "oom"):
        pass
    message = str(raised.value)
    assert "exited with code 1 before it was ready" in message
    assert "No available memory for the cache blocks" in message        # the log's tail
    assert "ran out of memory while loading" in message and "yardstick plan VARIANT" in message
