"""The host's devices as a resource: an engine step claims the ones its variant needs for the life of its engine,
and the engine is told exactly those (assets.engine.devices has the rules and the claims themselves).

Dagster's `engine` pool, sized to the host's device count (by `yardstick materialize`), queues the steps; a pool counts
one slot per step whatever the step needs, so the claims here decide which devices, and make a step that needs
more than are free wait for them.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg

from assets.engine.devices import DeviceClaimError, DeviceClaims, Host, claimed_env, devices_needed, discover_host
from assets.matrix import EngineSpec
from assets.matrix.host import usable_cores


class DeviceResource(dg.ConfigurableResource):
    """The GPUs (or, without one, CPU engine slots) engines run on, claimed per engine step."""

    claims_dir: str        # one lock file per device ($YARDSTICK_HOME/claims)
    devices: str = ""      # YARDSTICK_DEVICES: the GPUs to use, comma-separated; empty: CUDA_VISIBLE_DEVICES or NVML
    cores_per_engine: int = 0   # without a GPU: the cores one engine uses; 0: every core (one engine at a time)
    poll_s: float = 0.5

    def host(self) -> Host:
        return discover_host(self.devices, os.environ.get("CUDA_VISIBLE_DEVICES"), usable_cores(),
                             self.cores_per_engine)

    def claims(self) -> DeviceClaims:
        return DeviceClaims(Path(self.claims_dir), self.host(), self.poll_s)

    @contextmanager
    def claim(self, spec: EngineSpec, holder: str, report: Callable[[str], None]) -> Iterator[dict[str, str]]:
        """Hold the devices an engine of `spec` needs for the block, waiting while they are taken, and yield the
        environment that gives the engine exactly those (CUDA_VISIBLE_DEVICES on GPUs)."""
        count = devices_needed(spec.settings)
        claims = self.claims()
        if count and claims.host.gpus and "CUDA_VISIBLE_DEVICES" in getattr(spec.settings, "env", {}):
            raise DeviceClaimError(
                f"{holder}: the engine's `env` sets CUDA_VISIBLE_DEVICES, but yardstick sets it to the GPUs it "
                "claims for the engine, so that engines never share one; remove it from the variant's engine "
                "settings (set YARDSTICK_DEVICES to limit the GPUs yardstick uses)")
        with claims.claim(count, holder, report) as devices:
            if devices:
                report(f"claimed {claims.host.unit}(s) {', '.join(devices)} of {claims.host.describe()}")
            yield claimed_env(claims.host, spec.settings, devices)
