"""What every launcher shares: what a deploy is asked for (`DeployRequest`, on a `Machine`), what it hands back (the
`Deployment`, recorded with every result it served), and the error it raises (`EngineError`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from assets.engine.gpu_memory import group_gpu_memory_bytes
from assets.processes import peak_rss_bytes
from assets.secrets import redact_url


class EngineError(RuntimeError):
    """An engine did not start, died, or cannot be reached."""


class Machine(Protocol):
    """The machine-level settings launchers read (resources.engines.EngineResource holds them)."""

    bind_host: str
    cpu_threads: int
    transformers_command: str   # empty: the `transformers` command of this Python environment
    vllm_command: str           # empty: chosen by the engine's device (assets.matrix.host.default_vllm_command)


@dataclass(frozen=True)
class DeployRequest:
    """What to serve, for whom, and where the server logs."""

    model_path: str
    served_name: str
    log_path: Path
    trust_remote_code: bool = False
    warmup_sampling: dict | None = None     # None: no warm-up request
    device_env: dict[str, str] = field(default_factory=dict)   # the devices claimed for it (resources.devices)


@dataclass
class Deployment:
    """What actually ran: recorded with every result it served."""

    engine: str
    engine_version: str | None
    base_url: str
    served_model: str
    api_key: str = "not-needed"
    argv: list[str] = field(default_factory=list)
    startup_seconds: float = 0.0
    pid: int | None = None
    peak_rss_bytes: int | None = None
    gpu_memory_bytes: int | None = None   # held on the GPU when measured (vLLM preallocates its cache)

    @property
    def public_url(self) -> str:
        """The endpoint as stored and logged: `base_url` without credentials."""
        return redact_url(self.base_url)

    def measure_memory(self) -> None:
        """Read the server's peak resident memory and the GPU memory its process group holds, now, while it
        still runs; a no-op for endpoints started elsewhere."""
        if self.pid is not None:
            self.peak_rss_bytes = peak_rss_bytes(self.pid) or self.peak_rss_bytes
            self.gpu_memory_bytes = group_gpu_memory_bytes(self.pid) or self.gpu_memory_bytes
