"""The DeviceResource (resources/devices.py): pinned GPUs refused, the engine given exactly the GPUs claimed."""

import sys
from pathlib import Path

import pytest

from assets.engine.devices import (
    DeviceClaimError,
)
from assets.matrix import EngineSpec
from resources.devices import DeviceResource
from resources.engines import EngineResource

pytestmark = pytest.mark.integration


POLL_S = 0.01

VLLM_STANDIN = f"{sys.executable} -m tests.instruments.vllm_standin"


def test_an_engine_env_that_pins_gpus_is_refused(tmp_path):
    devices = DeviceResource(claims_dir=str(tmp_path), devices="0,1")
    spec = EngineSpec(kind="vllm", options={"env": {"CUDA_VISIBLE_DEVICES": "0"}})
    with pytest.raises(DeviceClaimError, match="remove it from the variant's engine settings"), \
            devices.claim(spec, "variant pinned", lambda _line: None):
        pass


def _environ(pid: int) -> dict[str, str]:
    entries = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return dict(entry.decode().split("=", 1) for entry in entries if b"=" in entry)


@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="reads a process's environment from /proc")
def test_the_engine_process_sees_exactly_the_claimed_gpus(tmp_path, monkeypatch):
    """Through the resources the engine step uses: three GPUs of the simulated host are taken, a variant with
    tensor_parallel_size 2 gets the next two, and the started server (a vLLM stand-in) is given those two."""
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1,2,3,4,5,6,7")   # what the step's own process sees
    devices = DeviceResource(claims_dir=str(tmp_path / "claims"), devices="0,1,2,3,4,5,6,7", poll_s=POLL_S)
    spec = EngineSpec(kind="vllm", options={"tensor_parallel_size": 2, "startup_timeout_s": 60})
    model = tmp_path / "model"
    model.mkdir()
    engine = EngineResource(log_dir=str(tmp_path / "logs"), vllm_command=VLLM_STANDIN)
    said: list[str] = []
    with devices.claims().claim(3, "another variant"), devices.claim(spec, "variant tp2", said.append) as env, \
            engine.deploy(spec, str(model), served_name="tp2", log_name="standin", device_env=env) as deployment:
        assert env == {"CUDA_VISIBLE_DEVICES": "3,4"}
        assert _environ(deployment.pid)["CUDA_VISIBLE_DEVICES"] == "3,4"
    assert said == ["claimed GPU(s) 3, 4 of 8 GPUs (0, 1, 2, 3, 4, 5, 6, 7; from YARDSTICK_DEVICES)"]
