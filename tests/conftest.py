"""Test settings: a small matrix, the offline benchmark mirror, and a private state folder per session; the
tiers every test belongs to; the tiny model, built once per session; and the one /proc scanner.

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

# Registered in pyproject.toml; `make test-fast` runs the first.
TIERS = ("unit", "integration", "timing")

needs_shared = pytest.mark.skipif(
    not SHARED_BENCHMARKS.is_dir(), reason=f"offline benchmark mirror {SHARED_BENCHMARKS} is not there"
)


@pytest.hookimpl(tryfirst=True)   # before `-m` deselects: a test with no tier must not vanish from every tier
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    wrong = [f"{item.nodeid} has {tiers or 'none'}" for item in items
             if len(tiers := sorted({mark.name for mark in item.iter_markers() if mark.name in TIERS})) != 1]
    if wrong:
        raise pytest.UsageError(
            f"every test belongs to exactly one tier of {', '.join(TIERS)}; mark the module "
            "(`pytestmark = pytest.mark.unit`) or, where a module mixes tiers, each test:\n  " + "\n  ".join(wrong))


@pytest.fixture(scope="session")
def state_dir() -> Path:
    return STATE


@pytest.fixture(scope="session")
def tiny_model() -> Path:
    """The trained offline tiny model, built once per session in the folder the pipeline's hub reads it from."""
    import shutil

    from assets.models.tiny import TINY_MODEL_NAME, ensure_tiny_model

    target = STATE / "models" / TINY_MODEL_NAME
    # A model built earlier (`make run` leaves one in .yardstick/models) saves minutes when running tests by hand;
    # ensure_tiny_model rebuilds it anyway unless it is the same build.
    if os.environ.get("YARDSTICK_TEST_TINY_MODEL") and not target.exists():
        shutil.copytree(os.environ["YARDSTICK_TEST_TINY_MODEL"], target)
    return ensure_tiny_model(target)


@pytest.fixture(scope="session")
def tiny_gguf(tiny_model) -> Path:
    """The tiny model converted to GGUF (its bf16 tensors kept), by the quantization stage's own code."""
    from assets.matrix import QuantizationSpec
    from assets.models.gguf import quantize_gguf

    return Path(quantize_gguf(tiny_model, STATE / "models" / "tiny-gguf-none", QuantizationSpec())["local_path"])


def live_processes(*command_fragments: str, group: int | None = None, uid_from: int | None = None) -> list[int]:
    """PIDs of processes that are alive (a zombie is dead, waiting to be reaped) whose command line contains
    every fragment and, when `group` is given, that belong to that process group; when `uid_from` is given, that
    run as a user id from it up."""
    from assets.processes import PROC, all_processes  # here: the project loads after the environment is set

    found = []
    for process in all_processes():
        if not process.alive or (group is not None and process.group != group):
            continue
        proc = PROC / str(process.pid)
        try:
            command = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            uid = proc.stat().st_uid if uid_from is not None else None
        except OSError:
            continue
        if uid_from is not None and uid < uid_from:
            continue
        if all(fragment in command for fragment in command_fragments):
            found.append(process.pid)
    return found


def engine_processes(marker: str) -> list[int]:
    """PIDs of live engine servers (a command line with ' serve ') whose command line contains `marker`."""
    return live_processes(marker, " serve ")


@pytest.fixture(scope="session")
def postgres():
    """A private PostgreSQL server for the session (tests/instruments/postgres.py): DuckLake's catalog."""
    from tests.instruments.postgres import running_postgres

    with running_postgres() as server:
        yield server
