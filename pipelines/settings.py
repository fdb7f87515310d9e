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
| YARDSTICK_VLLM_COMMAND | how to start vLLM | without a GPU, .venv-vllm's server module; else `vllm` |
| YARDSTICK_DEVICES | the GPUs engines may claim, comma-separated | CUDA_VISIBLE_DEVICES, else every GPU NVML sees |
"""

from __future__ import annotations

import os
import shlex
from pathlib import Path

from assets.matrix import matrix_path
from resources.engines import VLLM_SERVER_MODULE

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


PROJECT_ROOT = Path(__file__).resolve().parent.parent
VLLM_CPU_PYTHON = PROJECT_ROOT / ".venv-vllm" / "bin" / "python"


def has_nvidia_gpu() -> bool:
    return Path("/dev/nvidiactl").exists() or any(Path("/dev").glob("nvidia[0-9]*"))


def vllm_command() -> str:
    """How the vLLM engine starts: YARDSTICK_VLLM_COMMAND (a GPU environment, a container, a wrapper); else,
    on a machine without an NVIDIA GPU, vLLM's CPU build in .venv-vllm, started as its server module (its
    console script does not run: the distribution is named vllm-cpu); else `vllm` on the PATH."""
    configured = os.environ.get("YARDSTICK_VLLM_COMMAND")
    if configured:
        return configured
    if not has_nvidia_gpu() and VLLM_CPU_PYTHON.exists():
        return f"{shlex.quote(str(VLLM_CPU_PYTHON))} -m {VLLM_SERVER_MODULE}"
    return "vllm"


__all__ = ["benchmark_mirror", "claims_dir", "devices", "home", "lake_data", "logs_dir", "matrix_path", "models_dir",
           "vllm_command", "warehouse_path"]
