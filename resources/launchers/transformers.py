"""`transformers serve`: Hugging Face's server, on the CPU or any torch device."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

from assets.matrix import TransformersSettings
from assets.versions import installed_version
from resources.launchers.deployment import DeployRequest, Machine
from resources.launchers.server import Launch


def _sibling_command(name: str) -> str:
    """A console script installed next to the running interpreter, else `name` on PATH."""
    candidate = Path(sys.executable).with_name(name)
    return shlex.quote(str(candidate)) if candidate.exists() else name


def argv(command: str, model_path: str, settings: TransformersSettings, host: str, port: int,
         trust_remote_code: bool) -> list[str]:
    words = [*shlex.split(command), "serve", model_path, "--host", host, "--port", str(port),
             "--device", settings.device, "--dtype", settings.dtype]
    if settings.continuous_batching:
        words += ["--continuous-batching",
                  "--cb-num-blocks", str(settings.cb_num_blocks),
                  "--cb-block-size", str(settings.cb_block_size),
                  "--cb-max-batch-tokens", str(settings.cb_max_batch_tokens)]
    if settings.seed is not None:
        words += ["--default-seed", str(settings.seed)]
    if trust_remote_code:
        words.append("--trust-remote-code")
    return words


def launch(machine: Machine, settings: TransformersSettings, request: DeployRequest, port: int) -> Launch:
    """`transformers serve`: it serves the model under its path, and lists the hub cache at /v1/models (which
    fails on a machine without one), so /health alone says it is up."""
    words = argv(machine.transformers_command or _sibling_command("transformers"), request.model_path, settings,
                 machine.bind_host, port, request.trust_remote_code)
    env = {"OMP_NUM_THREADS": str(machine.cpu_threads), "HF_HUB_OFFLINE": "1",
           "TRANSFORMERS_NO_ADVISORY_WARNINGS": "1", **settings.env}
    return Launch("transformers serve", words, env, ("/health",), request.model_path,
                  installed_version("transformers"))
