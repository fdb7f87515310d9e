"""A host's devices are claimed per engine: on a simulated 8-GPU host (a fake device list), claims made at once
by many threads and processes never overlap, a claim is freed however its holder ends (an exception, SIGKILL), a
claim that waits starts once enough devices free up, one larger than the host is refused at once, and the engine
is given exactly the devices claimed."""

import json
import multiprocessing
import os
import random
import signal
import threading
import time
from pathlib import Path

import pytest

from assets.engine.devices import (
    DeviceClaimError,
    DeviceClaims,
    Host,
    claimed_env,
    devices_needed,
    discover_host,
)
from assets.matrix import EngineSpec

EIGHT_GPUS = Host(tuple(str(index) for index in range(8)), gpus=True, source="a simulated host")

POLL_S = 0.01


def _claims(folder: Path) -> DeviceClaims:
    return DeviceClaims(folder, EIGHT_GPUS, poll_s=POLL_S)


@pytest.mark.unit
@pytest.mark.parametrize(("listed", "visible", "cores", "per_engine", "nvml", "devices", "gpus"), [
    ("0,1,2,3,4,5,6,7", None, 2, 0, 0, [str(i) for i in range(8)], True),   # the override wins over everything
    ("2, 5", "0,1", 2, 0, 4, ["2", "5"], True),
    ("", "3,1", 2, 0, 8, ["3", "1"], True),          # a process confined to some GPUs uses those
    ("", "GPU-8a1b,GPU-77c0", 2, 0, 8, ["GPU-8a1b", "GPU-77c0"], True),
    ("", None, 2, 0, 4, ["0", "1", "2", "3"], True),   # every GPU NVML sees
    ("", "", 2, 0, 0, ["cpu0"], False),               # no GPU: vLLM's CPU build takes every core, one at a time
    ("", None, 2, 1, 0, ["cpu0", "cpu1"], False),
    ("", None, 16, 4, 0, ["cpu0", "cpu1", "cpu2", "cpu3"], False),
    ("", None, 2, 4, 0, ["cpu0"], False),             # fewer cores than one engine wants: still one slot
])
def test_the_host_devices(listed, visible, cores, per_engine, nvml, devices, gpus):
    host = discover_host(listed, visible, cores, per_engine, gpu_count=lambda: nvml)
    assert list(host.devices) == devices and host.gpus is gpus


@pytest.mark.unit
def test_a_device_listed_twice_is_refused():
    with pytest.raises(DeviceClaimError, match="lists 1 more than once"):
        discover_host("0,1,1", None, 2, 0, gpu_count=lambda: 0)


@pytest.mark.unit
@pytest.mark.parametrize(("kind", "options", "needed"), [
    ("external", {"model": "deepseek-reasoner"}, 0),     # an API's devices are not ours
    ("transformers", {"device": "cpu"}, 1),
    ("vllm", {"device": "cpu", "tensor_parallel_size": 2}, 1),
    ("vllm", {}, 1),
    ("vllm", {"tensor_parallel_size": 4}, 4),
    ("vllm", {"tensor_parallel_size": 4, "pipeline_parallel_size": 2}, 8),
    ("vllm", {"tensor_parallel_size": 8, "pipeline_parallel_size": 2, "nodes": 2}, 8),   # this host's share
])
def test_devices_an_engine_needs(kind, options, needed):
    assert devices_needed(EngineSpec(kind, options).settings) == needed


@pytest.mark.unit
def test_only_an_engine_on_gpus_is_told_its_devices():
    assert claimed_env(EIGHT_GPUS, EngineSpec("vllm").settings, ("3", "5")) == {"CUDA_VISIBLE_DEVICES": "3,5"}
    assert claimed_env(EIGHT_GPUS, EngineSpec("transformers", {"device": "cpu"}).settings, ("3",)) == {}
    assert claimed_env(EIGHT_GPUS, EngineSpec("external", {"model": "m"}).settings, ()) == {}
    cpu_host = Host(("cpu0",), gpus=False, source="no GPU")
    assert claimed_env(cpu_host, EngineSpec("vllm", {"device": "cpu"}).settings, ("cpu0",)) == {}


def _claim_repeatedly(folder: str, seed: int, rounds: int, out: str | None = None) -> list[tuple[str, float, float]]:
    """Claims of random sizes, each held a moment; the intervals each device was held, by monotonic time (the
    same clock in every process on the host)."""
    chooser = random.Random(seed)
    held = []
    for _ in range(rounds):
        with _claims(Path(folder)).claim(chooser.randint(1, 4), f"claimer {seed}") as devices:
            start = time.monotonic()
            time.sleep(chooser.uniform(0, 0.02))
            end = time.monotonic()
        held += [(device, start, end) for device in devices]
    if out:
        Path(out).write_text(json.dumps(held))
    return held


def _assert_no_overlap(intervals: list[tuple[str, float, float]]) -> None:
    by_device: dict[str, list[tuple[float, float]]] = {}
    for device, start, end in intervals:
        by_device.setdefault(device, []).append((start, end))
    for device, spans in by_device.items():
        spans.sort()
        for (_, end), (start, _) in zip(spans, spans[1:], strict=False):
            assert end <= start, f"device {device} held by two claims at once"
    assert set(by_device) <= set(EIGHT_GPUS.devices)


@pytest.mark.integration
def test_claims_from_many_threads_and_processes_never_overlap(tmp_path):
    context = multiprocessing.get_context("spawn")   # no claim's open file is inherited by another process
    outputs = [tmp_path / f"process-{index}.json" for index in range(3)]
    processes = [context.Process(target=_claim_repeatedly, args=(str(tmp_path), 100 + index, 15, str(out)))
                 for index, out in enumerate(outputs)]
    for process in processes:
        process.start()
    intervals: list = []
    lock = threading.Lock()

    def claimer(seed: int) -> None:
        held = _claim_repeatedly(str(tmp_path), seed, 15)
        with lock:
            intervals.extend(held)

    threads = [threading.Thread(target=claimer, args=(seed,)) for seed in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    for process in processes:
        process.join(timeout=300)
        assert process.exitcode == 0
    for out in outputs:
        intervals += [tuple(row) for row in json.loads(out.read_text())]
    assert len({(start, end) for _, start, end in intervals}) == (8 + 3) * 15   # every claim was held once
    _assert_no_overlap(intervals)


@pytest.mark.integration
def test_a_claim_is_freed_when_its_block_fails(tmp_path):
    claims = _claims(tmp_path)
    with pytest.raises(RuntimeError, match="the engine failed"), claims.claim(5, "failing step"):
        raise RuntimeError("the engine failed")
    assert set(claims.holders().values()) == {None}
    with claims.claim(8, "the next step") as devices:
        assert devices == EIGHT_GPUS.devices


def _hold_until_killed(folder: str, ready: str) -> None:
    with _claims(Path(folder)).claim(6, "a run about to be killed"):
        Path(ready).touch()
        time.sleep(600)


@pytest.mark.integration
def test_a_claim_is_freed_when_its_process_is_killed(tmp_path):
    ready = tmp_path / "ready"
    holder = multiprocessing.get_context("spawn").Process(target=_hold_until_killed,
                                                          args=(str(tmp_path / "claims"), str(ready)))
    holder.start()
    deadline = time.monotonic() + 120
    while not ready.exists():
        assert holder.is_alive() and time.monotonic() < deadline
        time.sleep(0.05)
    claims = _claims(tmp_path / "claims")
    held = claims.holders()
    assert [device for device, who in held.items() if who] == ["0", "1", "2", "3", "4", "5"]
    assert f"a run about to be killed (pid {holder.pid})" in held["0"]
    os.kill(holder.pid, signal.SIGKILL)
    holder.join()
    with claims.claim(8, "the next run") as devices:   # the kernel dropped the dead process's locks
        assert devices == EIGHT_GPUS.devices


@pytest.mark.integration
def test_a_waiting_claim_starts_once_enough_devices_are_free(tmp_path):
    claims = _claims(tmp_path)
    said: list[str] = []
    started = threading.Event()
    got: list[tuple[str, ...]] = []

    def four_gpu_step() -> None:
        with claims.claim(4, "a 4-GPU variant", said.append) as devices:
            got.append(devices)
            started.set()

    with claims.claim(6, "six 1-GPU variants") as first:
        assert first == ("0", "1", "2", "3", "4", "5")
        waiter = threading.Thread(target=four_gpu_step)
        waiter.start()
        deadline = time.monotonic() + 60
        while not said:   # it says what it waits for as soon as it waits
            assert time.monotonic() < deadline
            time.sleep(0.01)
        assert not started.wait(0.5)   # 2 of 8 are free: not enough
        released = time.monotonic()
    assert started.wait(60)
    waiter.join()
    assert got == [("0", "1", "2", "3")]
    assert "waiting for 4 of the host's 8 GPUs" in said[0] and "held by others: 0 by six 1-GPU variants" in said[0]
    assert said[-1].startswith("4 GPU(s) free after") and time.monotonic() >= released


@pytest.mark.integration
def test_a_claim_larger_than_the_host_is_refused_at_once(tmp_path):
    with pytest.raises(DeviceClaimError) as refused, _claims(tmp_path).claim(16, "variant r1-tp16"):
        pass
    message = str(refused.value)
    assert "variant r1-tp16 needs 16 GPUs but this host has 8 GPUs (0, 1, 2, 3, 4, 5, 6, 7" in message
    assert "tensor_parallel_size" in message and "YARDSTICK_DEVICES" in message
