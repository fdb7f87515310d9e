"""What every stage needs to know about the partition it runs for."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from pipelines.matrix import Matrix, Variant, load_matrix


def variant_named(name: str) -> Variant:
    return load_matrix().variant(name)


def config_hash(warehouse: object, variant: Variant) -> str:
    """What makes two samples comparable: the variant's settings and the exact weights they ran on."""
    snapshot = warehouse.query("SELECT fingerprint FROM model_snapshots WHERE variant = ?", [variant.name])
    if snapshot.empty:
        raise LookupError(f"no model_snapshot for variant '{variant.name}'; materialize model_snapshot first")
    identity = f"{variant.settings_hash}:{snapshot.iloc[0]['fingerprint']}"
    return hashlib.sha256(identity.encode()).hexdigest()[:16]


def benchmark_mirror(matrix: Matrix | None = None) -> str | None:
    """The offline mirror folder: YARDSTICK_BENCHMARK_MIRROR, else the matrix's `benchmark_mirror`
    (relative to the matrix file), else None for the hub."""
    from_env = os.environ.get("YARDSTICK_BENCHMARK_MIRROR")
    if from_env:
        return str(Path(from_env).expanduser().resolve())
    matrix = matrix or load_matrix()
    if matrix.benchmark_mirror:
        return str((matrix.path.parent / matrix.benchmark_mirror).resolve())
    return None
