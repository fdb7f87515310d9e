"""The identity of a variant's samples: its matrix settings and the exact weights they ran on."""

from __future__ import annotations

import hashlib

from assets.matrix import Variant


def config_hash(warehouse: object, variant: Variant) -> str:
    """What makes two samples comparable: the variant's settings and the exact weights they ran on."""
    snapshot = warehouse.query("SELECT fingerprint FROM model_snapshots WHERE variant = ?", [variant.name])
    if snapshot.empty:
        raise LookupError(f"no model_snapshot for variant '{variant.name}'; materialize model_snapshot first")
    identity = f"{variant.settings_hash}:{snapshot.iloc[0]['fingerprint']}"
    return hashlib.sha256(identity.encode()).hexdigest()[:16]
