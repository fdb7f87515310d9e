"""The CPU engine for real: start, ready, sampling as the protocol says, stop with nothing left behind; an engine
that fails to start says why; and a server that is not the one started (on a busy port) is never taken for it."""

import http.server
import json
import os
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from assets.matrix import EngineSpec
from resources.engines import EngineError, EngineResource
from resources.launchers.server import UNREADY_STOP_GRACE_S
from resources.ports import foreign_listeners
from tests.conftest import engine_processes, live_processes
from tests.instruments.vllm_standin import STANDIN_VERSION

needs_proc = pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="reads sockets' owners from Linux's /proc")

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


@pytest.mark.integration
def test_sampling_varies_between_samples_and_max_tokens_is_per_request(tiny_model, tmp_path):
    # Hot enough that the tiny model's replies differ whatever it has learnt: at 0.6 its peaked distribution gave
    # six identical replies once in a while (what the engine guarantees is sampling, not how varied a model is).
    sampling = {"temperature": 2.0, "top_p": 1.0}
    with EngineResource(log_dir=str(tmp_path)).deploy(SPEC, str(tiny_model), "tiny", "sampled",
                                                      warmup_sampling=sampling) as deployment:
        pid = deployment.pid
        samples = {_text(_complete(deployment, 12, **sampling)) for _ in range(6)}
        short = _complete(deployment, 3, **sampling)
    assert len(samples) > 1, "k samples at temperature 2 were all identical"
    assert_within_limit(short, 3)   # the limit is the request's own, not the warm-up's
    assert engine_processes(str(tiny_model)) == [] and pid not in engine_processes("serve")


@pytest.mark.integration
def test_greedy_engine_repeats_itself(tiny_model, tmp_path):
    greedy = {"temperature": 0.0}
    with EngineResource(log_dir=str(tmp_path)).deploy(SPEC, str(tiny_model), "tiny", "greedy",
                                                      warmup_sampling=greedy) as deployment:
        replies = [_complete(deployment, 12, **greedy) for _ in range(3)]
    assert len({_text(reply) for reply in replies}) == 1
    for reply in replies:
        assert_within_limit(reply, 12)
    assert engine_processes(str(tiny_model)) == []


@pytest.mark.integration
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


@pytest.mark.integration
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
        if Path("/proc/net/tcp").exists():   # readiness could tell the server is the one started, not only skip
            assert foreign_listeners("127.0.0.1", httpx.URL(deployment.base_url).port, deployment.pid) == set()
        group = os.getpgid(deployment.pid)
    log = (tmp_path / "logs" / "standin.log").read_text()
    assert "--tensor-parallel-size 2" in log and "--max-model-len 4096" in log
    assert live_processes(group=group) == []   # nothing of the group is left running, the child included


@pytest.mark.timing   # judged against the launcher's own bound: the grace it gives, plus the start-up allowed
def test_an_engine_stopped_while_it_loads_is_gone_within_a_short_grace(tmp_path, monkeypatch):
    """Not ready in time (or interrupted) while it loads, deaf to TERM: it is killed after a short grace, not the
    30 s a ready vLLM gets to shut down cleanly, and nothing of it is left."""
    monkeypatch.setenv("STANDIN_LOAD_S", "120")
    model = tmp_path / "model"
    model.mkdir()
    engine = EngineResource(log_dir=str(tmp_path / "logs"), vllm_command=VLLM_STANDIN)
    spec = EngineSpec("vllm", {**VLLM_SPEC.options, "startup_timeout_s": 2})
    started = time.monotonic()
    with pytest.raises(EngineError, match="was not ready .* after 2 s"), \
            engine.deploy(spec, str(model), served_name="v", log_name="loading"):
        pass
    assert time.monotonic() - started < 2 + UNREADY_STOP_GRACE_S + 8
    assert not live_processes("tests.instruments.vllm_standin", str(model))


@pytest.mark.integration
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


class AnswersEverything(http.server.BaseHTTPRequestHandler):
    """A test instrument, not an engine: another server on the engine's port, answering every GET with 200 and a
    model list naming someone else's model, as a stray server left running would."""

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        body = json.dumps({"object": "list", "data": [{"id": "someone-else"}]}).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def stray_server() -> int:
    """The port of an `AnswersEverything` server listening in this process."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), AnswersEverything)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


@pytest.mark.integration
def test_a_configured_port_already_in_use_is_refused_before_the_engine_starts(tmp_path, stray_server):
    model = tmp_path / "model"
    model.mkdir()
    engine = EngineResource(log_dir=str(tmp_path / "logs"), vllm_command=VLLM_STANDIN)
    spec = EngineSpec(kind="vllm", options={**VLLM_SPEC.options, "port": stray_server})
    with pytest.raises(EngineError) as raised, engine.deploy(spec, str(model), "v", "busy"):
        pass
    message = str(raised.value)
    assert f"port {stray_server} on 127.0.0.1 is already in use" in message
    if Path("/proc/net/tcp").exists():
        assert f"pid {os.getpid()} (" in message   # who listens there
    assert "set another `port:`" in message and "leave `port` unset" in message
    assert not (tmp_path / "logs" / "busy.log").exists()
    assert live_processes("vllm_standin") == [] and live_processes(str(model)) == []


@pytest.mark.integration
@needs_proc
def test_a_server_that_took_the_port_is_not_taken_for_the_engine(tmp_path, stray_server, monkeypatch):
    """The race: the free port picked for the engine is taken by another server before the engine listens on it
    (here the engine never does: its command only sleeps); the other server answers every readiness check."""
    monkeypatch.setattr("resources.launchers.server.free_port", lambda host: stray_server)
    model = tmp_path / "model"
    model.mkdir()
    sleeper = f"{sys.executable} -c 'import time; time.sleep(120)'"
    engine = EngineResource(log_dir=str(tmp_path / "logs"), vllm_command=sleeper)
    with pytest.raises(EngineError) as raised, engine.deploy(VLLM_SPEC, str(model), "v", "raced"):
        pass
    message = str(raised.value)
    assert f"the server answering on 127.0.0.1:{stray_server} is not vLLM" in message
    assert f"pid {os.getpid()} (" in message
    assert live_processes("time.sleep(120)", str(model)) == []   # the engine that was started is stopped


@pytest.mark.unit
def test_engine_with_missing_model_path(tmp_path):
    engine = EngineResource(log_dir=str(tmp_path))
    with pytest.raises(EngineError, match="does not exist"), engine.deploy(
            EngineSpec(kind="transformers"), str(tmp_path / "absent"), "x", "x"):
        pass
