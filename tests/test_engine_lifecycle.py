"""The CPU engine for real: start, ready, sampling as the protocol says, stop with nothing left behind."""

import httpx
import pytest

from assets.models.tiny import ensure_tiny_model
from pipelines.matrix import EngineSpec
from resources.engines import EngineResource
from tests.conftest import STATE, engine_processes

SPEC = EngineSpec(kind="transformers", options={"device": "cpu", "startup_timeout_s": 120, "cb_num_blocks": 64,
                                                 "cb_max_batch_tokens": 256})
# Far from what the tiny model was trained on, so its next-token distribution is wide and samples differ.
PROMPT = [{"role": "user", "content": "Describe the history of the printing press in a few sentences."}]


@pytest.fixture(scope="module")
def tiny_model():
    return str(ensure_tiny_model(STATE / "models" / "tiny-r1-qwen2"))


def _complete(deployment, max_tokens: int, **sampling) -> dict:
    body = {"model": deployment.served_model, "messages": PROMPT, "max_tokens": max_tokens, **sampling}
    response = httpx.post(f"{deployment.base_url}/chat/completions", json=body, timeout=120)
    response.raise_for_status()
    return response.json()


def _text(reply: dict) -> str:
    message = reply["choices"][0]["message"]
    return (message.get("reasoning_content") or "") + (message.get("content") or "")


def test_sampling_varies_between_samples_and_max_tokens_is_per_request(tiny_model, tmp_path):
    sampling = {"temperature": 0.6, "top_p": 0.95}
    with EngineResource(log_dir=str(tmp_path)).deploy(SPEC, tiny_model, "tiny", "sampled",
                                                      warmup_sampling=sampling) as deployment:
        pid = deployment.pid
        samples = {_text(_complete(deployment, 12, **sampling)) for _ in range(6)}
        short = _complete(deployment, 3, **sampling)
    assert len(samples) > 1, "k samples at temperature 0.6 were all identical"
    assert short["usage"]["completion_tokens"] == 3
    assert engine_processes(tiny_model) == [] and pid not in engine_processes("serve")


def test_greedy_engine_repeats_itself(tiny_model, tmp_path):
    greedy = {"temperature": 0.0}
    with EngineResource(log_dir=str(tmp_path)).deploy(SPEC, tiny_model, "tiny", "greedy",
                                                      warmup_sampling=greedy) as deployment:
        replies = [_complete(deployment, 12, **greedy) for _ in range(3)]
    assert len({_text(reply) for reply in replies}) == 1
    assert all(reply["usage"]["completion_tokens"] == 12 for reply in replies)
    assert engine_processes(tiny_model) == []
