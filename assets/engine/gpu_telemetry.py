"""What the GPUs did during a serving level, read through NVML (the `nvidia-ml-py` package's `pynvml`): power,
the energy counter, utilisation, memory and temperature, sampled at a fixed rate on a thread of its own while the
level's measured requests run.

Energy is the change of NVML's total-energy counter over the level (millijoules since the driver loaded, on
Volta and later) where every GPU has one, else power integrated over the samples (trapezoids). Figures are
summed over the GPUs (power, energy, memory), averaged (utilisation) or the hottest (temperature). On a host
without NVML (no driver, no GPU, a CPU engine) nothing is sampled: the columns stay NULL and `gpu_telemetry`
says why.
"""

from __future__ import annotations

import functools
import operator
import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from types import ModuleType

from assets.engine.devices import gpus_per_host
from assets.matrix import EngineSettings, LocalEngineSettings
from assets.processes import read_stat

SAMPLE_INTERVAL_S = 0.1
MEASURED = "measured"
GPU_COLUMNS = ("gpu_telemetry", "gpu_count", "gpu_samples", "gpu_energy_j", "gpu_power_w_mean", "gpu_power_w_max",
               "gpu_utilization_mean", "gpu_memory_used_max_bytes", "gpu_temperature_max_c", "gpu_throttle_reasons",
               "gpu_sm_clock_mhz_min", "gpu_other_processes")
# NVML's clock event ("throttle") reasons. Those in SLOWDOWNS mean the GPU ran slower than its load asked for
# (heat, a hardware signal, the power brake): a level with one is contended. Holding to the power cap under full
# load is how a GPU works at its limit, and idling or a clock setting is no slowdown: recorded, not flagged.
THROTTLE_REASONS = {0x1: "idle", 0x2: "applications clocks setting", 0x4: "software power cap",
                    0x8: "hardware slowdown", 0x10: "sync boost", 0x20: "software thermal slowdown",
                    0x40: "hardware thermal slowdown", 0x80: "hardware power brake", 0x100: "display clock setting"}
SLOWDOWNS = 0x8 | 0x20 | 0x40 | 0x80


@dataclass(frozen=True)
class GpuSample:
    at_s: float                  # monotonic seconds
    power_w: float               # summed over the GPUs
    energy_mj: float | None      # the GPUs' energy counters summed; None when one has none
    utilization: float           # percent, mean over the GPUs
    memory_used_bytes: int       # summed
    temperature_c: float         # the hottest
    throttle: int | None = None  # the clock event reasons of any GPU (bits of THROTTLE_REASONS); None: not read
    sm_clock_mhz: float | None = None   # the slowest GPU's SM clock


@dataclass(frozen=True)
class GpuLevelTelemetry:
    gpu_telemetry: str                       # "measured", or "not measured: <why>"
    gpu_count: int | None = None
    gpu_samples: int | None = None
    gpu_energy_j: float | None = None
    gpu_power_w_mean: float | None = None
    gpu_power_w_max: float | None = None
    gpu_utilization_mean: float | None = None
    gpu_memory_used_max_bytes: int | None = None
    gpu_temperature_max_c: float | None = None
    gpu_throttle_reasons: str | None = None  # every reason seen during the level, comma-separated
    gpu_sm_clock_mhz_min: float | None = None
    gpu_other_processes: str | None = None   # processes of this host on the GPUs that are not the engine's

    def row(self) -> dict:
        return asdict(self)

    @property
    def contention(self) -> str | None:
        """Why the GPUs were not the engine's alone at full speed during the level; None when they were."""
        reasons = []
        slowed = [name for bit, name in THROTTLE_REASONS.items()
                  if bit & SLOWDOWNS and name in (self.gpu_throttle_reasons or "").split(", ")]
        if slowed:
            reasons.append(f"the GPUs slowed down: {', '.join(slowed)}")
        if self.gpu_other_processes:
            reasons.append(f"other processes used the engine's GPUs: {self.gpu_other_processes}")
        return "; ".join(reasons) or None


def not_measured(why: str) -> GpuLevelTelemetry:
    return GpuLevelTelemetry(gpu_telemetry=f"not measured: {why}")


def energy_joules(samples: list[GpuSample]) -> float | None:
    """The energy over the samples: the counters' change when every sample has them, else power integrated
    by trapezoids; None with fewer than two samples."""
    if len(samples) < 2:
        return None
    first, last = samples[0], samples[-1]
    if first.energy_mj is not None and last.energy_mj is not None and last.energy_mj >= first.energy_mj:
        return (last.energy_mj - first.energy_mj) / 1000
    return sum((later.at_s - earlier.at_s) * (earlier.power_w + later.power_w) / 2
               for earlier, later in zip(samples, samples[1:], strict=False))


def throttle_names(bits: int) -> str | None:
    return ", ".join(name for bit, name in THROTTLE_REASONS.items() if bits & bit) or None


def summarise(samples: list[GpuSample], gpu_count: int, others: str | None = None) -> GpuLevelTelemetry:
    if len(samples) < 2:
        return not_measured(f"{len(samples)} sample(s) taken; the level was shorter than two sampling intervals")
    throttles = [s.throttle for s in samples if s.throttle is not None]
    clocks = [s.sm_clock_mhz for s in samples if s.sm_clock_mhz is not None]
    return GpuLevelTelemetry(
        gpu_throttle_reasons=throttle_names(functools.reduce(operator.or_, throttles, 0)) if throttles else None,
        gpu_sm_clock_mhz_min=min(clocks) if clocks else None, gpu_other_processes=others,
        gpu_telemetry=MEASURED, gpu_count=gpu_count, gpu_samples=len(samples), gpu_energy_j=energy_joules(samples),
        gpu_power_w_mean=sum(s.power_w for s in samples) / len(samples),
        gpu_power_w_max=max(s.power_w for s in samples),
        gpu_utilization_mean=sum(s.utilization for s in samples) / len(samples),
        gpu_memory_used_max_bytes=max(s.memory_used_bytes for s in samples),
        gpu_temperature_max_c=max(s.temperature_c for s in samples))


def kwh_per_million_tokens(energy_j: float | None, output_tokens: int) -> float | None:
    """kWh per million output tokens: J ÷ 3.6 × 10^6 per kWh, scaled to a million tokens."""
    if energy_j is None or output_tokens <= 0:
        return None
    return energy_j / 3.6e6 / output_tokens * 1e6


def engine_gpus(settings: EngineSettings, environ: Mapping[str, str]) -> list[int] | str:
    """The NVML indices of the GPUs an engine of this kind and these settings runs on, or why none of ours are
    to be watched. vLLM takes the first tensor × pipeline parallel GPUs of those CUDA_VISIBLE_DEVICES (the engine's
    `env`, else this process's) shows; on a multi-node deployment only this host's are read. CUDA orders devices
    as NVML does when CUDA_DEVICE_ORDER=PCI_BUS_ID."""
    if not isinstance(settings, LocalEngineSettings):
        return "an external endpoint: its GPUs are not ours to read"
    if settings.on_cpu:
        return "the engine runs on the CPU"
    wanted = gpus_per_host(settings)
    visible = settings.env.get("CUDA_VISIBLE_DEVICES", environ.get("CUDA_VISIBLE_DEVICES"))
    if visible is None:
        return list(range(wanted))
    try:
        indices = [int(part) for part in str(visible).split(",") if part.strip()]
    except ValueError:
        return f"CUDA_VISIBLE_DEVICES={visible} names GPUs by UUID, which this reader does not map to NVML indices"
    return indices[:wanted]


def _load_nvml() -> ModuleType:
    import pynvml

    return pynvml


class GpuWatch:
    """Held (`async with`) around a level's measured requests, like EngineMetricsWatch: samples the GPUs every
    `interval_s` on a thread (NVML calls block) from entry to exit, then `summary` holds the level's figures.
    `indices` picks GPUs by NVML index (default every GPU NVML sees); `nvml` stands in for pynvml in tests."""

    def __init__(self, indices: list[int] | str | None = None, interval_s: float = SAMPLE_INTERVAL_S,
                 nvml: ModuleType | None = None, engine_pids: Callable[[], set[int]] | None = None):
        self.indices = indices   # a str: why there is nothing to read (see engine_gpus)
        self.engine_pids = engine_pids   # the engine's processes, asked at exit; None: not known
        self.interval_s = interval_s
        self._nvml = nvml
        self.summary = not_measured("the watch was not held")
        self._handles: list = []
        self._samples: list[GpuSample] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _open(self) -> str | None:
        """Start NVML and find the GPUs; the reason when that is not possible."""
        if isinstance(self.indices, str):
            return self.indices
        try:
            nvml = self._nvml = self._nvml or _load_nvml()
        except ImportError as error:
            return f"pynvml is not installed ({error}); install nvidia-ml-py"
        try:
            nvml.nvmlInit()
            count = nvml.nvmlDeviceGetCount()
        except Exception as error:   # NVMLError_LibraryNotFound, _DriverNotLoaded, ...: no GPU here
            return f"NVML is not available ({type(error).__name__}: {error})"
        indices = self.indices if self.indices is not None else list(range(count))
        unknown = [index for index in indices if not 0 <= index < count]
        if unknown:
            return f"GPU indices {unknown} not among the {count} NVML sees"
        if not indices:
            return "NVML sees no GPU"
        self._handles = [nvml.nvmlDeviceGetHandleByIndex(index) for index in indices]
        return None

    def _read(self) -> GpuSample:
        nvml = self._nvml
        powers, energies, utilizations, memories, temperatures = [], [], [], [], []
        for handle in self._handles:
            powers.append(nvml.nvmlDeviceGetPowerUsage(handle) / 1000)   # milliwatts
            try:
                energies.append(float(nvml.nvmlDeviceGetTotalEnergyConsumption(handle)))   # millijoules
            except Exception:   # NVMLError_NotSupported before Volta
                energies.append(None)
            utilizations.append(float(nvml.nvmlDeviceGetUtilizationRates(handle).gpu))
            memories.append(int(nvml.nvmlDeviceGetMemoryInfo(handle).used))
            temperatures.append(float(nvml.nvmlDeviceGetTemperature(handle, nvml.NVML_TEMPERATURE_GPU)))
        throttle, clock = self._clocks()
        return GpuSample(at_s=time.monotonic(), power_w=sum(powers),
                         energy_mj=None if None in energies else sum(energies),
                         utilization=sum(utilizations) / len(utilizations), memory_used_bytes=sum(memories),
                         temperature_c=max(temperatures), throttle=throttle, sm_clock_mhz=clock)

    def _clocks(self) -> tuple[int | None, float | None]:
        """The GPUs' clock event reasons (ORed) and the slowest SM clock; None where the driver has neither."""
        nvml = self._nvml
        reasons = (getattr(nvml, "nvmlDeviceGetCurrentClocksEventReasons", None)
                   or getattr(nvml, "nvmlDeviceGetCurrentClocksThrottleReasons", None))
        try:
            throttle = functools.reduce(operator.or_, (int(reasons(h)) for h in self._handles), 0) if reasons else None
            clock = (min(float(nvml.nvmlDeviceGetClockInfo(h, nvml.NVML_CLOCK_SM)) for h in self._handles)
                     if hasattr(nvml, "nvmlDeviceGetClockInfo") else None)
        except Exception:   # NVMLError_NotSupported on some boards
            return None, None
        return throttle, clock

    def _other_processes(self) -> str | None:
        """The processes of this host on the watched GPUs that are not the engine's (nor this one), as `name (pid
        N)`; a pid not in this host's /proc (another PID namespace: a container's) is not judged."""
        lister = getattr(self._nvml, "nvmlDeviceGetComputeRunningProcesses", None)
        if self.engine_pids is None or lister is None:
            return None
        try:
            pids = {int(process.pid) for handle in self._handles for process in lister(handle)}
        except Exception:
            return None
        ours = self.engine_pids() | {os.getpid()}
        others = sorted((stat.name, stat.pid) for pid in pids - ours if (stat := read_stat(pid)) is not None)
        return ", ".join(f"{name} (pid {pid})" for name, pid in others) or None

    def _sample(self) -> None:
        while not self._stop.wait(self.interval_s):
            self._samples.append(self._read())

    def __enter__(self) -> GpuWatch:
        why = self._open()
        if why:
            self.summary = not_measured(why)
            return self
        self._samples = [self._read()]
        self._thread = threading.Thread(target=self._sample, name="gpu-telemetry", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._thread is None:
            return
        self._stop.set()
        self._thread.join()
        self._samples.append(self._read())
        self.summary = summarise(self._samples, len(self._handles), self._other_processes())
        try:
            self._nvml.nvmlShutdown()
        except Exception:
            pass

    async def __aenter__(self) -> GpuWatch:
        return self.__enter__()

    async def __aexit__(self, *exc_info: object) -> None:
        self.__exit__(*exc_info)
