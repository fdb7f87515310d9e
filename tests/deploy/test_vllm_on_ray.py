"""deploy/kuberay/vllm-on-ray.sh, run the way the engine step runs an engine: the leader of a process group of its
own, stopped with its whole group (assets/processes.py). Its `ray` and `vllm` are stand-ins written here (test
instruments): `ray start` leaves a daemon named `raylet` running and returns, as Ray's does, and `vllm` waits to be
stopped. Checked: the raylet outlives the engine that started it, a second engine in the same pod reuses it, and a dead
one is started anew. Every process here is a shell script or `sleep`; the test takes about a second.
"""

import os
import shutil
import signal
import time
from pathlib import Path

import pytest

from assets.processes import all_processes, start_in_own_group, stop_process_group
from tests.conftest import ROOT

pytestmark = pytest.mark.unit

SCRIPT = ROOT / "deploy" / "kuberay" / "vllm-on-ray.sh"
STANDIN_RAY = """#!/bin/sh
echo "ray $*" >> "$CALLS"
if [ "$1" = start ]; then
    "$STANDINS/raylet" 600 >/dev/null 2>&1 &
fi
"""
STANDIN_VLLM = """#!/bin/sh
echo "vllm $*" >> "$CALLS"
exec sleep 600
"""


def raylets() -> list[int]:
    return [stat.pid for stat in all_processes() if stat.name == "raylet" and stat.alive]


def calls(log: Path) -> list[str]:
    return log.read_text().splitlines() if log.exists() else []


def wait_for(condition, what: str, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


@pytest.fixture
def pod(tmp_path):
    """A stand-in pod: `ray`, `vllm` and a `raylet` (sleep under that name) first on PATH; ends its raylets after."""
    standins = tmp_path / "bin"
    standins.mkdir()
    for name, text in (("ray", STANDIN_RAY), ("vllm", STANDIN_VLLM)):
        (standins / name).write_text(text)
        (standins / name).chmod(0o755)
    shutil.copy(shutil.which("sleep"), standins / "raylet")
    env = {**os.environ, "PATH": f"{standins}:{os.environ['PATH']}", "RAY_ADDRESS": "yardstick-ray-head-svc:6379",
           "CALLS": str(tmp_path / "calls"), "STANDINS": str(standins)}
    assert not raylets(), "a raylet already runs on this host; the stand-in pod needs it to itself"
    yield env, tmp_path / "calls"
    for pid in raylets():
        os.kill(pid, signal.SIGKILL)


def run_engine(env: dict, log: Path) -> None:
    """Start an engine with the script, wait until vLLM runs, and stop it with its group, as the engine step does."""
    served = calls(log).count("vllm serve /models/r1") + 1
    engine = start_in_own_group(["sh", str(SCRIPT), "serve", "/models/r1"], env=env)
    wait_for(lambda: calls(log).count("vllm serve /models/r1") == served or engine.poll() is not None, "vllm")
    assert engine.poll() is None, f"the script exited {engine.returncode}: {calls(log)}"
    stop_process_group(engine, grace_s=2)


def test_the_raylet_outlives_its_engine_and_is_reused(pod):
    env, log = pod
    run_engine(env, log)
    started = raylets()
    assert len(started) == 1, "ray start left no raylet running"
    run_engine(env, log)
    assert raylets() == started, "stopping the engine's process group ended the pod's raylet"
    assert [call for call in calls(log) if call.startswith("ray start")] == [
        "ray start --address=yardstick-ray-head-svc:6379 --disable-usage-stats"]


def test_a_dead_raylet_is_started_anew(pod):
    env, log = pod
    run_engine(env, log)
    (dead,) = raylets()
    os.kill(dead, signal.SIGKILL)
    wait_for(lambda: dead not in raylets(), "the raylet to die")
    run_engine(env, log)
    assert len(raylets()) == 1 and dead not in raylets()
    ray_calls = [call for call in calls(log) if call.startswith("ray ")]
    assert ray_calls[-2:] == ["ray stop --force", "ray start --address=yardstick-ray-head-svc:6379 "
                              "--disable-usage-stats"]


def test_without_ray_address_it_refuses_to_start(pod):
    env, log = pod
    env = {key: value for key, value in env.items() if key != "RAY_ADDRESS"}
    engine = start_in_own_group(["sh", str(SCRIPT), "serve", "/models/r1"], env=env)
    assert engine.wait(timeout=10) == 2
    assert not calls(log)
