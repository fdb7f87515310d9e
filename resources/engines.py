"""The engine resource: starts the engine a variant names, through its kind's launcher (resources.launchers), and
hands back its OpenAI-compatible endpoint for the life of a block; the machine-level settings live here."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg

from assets.matrix import EngineSpec
from resources.launchers import LAUNCHERS, Deployment, DeployRequest, EngineError


class EngineResource(dg.ConfigurableResource):
    """Starts the engine a variant names and hands back its endpoint; machine-level settings live here."""

    bind_host: str = "127.0.0.1"
    log_dir: str   # where each started server logs ($YARDSTICK_HOME/logs)
    transformers_command: str = ""  # empty: the `transformers` command of this Python environment
    # Empty: by the engine's device, vLLM's CPU build in .venv-vllm for `device: cpu`, else `vllm` (assets.matrix.host).
    vllm_command: str = ""
    cpu_threads: int = 1

    @contextmanager
    def deploy(
        self, spec: EngineSpec, model_path: str, served_name: str, log_name: str,
        trust_remote_code: bool = False, warmup_sampling: dict | None = None, device_env: dict | None = None,
    ) -> Iterator[Deployment]:
        """Yield a ready endpoint for `model_path`; a server started here is stopped when the block exits.
        `device_env` tells the server the devices claimed for it (CUDA_VISIBLE_DEVICES; see resources.devices).

        Refused before anything starts: a configured port something already listens on (EngineError), a disk
        without room for the engine's log (DiskSpaceError)."""
        launcher = LAUNCHERS.get(spec.kind)
        if launcher is None:
            raise EngineError(f"engine kind '{spec.kind}' has no launcher; known: {', '.join(LAUNCHERS)}")
        request = DeployRequest(model_path=model_path, served_name=served_name,
                                log_path=Path(self.log_dir).resolve() / f"{log_name}.log",
                                trust_remote_code=trust_remote_code, warmup_sampling=warmup_sampling,
                                device_env=dict(device_env or {}))
        with launcher(self, spec, request) as deployment:
            yield deployment
