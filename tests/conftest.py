"""Test settings: a small matrix, the offline benchmark mirror, and a private state folder per session.

The environment is set before anything from the project is imported, because the Dagster partitions are
read from the matrix at import time.
"""

import os
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED_BENCHMARKS = ROOT.parent / "shared" / "data" / "benchmarks"
SHARED_GRADING = ROOT.parent / "shared" / "data" / "grading"
STATE = Path(tempfile.mkdtemp(prefix="yardstick-tests-"))

os.environ["YARDSTICK_MATRIX"] = str(ROOT / "tests" / "matrix.test.yaml")
os.environ["YARDSTICK_HOME"] = str(STATE)
os.environ.pop("YARDSTICK_WAREHOUSE", None)
os.environ["YARDSTICK_BENCHMARK_MIRROR"] = str(SHARED_BENCHMARKS)
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")

needs_shared = pytest.mark.skipif(
    not SHARED_BENCHMARKS.is_dir(), reason=f"offline benchmark mirror {SHARED_BENCHMARKS} is not there"
)


def engine_processes(marker: str) -> list[int]:
    """PIDs of live processes whose command line contains `marker` and 'serve'."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = next((line for line in (proc / "status").read_text().splitlines() if line.startswith("State:")), "")
        except OSError:
            continue
        if marker in cmdline and " serve " in cmdline and "zombie" not in state:
            found.append(int(proc.name))
    return found


@pytest.fixture(scope="session")
def state_dir() -> Path:
    return STATE
