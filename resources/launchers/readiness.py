"""Ports and readiness: a port to serve on, refused when something listens there already; a started server polled
until it answers (failing fast, with its log's tail and advice, when it dies or time runs out); and a ready server
confirmed to be the one started: the socket on its port held by its process tree (read from /proc, where there is
one), and its model list naming the model asked for. Otherwise a busy port would have the run benchmark whatever
server was there.
"""

from __future__ import annotations

import errno
import socket
import subprocess
import time
from pathlib import Path

import dagster as dg
import httpx

from resources.disk import disk_full_hint
from resources.launchers.deployment import EngineError
from resources.ports import describe_processes, foreign_listeners, port_holder

LOG_TAIL_LINES = 40
# What engines print when the weights or the KV cache do not fit (PyTorch, vLLM).
_OUT_OF_MEMORY = ("CUDA out of memory", "OutOfMemoryError", "No available memory for the cache blocks",
                  "larger than the maximum number of tokens that can be stored in KV cache",
                  "Cannot allocate memory")


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


def refuse_busy_port(host: str, port: int) -> None:
    """Raise EngineError when `host:port` cannot be listened on: started anyway, the engine would fail to bind
    while the server already there answered its readiness checks and the run benchmarked that one."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        # As the engines' servers (uvicorn) bind: over connections an earlier server there left in TIME_WAIT, which
        # a probe without SO_REUSEADDR would take for a busy port; Linux refuses it all the same when one listens.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as error:
            if error.errno != errno.EADDRINUSE:
                raise EngineError(f"cannot listen on {host}:{port} ({error.strerror}); set another `port:` in the "
                                  "variant's engine settings in the matrix, or leave `port` unset to get a free "
                                  "one") from error
            raise EngineError(
                f"port {port} on {host} is already in use: {port_holder(host, port)} listens there, and the engine "
                "would be measured against that server instead. Stop it, set another `port:` in the variant's "
                "engine settings in the matrix, or leave `port` unset to get a free one") from error


def log_tail(path: Path | None, lines: int = LOG_TAIL_LINES) -> str:
    if path is None or not path.exists():
        return "(no log)"
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def out_of_memory_hint(tail: str) -> str:
    """Advice when the log shows the engine ran out of memory while loading; empty otherwise."""
    if not any(marker in tail for marker in _OUT_OF_MEMORY):
        return ""
    return ("\nThe engine ran out of memory while loading: the weights and KV cache do not fit. See "
            "`yardstick plan VARIANT` for the memory plan, then lower max_model_len or max_num_seqs, raise "
            "tensor_parallel_size, use a quantized variant, or change gpu_memory_utilization.")


def failure_hints(tail: str, log_path: Path) -> str:
    """Advice for an engine that failed to start, from its log's tail: out of memory, or out of disk."""
    return out_of_memory_hint(tail) + disk_full_hint(tail, log_path.parent)


def wait_until_ready(
    process: subprocess.Popen, urls: list[str], timeout_s: float, log_path: Path, what: str
) -> float:
    """Poll every URL (health, then the model list) until each answers 200; fail fast with the log tail (and
    advice when it shows the engine ran out of memory or of disk) if the process dies, or when time runs out."""
    started = time.monotonic()
    pending = list(urls)
    while True:
        if process.poll() is not None:
            tail = log_tail(log_path)
            raise EngineError(
                f"{what} exited with code {process.returncode} before it was ready; "
                f"last lines of {log_path}:\n{tail or '(the log is empty)'}{failure_hints(tail, log_path)}"
            )
        try:
            while pending and httpx.get(pending[0], timeout=2.0).status_code == 200:
                pending.pop(0)
            if not pending:
                return time.monotonic() - started
        except httpx.HTTPError:
            pass
        if time.monotonic() - started > timeout_s:
            tail = log_tail(log_path)
            raise EngineError(
                f"{what} was not ready at {pending[0]} after {timeout_s:.0f} s; last lines of {log_path}:\n"
                f"{tail or '(the log is empty)'}{failure_hints(tail, log_path)}"
            )
        time.sleep(0.25)


def confirm_listener_is_ours(process: subprocess.Popen, host: str, port: int, what: str) -> None:
    """Raise EngineError when the socket listening on `host:port` is held by a process outside the started one's
    tree (something took the port between the check and the start, or while the engine loaded); where /proc
    cannot tell, say so in the log and go on."""
    foreign = foreign_listeners(host, port, process.pid)
    if foreign is None:
        dg.get_dagster_logger().info(
            f"could not tell from /proc which process listens on {host}:{port}; not checking that it is {what}")
        return
    if foreign:
        raise EngineError(
            f"the server answering on {host}:{port} is not {what} (pid {process.pid}) nor a process it started: "
            f"{describe_processes(foreign)} listens there. Stop that process and run again; where the variant's "
            "engine settings set `port:`, set another or leave it unset to get a free one")


def confirm_served_model(listing: object, served_model: str, url: str) -> None:
    """Raise EngineError unless a model list (the JSON of OpenAI's /v1/models) names `served_model`."""
    try:
        served = [str(model["id"]) for model in listing["data"]]
    except (KeyError, TypeError) as error:
        raise EngineError(f"the server at {url} did not answer with a model list: {listing!r:.200}") from error
    if served_model not in served:
        raise EngineError(
            f"the server at {url} serves {served}, not {served_model!r}: it is not the engine started for this "
            "variant, or that engine ignored the served model name. Stop whatever else listens on its port, or "
            "check the engine command")


def read_model_list(url: str, what: str) -> object:
    """The JSON a ready server's model list answers with."""
    try:
        return httpx.get(url, timeout=10.0).json()
    except (httpx.HTTPError, ValueError) as error:
        raise EngineError(f"{what} is up but its model list at {url} cannot be read ({error})") from error


def served_version(url: str) -> str | None:
    """The version a running server reports about itself (vLLM's /version), or None when it does not say."""
    try:
        response = httpx.get(url, timeout=5.0)
        return str(response.json()["version"]) if response.status_code == 200 else None
    except (httpx.HTTPError, ValueError, KeyError, TypeError):
        return None
