"""Where yardstick keeps its state and which files it reads: the environment variables it honours, read here and
handed to the resources (and the `yardstick` command) as configuration. One exception: YARDSTICK_MATRIX is read
by `assets.matrix.matrix_path`, because the partition keys (one per variant) are needed when the asset definitions
load, below this layer; `matrix_path` is re-exported here so the wiring reads it from one place too.

| variable | meaning | default |
| YARDSTICK_HOME | state: models, engine logs, the warehouse, Dagster's own | .yardstick |
| YARDSTICK_WAREHOUSE | a DuckDB file, or `ducklake:postgres:<libpq string>` | $YARDSTICK_HOME/warehouse.duckdb |
| YARDSTICK_LAKE_DATA | where a DuckLake warehouse keeps its Parquet files (folder or object storage) | none |
| YARDSTICK_MATRIX | the evaluation matrix | pipelines/matrix.yaml |
| YARDSTICK_BENCHMARK_MIRROR | offline benchmark folder | the matrix's benchmark_mirror, else the hub |
| YARDSTICK_VLLM_COMMAND | how to start vLLM | for `device: cpu`, .venv-vllm's server module; else `vllm` |
| YARDSTICK_VLLM_CPU_ISA | probe vLLM's CPU library for avx2, avx512 or avx512_bf16 instead of this CPU's | this CPU |
| YARDSTICK_DEVICES | the GPUs engines may claim, comma-separated | CUDA_VISIBLE_DEVICES, else every GPU NVML sees |
"""

from __future__ import annotations

import os
from pathlib import Path

from assets.matrix import matrix_path
from assets.matrix.host import VLLM_CPU_PYTHON, default_vllm_command

DEFAULT_HOME = ".yardstick"


def home() -> Path:
    return Path(os.environ.get("YARDSTICK_HOME") or DEFAULT_HOME)


def models_dir() -> Path:
    return home() / "models"


def logs_dir() -> Path:
    return home() / "logs"


def claims_dir() -> Path:
    """One lock file per device: the engine steps' claims on them (assets.engine.devices)."""
    return home() / "claims"


def devices() -> str:
    return os.environ.get("YARDSTICK_DEVICES") or ""


def warehouse_path() -> str:
    return os.environ.get("YARDSTICK_WAREHOUSE") or str(home() / "warehouse.duckdb")


def lake_data() -> str:
    return os.environ.get("YARDSTICK_LAKE_DATA") or ""


def benchmark_mirror() -> str | None:
    return os.environ.get("YARDSTICK_BENCHMARK_MIRROR") or None


def vllm_command(cpu: bool = True) -> str:
    """How a vLLM engine starts (YARDSTICK_VLLM_COMMAND; else, on a CPU, .venv-vllm's server module; else `vllm`):
    read below this layer, where the matrix asks vLLM what it can run on this host."""
    return default_vllm_command(cpu)


def configured_vllm_command() -> str:
    """YARDSTICK_VLLM_COMMAND, or empty: then each engine's device chooses (see `vllm_command`)."""
    return os.environ.get("YARDSTICK_VLLM_COMMAND") or ""


__all__ = ["VLLM_CPU_PYTHON", "benchmark_mirror", "claims_dir", "devices", "home", "lake_data", "logs_dir",
           "matrix_path", "models_dir", "vllm_command", "configured_vllm_command", "warehouse_path"]
