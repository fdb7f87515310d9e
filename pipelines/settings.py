"""Where yardstick keeps its state and which files it reads: the environment variables it honours, read here and
handed to the resources (and the `yardstick` command) as configuration. One exception: YARDSTICK_MATRIX is read
by `assets.matrix.matrix_path`, because the partition keys (one per variant) are needed when the asset definitions
load, below this layer; `matrix_path` is re-exported here so the wiring reads it from one place too.

| variable | meaning | default |
| YARDSTICK_HOME | state: models, engine logs, the warehouse, Dagster's own | .yardstick |
| YARDSTICK_WAREHOUSE | the DuckDB file | $YARDSTICK_HOME/warehouse.duckdb |
| YARDSTICK_MATRIX | the evaluation matrix | pipelines/matrix.yaml |
| YARDSTICK_BENCHMARK_MIRROR | offline benchmark folder | the matrix's benchmark_mirror, else the hub |
| YARDSTICK_VLLM_COMMAND | how to start vLLM | vllm |
"""

from __future__ import annotations

import os
from pathlib import Path

from assets.matrix import matrix_path

DEFAULT_HOME = ".yardstick"


def home() -> Path:
    return Path(os.environ.get("YARDSTICK_HOME") or DEFAULT_HOME)


def models_dir() -> Path:
    return home() / "models"


def logs_dir() -> Path:
    return home() / "logs"


def warehouse_path() -> str:
    return os.environ.get("YARDSTICK_WAREHOUSE") or str(home() / "warehouse.duckdb")


def benchmark_mirror() -> str | None:
    return os.environ.get("YARDSTICK_BENCHMARK_MIRROR") or None


def vllm_command() -> str:
    return os.environ.get("YARDSTICK_VLLM_COMMAND") or "vllm"


__all__ = ["benchmark_mirror", "home", "logs_dir", "matrix_path", "models_dir", "vllm_command", "warehouse_path"]
