"""The engines, one launcher per kind, looked up by the kind's name (as vLLM's benchmarks look up a backend's request
function): each yields a ready OpenAI-compatible endpoint (a `Deployment`) for the life of a block.

- `vllm` (launchers.vllm), `transformers` (launchers.transformers) and `llamacpp` (launchers.llamacpp) are started
  here: each says how (its argv, environment, readiness paths, version, stop grace, and what it refuses before
  anything starts), and `start_server` (launchers.server) starts, confirms, warms up and stops them alike.
- `external` (launchers.external) connects to an endpoint that runs already.

Adding a kind: its settings (assets.matrix.engines), its module here, and its line in `LAUNCHERS`.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from functools import partial

from assets.matrix import EngineSpec
from resources.launchers import external, llamacpp, transformers, vllm
from resources.launchers.deployment import Deployment, DeployRequest, EngineError, Machine
from resources.launchers.external import external_base_url
from resources.launchers.server import start_server

Launcher = Callable[[Machine, EngineSpec, DeployRequest], AbstractContextManager[Deployment]]

LAUNCHERS: dict[str, Launcher] = {
    "transformers": partial(start_server, transformers.launch),
    "vllm": partial(start_server, vllm.launch),
    "llamacpp": partial(start_server, llamacpp.launch),
    "external": external.deploy,
}

__all__ = ["LAUNCHERS", "DeployRequest", "Deployment", "EngineError", "Launcher", "Machine", "external_base_url"]
