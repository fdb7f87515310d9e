"""Which of a host's devices an engine runs on: the host's devices, how many an engine needs, and claims on
specific ones that no two engines on the host ever share.

The host's devices, the first that applies: YARDSTICK_DEVICES (GPUs by CUDA index or UUID, comma-separated; what
tests use to simulate a host); CUDA_VISIBLE_DEVICES, where this process is confined to some GPUs; every GPU NVML
sees; on a host without one, engine slots of `cores_per_engine` cores each (at least one slot).

A claim is an exclusive `flock` on one file per device in a claims folder: the kernel drops it when its holder
closes the file or dies however it dies (SIGKILL, the OOM killer), so no claim outlives its process and nothing
has to free one. Claimers queue: the one at the head (it holds the queue file's lock) takes devices as they free
up until it has all it needs, then lets the next in; so a 4-GPU claim is not starved by 1-GPU claims slipping
past it.
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from assets.matrix import EngineSettings, LocalEngineSettings

DEVICES_VARIABLE = "YARDSTICK_DEVICES"
QUEUE_FILE = "queue.lock"
POLL_S = 0.5
REPORT_EVERY_S = 60.0


class DeviceClaimError(RuntimeError):
    """A claim this host can never satisfy, or a device list that cannot be claimed."""


@dataclass(frozen=True)
class Host:
    devices: tuple[str, ...]
    gpus: bool       # the devices are GPUs (an engine on them is told which by CUDA_VISIBLE_DEVICES)
    source: str      # where the list came from, for messages

    @property
    def unit(self) -> str:
        return "GPU" if self.gpus else "CPU engine slot"

    def describe(self) -> str:
        plural = "s" if len(self.devices) != 1 else ""
        return f"{len(self.devices)} {self.unit}{plural} ({', '.join(self.devices)}; {self.source})"


def nvml_gpu_count() -> int:
    """How many GPUs NVML sees; 0 without NVML (no driver, no GPU, pynvml not installed)."""
    try:
        import pynvml

        pynvml.nvmlInit()
    except Exception:   # ImportError, NVMLError_LibraryNotFound, _DriverNotLoaded: no GPU here
        return 0
    try:
        return int(pynvml.nvmlDeviceGetCount())
    finally:
        pynvml.nvmlShutdown()


def _listed(text: str, where: str) -> tuple[str, ...]:
    devices = tuple(part.strip() for part in text.split(",") if part.strip())
    repeated = sorted({device for device in devices if devices.count(device) > 1})
    if repeated:
        raise DeviceClaimError(f"{where} lists {', '.join(repeated)} more than once ({text!r}); list each device once")
    return devices


def discover_host(listed: str, cuda_visible: str | None, cores: int, cores_per_engine: int,
                  gpu_count: Callable[[], int] = nvml_gpu_count) -> Host:
    """The devices engines may be given on this host (see the module's docstring for the order). `cores_per_engine`
    0 means every core: vLLM's CPU build binds its threads to all of them, so two such engines would share cores
    and slow each other down, and each one's serving measurements with them."""
    if listed.strip():
        return Host(_listed(listed, DEVICES_VARIABLE), gpus=True, source=f"from {DEVICES_VARIABLE}")
    if cuda_visible and cuda_visible.strip():
        return Host(_listed(cuda_visible, "CUDA_VISIBLE_DEVICES"), gpus=True, source="from CUDA_VISIBLE_DEVICES")
    count = gpu_count()
    if count:
        return Host(tuple(str(index) for index in range(count)), gpus=True, source="from NVML")
    per_engine = cores_per_engine if cores_per_engine > 0 else cores
    slots = max(1, cores // max(1, per_engine))
    return Host(tuple(f"cpu{slot}" for slot in range(slots)), gpus=False,
                source=f"no GPU: {cores} cores, {per_engine} per engine")


def gpus_per_host(settings: EngineSettings) -> int:
    """The GPUs an engine with these settings uses on this host: tensor × pipeline parallel size, shared over
    its `nodes`; at least one."""
    return max(1, settings.devices_spanned // settings.node_count)


def devices_needed(settings: EngineSettings) -> int:
    """How many of the host's devices an engine claims: none for an external endpoint (its devices are not
    ours), one slot for an engine on the CPU, else its GPUs on this host."""
    if not isinstance(settings, LocalEngineSettings):
        return 0
    if settings.on_cpu:
        return 1
    return gpus_per_host(settings)


def claimed_env(host: Host, settings: EngineSettings, devices: tuple[str, ...]) -> dict[str, str]:
    """What tells an engine the devices it was given: CUDA_VISIBLE_DEVICES, exactly the claim, for an engine on
    GPUs; nothing otherwise."""
    if not devices or not host.gpus or not isinstance(settings, LocalEngineSettings) or settings.on_cpu:
        return {}
    return {"CUDA_VISIBLE_DEVICES": ",".join(devices)}


def _listing(items: list[str]) -> str:
    return ", ".join(items) if items else "none"


class DeviceClaims:
    """Claims on a host's devices, kept as locks on files in `folder`; safe across threads and processes."""

    def __init__(self, folder: Path, host: Host, poll_s: float = POLL_S, report_every_s: float = REPORT_EVERY_S):
        self.folder = Path(folder)
        self.host = host
        self.poll_s = poll_s
        self.report_every_s = report_every_s

    def _path(self, name: str) -> Path:
        return self.folder / f"{quote(name, safe='')}.lock"

    def holders(self) -> dict[str, str | None]:
        """Who holds each device now (as its holder described itself), None where it is free."""
        found = {}
        for device in self.host.devices:
            fd = self._open(device)
            try:
                if _try_lock(fd):
                    found[device] = None
                else:
                    found[device] = os.pread(fd, 1000, 0).decode(errors="replace").strip() or "(starting)"
            finally:
                os.close(fd)
        return found

    def _open(self, name: str) -> int:
        self.folder.mkdir(parents=True, exist_ok=True)
        return os.open(self._path(name), os.O_RDWR | os.O_CREAT, 0o644)

    def _refuse_impossible(self, count: int, holder: str) -> None:
        if count > len(self.host.devices):
            raise DeviceClaimError(
                f"{holder} needs {count} {self.host.unit}s but this host has {self.host.describe()}, so it could "
                f"never start. Lower the variant's tensor_parallel_size or pipeline_parallel_size, spread it over "
                f"more `nodes`, or run it on a host with {count} (on a host with more GPUs than it shows, "
                f"{DEVICES_VARIABLE} lists the ones yardstick may use)")

    @contextmanager
    def claim(self, count: int, holder: str, report: Callable[[str], None] = lambda _line: None
              ) -> Iterator[tuple[str, ...]]:
        """Hold `count` of the host's devices for the block and yield which, waiting (and saying so through
        `report`, with how long and on whom) while fewer are free. A claim larger than the host is refused at
        once with DeviceClaimError. However the block ends, or the process, the devices are free again."""
        self._refuse_impossible(count, holder)
        held: dict[str, int] = {}
        try:
            if count:
                self._take(count, f"{holder} (pid {os.getpid()})", held, report)
            yield tuple(held)
        finally:
            for fd in held.values():
                os.close(fd)

    def _take(self, count: int, holder: str, held: dict[str, int], report: Callable[[str], None]) -> None:
        waiting = _Waiting(report, self.report_every_s)
        queue = self._open(QUEUE_FILE)
        try:
            while not _try_lock(queue):
                waiting.say(lambda: f"waiting for {count} {self.host.unit}(s), in line behind "
                                    f"{os.pread(queue, 1000, 0).decode(errors='replace').strip() or 'another claim'}")
                time.sleep(self.poll_s)
            _describe(queue, f"{holder}, which waits for {count} {self.host.unit}(s)")
            while True:
                for device in self.host.devices:   # all or none: the first free ones, in the host's order
                    if len(held) == count:
                        break
                    fd = self._open(device)
                    if _try_lock(fd):
                        held[device] = fd
                    else:
                        os.close(fd)
                if len(held) == count:
                    for fd in held.values():
                        _describe(fd, holder)
                    if waiting.since is not None:
                        report(f"{count} {self.host.unit}(s) free after {waiting.elapsed():.0f} s: "
                               f"{', '.join(held)}")
                    return
                for fd in held.values():
                    os.close(fd)
                held.clear()
                waiting.say(lambda: self._shortage(count))
                time.sleep(self.poll_s)
        finally:
            os.close(queue)   # the next in line may go

    def _shortage(self, count: int) -> str:
        holders = self.holders()
        free = [device for device, who in holders.items() if who is None]
        taken = [f"{device} by {who}" for device, who in holders.items() if who is not None]
        return (f"waiting for {count} of the host's {self.host.describe()}: {len(free)} free ({_listing(free)}); "
                f"held by others: {_listing(taken)}")


class _Waiting:
    """Says what a claim waits for when it starts waiting and every `every_s` after, with the time waited."""

    def __init__(self, report: Callable[[str], None], every_s: float):
        self.report = report
        self.every_s = every_s
        self.since: float | None = None
        self._last = 0.0

    def elapsed(self) -> float:
        return 0.0 if self.since is None else time.monotonic() - self.since

    def say(self, line: Callable[[], str]) -> None:
        now = time.monotonic()
        if self.since is None:
            self.since = self._last = now
            self.report(line())
        elif now - self._last >= self.every_s:
            self._last = now
            self.report(f"{line()}; waited {self.elapsed():.0f} s")


def _try_lock(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _describe(fd: int, holder: str) -> None:
    """Write who holds a lock into its file, for the messages of those who wait for it."""
    os.ftruncate(fd, 0)
    os.pwrite(fd, holder.encode(), 0)
