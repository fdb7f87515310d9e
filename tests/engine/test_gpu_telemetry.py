"""GPU telemetry's arithmetic against hand calculations, with a stand-in NVML module (a fake with scripted
readings: this machine has no GPU); the real pynvml is checked for what it does without one."""

import ctypes
import os
import types
from dataclasses import replace
from pathlib import Path

import pytest

from assets.cost.pricing import measured_power_kw
from assets.engine.gpu_telemetry import (
    GpuSample,
    GpuWatch,
    energy_joules,
    engine_gpus,
    kwh_per_million_tokens,
    not_measured,
    summarise,
)
from assets.engine.host_load import CLEAN, HostConditions, with_gpu_contention
from assets.matrix import EngineSpec
from assets.processes import read_stat

pytestmark = pytest.mark.unit


def test_energy_from_a_synthetic_power_trace_by_hand():
    # 100, 200, 200, 100 W at 0, 1, 2, 3 s: trapezoids of 150 + 200 + 150 = 500 J.
    trace = [GpuSample(t, p, None, 50.0, 1, 40.0) for t, p in ((0, 100), (1, 200), (2, 200), (3, 100))]
    assert energy_joules(trace) == pytest.approx(500)
    # With the energy counter the counter's change wins: 0 to 450,000 mJ is 450 J.
    counted = [GpuSample(s.at_s, s.power_w, 150_000.0 * s.at_s, 50.0, 1, 40.0) for s in trace]
    assert energy_joules(counted) == pytest.approx(450)
    summary = summarise(trace, gpu_count=1)
    assert summary.gpu_power_w_mean == 150 and summary.gpu_power_w_max == 200 and summary.gpu_samples == 4
    assert energy_joules(trace[:1]) is None and summarise(trace[:1], 1).gpu_telemetry.startswith("not measured")
    # 500 J for 1000 output tokens: 500 / 3.6e6 kWh a thousand tokens, 0.13889 kWh a million.
    assert kwh_per_million_tokens(500, 1000) == pytest.approx(500 / 3.6e6 * 1000)
    assert kwh_per_million_tokens(3.6e6, 1_000_000) == pytest.approx(1.0)
    assert kwh_per_million_tokens(None, 1000) is None and kwh_per_million_tokens(500, 0) is None
    # 3.6 MJ over an hour is a mean draw of 1 kW: what the owned-cost rollup uses instead of the nameplate.
    assert measured_power_kw({"gpu_energy_j": 3.6e6, "duration_s": 3600}) == pytest.approx(1.0)
    assert measured_power_kw({"gpu_energy_j": None, "duration_s": 10}) is None


def fake_nvml(count: int = 2, init_error: Exception | None = None) -> types.ModuleType:
    """Two GPUs drawing 300 W and 200 W, at 50% and 70% utilisation, 1 and 2 GiB used, 60 and 75 °C; each read
    of a GPU's energy counter has it 50 J further on."""
    reads = {}

    def energy(handle):
        reads[handle] = reads.get(handle, -1) + 1
        return 50_000 * reads[handle]

    def init():
        if init_error:
            raise init_error

    module = types.SimpleNamespace(
        NVML_TEMPERATURE_GPU=0, nvmlInit=init, nvmlShutdown=lambda: None, nvmlDeviceGetCount=lambda: count,
        nvmlDeviceGetHandleByIndex=lambda index: index,
        nvmlDeviceGetPowerUsage=lambda handle: (300_000, 200_000)[handle],
        nvmlDeviceGetTotalEnergyConsumption=energy,
        nvmlDeviceGetUtilizationRates=lambda handle: types.SimpleNamespace(gpu=(50, 70)[handle]),
        nvmlDeviceGetMemoryInfo=lambda handle: types.SimpleNamespace(used=(1, 2)[handle] * 2**30),
        nvmlDeviceGetTemperature=lambda handle, sensor: (60, 75)[handle])
    return module


def test_the_watch_sums_power_energy_and_memory_over_the_gpus():
    import time

    with GpuWatch([0, 1], interval_s=0.01, nvml=fake_nvml()) as watch:
        time.sleep(0.1)
    summary = watch.summary
    assert summary.gpu_telemetry == "measured" and summary.gpu_count == 2 and summary.gpu_samples >= 3
    # Each sample read both counters once more, 50 J each: 100 J a sample after the first.
    assert summary.gpu_energy_j == pytest.approx(100 * (summary.gpu_samples - 1))
    assert summary.gpu_power_w_mean == 500 and summary.gpu_power_w_max == 500
    assert summary.gpu_utilization_mean == 60 and summary.gpu_temperature_max_c == 75
    assert summary.gpu_memory_used_max_bytes == 3 * 2**30


def test_a_slowed_down_or_shared_gpu_contends_and_one_at_its_power_cap_does_not():
    """GPU 1 reports the software power cap (0x4) then a hardware thermal slowdown (0x40); NVML lists the engine's
    process, this one, a process of this host that is neither (a CPU hog standing for another GPU job) and a pid
    of another PID namespace (not judged)."""
    import subprocess
    import sys
    import time

    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        reads = []

        def reasons(handle):
            reads.append(handle)
            return 0x4 if handle == 0 or len(reads) < 4 else 0x44

        nvml = fake_nvml()
        nvml.NVML_CLOCK_SM = 1
        nvml.nvmlDeviceGetCurrentClocksEventReasons = reasons
        nvml.nvmlDeviceGetClockInfo = lambda handle, clock: (1980, 1410)[handle]
        nvml.nvmlDeviceGetComputeRunningProcesses = lambda handle: [
            types.SimpleNamespace(pid=pid) for pid in ((4242, os.getpid()) if handle == 0 else (other.pid, 2**22 + 7))]
        with GpuWatch([0, 1], interval_s=0.01, nvml=nvml, engine_pids=lambda: {4242}) as watch:
            time.sleep(0.05)
        expected = f"{read_stat(other.pid).name} (pid {other.pid})"
    finally:
        other.kill()
        other.wait()
    summary = watch.summary
    assert summary.gpu_throttle_reasons == "software power cap, hardware thermal slowdown"
    assert summary.gpu_sm_clock_mhz_min == 1410 and summary.gpu_other_processes == expected
    assert summary.contention == ("the GPUs slowed down: hardware thermal slowdown; other processes used the "
                                  f"engine's GPUs: {summary.gpu_other_processes}")
    at_the_cap = replace(summary, gpu_throttle_reasons="software power cap", gpu_other_processes=None)
    assert at_the_cap.contention is None
    assert not_measured("no NVML").contention is None
    # Folded into the level's conditions: contended whatever the CPU did.
    folded = with_gpu_contention(HostConditions(CLEAN), summary.contention)
    assert folded.contended and folded.host_contention == summary.contention
    assert with_gpu_contention(HostConditions(CLEAN), None) == HostConditions(CLEAN)


def test_what_is_not_measured_says_why():
    class NVMLError_DriverNotLoaded(Exception):  # noqa: N801, N818 (pynvml's name)
        pass

    with GpuWatch(None, nvml=fake_nvml(init_error=NVMLError_DriverNotLoaded("Driver Not Loaded"))) as watch:
        pass
    assert watch.summary.gpu_telemetry == ("not measured: NVML is not available (NVMLError_DriverNotLoaded: "
                                           "Driver Not Loaded)")
    assert watch.summary.gpu_energy_j is None
    with GpuWatch([3], nvml=fake_nvml()) as watch:
        pass
    assert watch.summary.gpu_telemetry == "not measured: GPU indices [3] not among the 2 NVML sees"
    with GpuWatch("the engine runs on the CPU") as watch:
        pass
    assert watch.summary.gpu_telemetry == "not measured: the engine runs on the CPU"


def _nvml_library_loads() -> bool:
    """Whether the driver's NVML library loads, asked of the dynamic loader rather than of pynvml."""
    try:
        ctypes.CDLL("libnvidia-ml.so.1")
    except OSError:
        return False
    return True


def test_the_real_nvml_on_this_machine_measures_or_says_why():
    """Which answer is right is decided by the machine: no NVML library, NVML is not available; the library and
    a GPU's device node, the watch measures that GPU (a sample on entry and one on exit, at least)."""
    with GpuWatch(None, interval_s=0.01) as watch:
        pass
    summary = watch.summary
    gpu_nodes = sorted(path.name for path in Path("/dev").glob("nvidia[0-9]*"))
    if not _nvml_library_loads():
        assert summary.gpu_telemetry.startswith("not measured: NVML is not available (NVMLError_LibraryNotFound")
        assert summary.gpu_energy_j is None and summary.gpu_samples is None
    elif gpu_nodes:
        assert summary.gpu_telemetry == "measured", gpu_nodes
        assert summary.gpu_count == len(gpu_nodes) and summary.gpu_samples >= 2
        assert summary.gpu_power_w_max > 0 and summary.gpu_memory_used_max_bytes > 0
    else:
        assert summary.gpu_telemetry.startswith("not measured: NVML is not available ("), "a library, no GPU node"


@pytest.mark.parametrize(("kind", "options", "environ", "expected"), [
    ("external", {"model": "deepseek-reasoner"}, {}, "an external endpoint: its GPUs are not ours to read"),
    ("vllm", {"device": "cpu"}, {}, "the engine runs on the CPU"),
    ("vllm", {}, {}, [0]),
    ("vllm", {"tensor_parallel_size": 4}, {}, [0, 1, 2, 3]),
    ("vllm", {"tensor_parallel_size": 2}, {"CUDA_VISIBLE_DEVICES": "2,3,5"}, [2, 3]),
    ("vllm", {"tensor_parallel_size": 2, "env": {"CUDA_VISIBLE_DEVICES": "6,7"}}, {"CUDA_VISIBLE_DEVICES": "0"},
     [6, 7]),
    ("vllm", {"tensor_parallel_size": 8, "pipeline_parallel_size": 2, "nodes": 2}, {}, list(range(8))),
])
def test_the_gpus_an_engine_runs_on(kind, options, environ, expected):
    assert engine_gpus(EngineSpec(kind, options).settings, environ) == expected


def test_gpus_named_by_uuid_are_not_guessed():
    assert "by UUID" in engine_gpus(EngineSpec("vllm").settings, {"CUDA_VISIBLE_DEVICES": "GPU-8a1b"})
