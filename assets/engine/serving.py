"""The serving loop: load levels run one after another against an endpoint, each with what the engine reports about
itself (engine_metrics.EngineMetricsWatch), what its GPUs do (gpu_telemetry.GpuWatch) and what else the host does
(host_load.HostWatch) watched around the level's measured requests. The `serving_benchmark` asset and
`yardstick bench` both measure through `measure_levels`, so a level means the same whichever of them measured it.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from assets.engine.engine_metrics import NOT_REPORTED, EngineLevelMetrics, EngineMetricsWatch, metrics_url
from assets.engine.gpu_telemetry import GpuLevelTelemetry, GpuWatch, engine_gpus
from assets.engine.host_load import HostConditions, HostWatch, cpu_split, group_pids, pinned, with_gpu_contention
from assets.engine.loadtest import Endpoint, Load, RequestTiming, describe_load, run_level, watching
from assets.engine.requests import level_row, request_rows, serving_loads, shared_sampling
from assets.engine.stopping import run_until_stopped
from assets.matrix import LocalEngineSettings, Variant
from assets.processes import read_stat

# Who listens on a host and port: {socket inode: {pid, ...}}, None where that cannot be told (resources.ports).
Listeners = Callable[[str, int], dict[int, set[int]] | None]


@dataclass(frozen=True)
class MeasuredLevel:
    """One load level as measured: its requests' timings over `duration_s`, and what the engine and the GPUs
    reported meanwhile."""

    load: Load
    timings: list[RequestTiming]
    duration_s: float
    engine: EngineLevelMetrics
    gpus: GpuLevelTelemetry
    host: HostConditions


def measure_levels(endpoint: Endpoint, loads: Sequence[Load], gpus: list[int] | str | None,
                   log: Callable[[str], None], engine_groups: Callable[[], set[int]] | str = "not asked",
                   loadgen_cores: Sequence[int] = ()) -> Iterator[MeasuredLevel]:
    """Run each load level in turn, yielding it as soon as it is measured. `gpus` is what GpuWatch reads: NVML
    indices, None for every GPU NVML sees, or why there is nothing to read; `engine_groups` the engine's process
    groups on this host, or why the host is not watched (HostWatch); `loadgen_cores` the cores the load generator
    keeps to (none: wherever the kernel puts it). Ctrl-C or SIGTERM stops the level under way
    (stopping.run_until_stopped). A contended level is logged with why."""
    for number, load in enumerate(loads, start=1):
        log(f"load level {number}/{len(loads)}: {describe_load(load)}, {load.num_requests} requests")
        engine = EngineMetricsWatch(metrics_url(endpoint.base_url))
        gpu_watch = GpuWatch(gpus, engine_pids=(lambda: group_pids(engine_groups())) if callable(engine_groups)
                             else None)
        host = HostWatch(engine_groups)
        with pinned(loadgen_cores):
            timings, duration = run_until_stopped(run_level(endpoint, load, watching(engine, gpu_watch, host)))
        if number == 1 and engine.summary == NOT_REPORTED:
            log(f"no engine metrics at {engine.url}: the levels' engine_ columns stay empty")
        if number == 1:
            log(f"GPU telemetry: {gpu_watch.summary.gpu_telemetry}")
        conditions = with_gpu_contention(host.summary, gpu_watch.summary.contention)
        if conditions.contended:
            log(f"load level {number}/{len(loads)} was measured on a busy host, flagged contended: "
                f"{conditions.host_contention}")
        yield MeasuredLevel(load, timings, duration, engine.summary, gpu_watch.summary, conditions)


def serving_rows(endpoint: Endpoint, variant: Variant, prompts: tuple[str, ...], environ: Mapping[str, str],
                 log: Callable[[str], None], listeners: Listeners) -> tuple[list[dict], list[dict]]:
    """The variant's serving benchmark: its `serving_load_levels` rows and its `serving_request_timings` rows.
    `environ` is the engine's environment (the devices claimed for it over this process's), which says which
    GPUs it runs on; `listeners` finds the processes serving the endpoint, whose CPU is the engine's. The load
    generator of an engine on this host's CPU keeps to the front core (host_load.CpuSplit)."""
    loads = serving_loads(variant, shared_sampling(variant), prompts)
    gpus = engine_gpus(variant.engine.settings, environ)
    settings = variant.engine.settings
    split = cpu_split() if isinstance(settings, LocalEngineSettings) and settings.on_cpu else None
    levels, requests = [], []
    for measured in measure_levels(endpoint, loads, gpus, log, engine_groups(endpoint.base_url, listeners),
                                   split.front if split else ()):
        levels.append(level_row(variant, measured.load, measured.timings, measured.duration_s, measured.engine,
                                measured.gpus, measured.host))
        requests += request_rows(measured.load, measured.timings)
    return levels, requests


def engine_groups(base_url: str, listeners: Listeners) -> Callable[[], set[int]] | str:
    """The process groups of the processes listening at an endpoint on this host, asked when called (an engine and
    what it started); for an endpoint elsewhere, why this host's load says nothing of it."""
    parts = urlsplit(base_url)
    host = parts.hostname or ""
    if not _on_this_host(host):
        return f"the endpoint is on {host}, not on this host: its host's load is not ours to read"
    port = parts.port or (443 if parts.scheme == "https" else 80)

    def groups() -> set[int]:
        held = listeners(host, port) or {}
        return {stat.group for pids in held.values() for pid in pids if (stat := read_stat(pid)) is not None}
    return groups


def endpoint_gpus(base_url: str, environ: Mapping[str, str]) -> list[int] | str | None:
    """The GPUs to watch for an endpoint this process did not start: where it listens on this host, those
    CUDA_VISIBLE_DEVICES shows (None, every GPU NVML sees, when it is unset); elsewhere none, with why."""
    host = urlsplit(base_url).hostname or ""
    if not _on_this_host(host):
        return f"the endpoint is on {host}, not on this host: its GPUs are not ours to read"
    visible = environ.get("CUDA_VISIBLE_DEVICES")
    if visible is None:
        return None
    try:
        return [int(part) for part in visible.split(",") if part.strip()]
    except ValueError:
        return f"CUDA_VISIBLE_DEVICES={visible} names GPUs by UUID, which this reader does not map to NVML indices"


def _on_this_host(host: str) -> bool:
    if host in ("localhost", socket.gethostname()):
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return address.is_loopback or address.is_unspecified
