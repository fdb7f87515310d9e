"""Runs of the whole chain in a subprocess, for the tests of what stops them and what recovers after them: a
matrix of two tiny variants on a host with one engine device, so the second waits for the engine pool while the
first holds it."""

import os
import sys
from pathlib import Path

import duckdb
import yaml

from tests.conftest import ROOT, STATE

BIN = Path(sys.executable).parent
VARIANT = "tiny-dies"
OTHER = "tiny-waits"   # a second variant, to wait for the engine pool while the first holds it
ITEMS, K = 40, 2


def run_environment(tmp_path: Path, items: int = ITEMS) -> dict[str, str]:
    test_matrix = yaml.safe_load((ROOT / "tests" / "matrix.test.yaml").read_text())
    defaults = {**test_matrix["defaults"], "benchmarks": {"arith": items},
                "protocol": {**test_matrix["defaults"]["protocol"], "k": K, "k_by_benchmark": {}}}
    variant = {"quantization": "none",
               "serving": {"concurrency": [1], "request_rates": [], "requests_per_level": 2}}
    matrix = {"defaults": defaults, "variants": {VARIANT: variant, OTHER: variant}}
    (tmp_path / "matrix.yaml").write_text(yaml.safe_dump(matrix))
    dagster_home = tmp_path / "dagster"
    dagster_home.mkdir()
    (dagster_home / "dagster.yaml").write_text((ROOT / "pipelines" / "dagster.yaml").read_text())
    # A host with one engine device, whatever this one has: the engine pool holds one step, and the second waits.
    return {**os.environ, "YARDSTICK_MATRIX": str(tmp_path / "matrix.yaml"), "YARDSTICK_HOME": str(STATE),
            "YARDSTICK_WAREHOUSE": str(tmp_path / "warehouse.duckdb"), "DAGSTER_HOME": str(dagster_home),
            "YARDSTICK_DEVICES": "0"}


def generated_samples(warehouse: Path, variant: str = VARIANT) -> int:
    try:
        with duckdb.connect(str(warehouse), read_only=True) as connection:
            return connection.execute("SELECT count(*) FROM benchmark_generations WHERE variant = ?",
                                      [variant]).fetchone()[0]
    except (duckdb.Error, OSError):   # not created yet, or being written this instant
        return 0
