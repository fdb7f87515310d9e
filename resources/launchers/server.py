"""A server this project starts, whatever its kind: the kind's launcher says how (`Launch`: argv, environment, the
URLs that say it is ready, the name it serves the model under, where its version comes from, its stop grace), and
`start_server` does the rest, the same for every kind.

Before a server starts, a configured port that something already listens on is refused, and so is a disk without
room for the engine's log. The server runs in a process group of its own (vLLM's engine core included) that dies
with this process (assets.processes), logs to a file, and is stopped group-wide (TERM, then KILL) when the block
exits, however it exits. Ready means more than answering (see readiness): the server that answers must be the one
started, serving the model asked for.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from assets.matrix import EngineSpec, LocalEngineSettings
from assets.processes import start_in_own_group, stop_process_group
from resources.disk import ENGINE_MIN_FREE_BYTES, require_free_space
from resources.launchers.deployment import Deployment, DeployRequest, EngineError, Machine
from resources.launchers.readiness import (
    confirm_listener_is_ours,
    confirm_served_model,
    free_port,
    log_tail,
    read_model_list,
    refuse_busy_port,
    served_version,
    wait_until_ready,
)

# An engine stopped before it was ready has nothing to wind down, and one still loading may not look at TERM at
# all (vLLM took 35 s, its whole grace, when stopped while it loaded): a short grace, then KILL.
UNREADY_STOP_GRACE_S = 3.0


@dataclass(frozen=True)
class Launch:
    """How one engine process is started, known and stopped: what runs, what says it is ready, the name its model is
    served under, and the version that runs."""

    what: str                       # for messages: "vllm serve"
    argv: list[str]
    env: dict[str, str]
    ready_paths: tuple[str, ...]    # polled in order until each answers 200
    served_model: str
    version: str | None             # the installed one; `version_path` asks the running server instead
    version_path: str | None = None
    stop_grace_s: float = 10.0      # after TERM to the group, how long before KILL
    model_list_path: str | None = None   # lists the served models (OpenAI's /v1/models); None where it cannot


# A kind's launcher: the Launch for its settings, to serve `request` on `port`.
LaunchFor = Callable[[Machine, LocalEngineSettings, DeployRequest, int], Launch]


@contextmanager
def server_process(
    argv: list[str], log_path: Path, ready_urls: list[str], timeout_s: float, env: dict[str, str], what: str,
    stop_grace_s: float = 10.0,
) -> Iterator[tuple[subprocess.Popen, float]]:
    """Start a server, wait until it is ready, yield it, and always stop its whole process group."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        try:
            process = start_in_own_group(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         env={**os.environ, **env})
        except FileNotFoundError as error:
            raise EngineError(f"cannot start {what}: command {argv[0]!r} not found ({error})") from error
    ready = False
    try:
        startup = wait_until_ready(process, ready_urls, timeout_s, log_path, what)
        ready = True
        yield process, startup
    finally:
        stop_process_group(process, stop_grace_s if ready else min(stop_grace_s, UNREADY_STOP_GRACE_S))


def _confirm_ready_server(process: subprocess.Popen, launch: Launch, host: str, port: int) -> None:
    """A ready server is the one started: it holds the port and, where it lists its models, lists ours."""
    confirm_listener_is_ours(process, host, port, launch.what)
    if launch.model_list_path:
        url = f"http://{host}:{port}{launch.model_list_path}"
        confirm_served_model(read_model_list(url, launch.what), launch.served_model, url)


def _warm_up(deployment: Deployment, sampling: dict, process: subprocess.Popen, log_path: Path) -> None:
    """One request first: it loads the weights and, under continuous batching, fixes the sampling settings every
    later request shares (transformers' batch manager takes them from its first request)."""
    started = time.monotonic()
    body = {"model": deployment.served_model, "messages": [{"role": "user", "content": "warm-up"}],
            "max_tokens": 1, **sampling}
    try:
        response = httpx.post(f"{deployment.base_url}/chat/completions", json=body, timeout=600)
        response.raise_for_status()
    except httpx.HTTPError as error:
        raise EngineError(
            f"{deployment.engine} started but failed its first request ({error}); process "
            f"{'alive' if process.poll() is None else 'exited'}; last lines of {log_path}:\n{log_tail(log_path)}"
        ) from error
    deployment.startup_seconds += time.monotonic() - started


@contextmanager
def start_server(launch_for: LaunchFor, machine: Machine, spec: EngineSpec,
                 request: DeployRequest) -> Iterator[Deployment]:
    """Start the server `launch_for` describes, yield its endpoint once it is ready (and warmed up, where
    `request` asks), and stop it when the block exits.

    Refused before anything starts: a missing model, a configured port something already listens on (EngineError),
    a disk without room for the engine's log (DiskSpaceError)."""
    settings = spec.settings
    if not Path(request.model_path).exists():
        raise EngineError(f"model path {request.model_path} does not exist; materialize model_snapshot first")
    if settings.port:
        refuse_busy_port(machine.bind_host, settings.port)
    require_free_space(request.log_path.parent, ENGINE_MIN_FREE_BYTES, "an engine's start (its log and caches)")
    port = settings.port or free_port(machine.bind_host)
    base = f"http://{machine.bind_host}:{port}"
    launch = launch_for(machine, settings, request, port)
    ready = [f"{base}{path}" for path in launch.ready_paths]
    with server_process(launch.argv, request.log_path, ready, settings.startup_timeout_s,
                        {**launch.env, **request.device_env}, launch.what, launch.stop_grace_s) as (process, startup):
        _confirm_ready_server(process, launch, machine.bind_host, port)
        version = served_version(f"{base}{launch.version_path}") if launch.version_path else None
        deployment = Deployment(engine=spec.kind, engine_version=version or launch.version, base_url=f"{base}/v1",
                                served_model=launch.served_model, argv=launch.argv, startup_seconds=startup,
                                pid=process.pid)
        if request.warmup_sampling is not None:
            _warm_up(deployment, request.warmup_sampling, process, request.log_path)
        try:
            yield deployment
        finally:
            deployment.measure_memory()
