"""`external`: an endpoint that already runs (a vLLM cluster, a paid API as a baseline); nothing is started, and
nothing is stopped."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import dagster as dg

from assets.matrix import EngineSpec
from assets.secrets import redact_url, url_has_credentials
from resources.launchers.deployment import Deployment, DeployRequest, EngineError, Machine


def external_base_url(spec: EngineSpec) -> str:
    """The base URL of an external endpoint: written in the matrix, or read from the variable it names."""
    variable = spec.settings.base_url_env
    base_url = dg.EnvVar(variable).get_value() if variable else spec.settings.base_url
    if not base_url:
        where = f"environment variable {variable}" if variable else "'base_url' in the variant's engine settings"
        raise EngineError(f"engine kind 'external' needs its endpoint's base URL; set {where}")
    return str(base_url).rstrip("/")


def _api_key(key_variable: str | None, base_url: str) -> str:
    """The API key the engine settings name (`api_key_env`), read from the environment."""
    if key_variable and url_has_credentials(base_url):
        raise EngineError(f"the endpoint {redact_url(base_url)} carries credentials in its URL and the engine "
                          f"settings name a key too (api_key_env: {key_variable}); the client would send the "
                          "URL's and drop the key: keep one, the URL without user:password@, or no api_key_env")
    if not key_variable:
        return "not-needed"
    api_key = dg.EnvVar(key_variable).get_value() or ""
    if not api_key:
        raise EngineError(f"environment variable {key_variable} (the API key for {redact_url(base_url)}) is not set")
    return api_key


@contextmanager
def deploy(machine: Machine, spec: EngineSpec, request: DeployRequest) -> Iterator[Deployment]:
    """The endpoint, as the engine settings give it: its base URL, the model it serves, the key it takes."""
    base_url = external_base_url(spec)
    yield Deployment(engine="external", engine_version=None, base_url=base_url, served_model=spec.settings.model,
                     api_key=_api_key(spec.settings.api_key_env, base_url))
