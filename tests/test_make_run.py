"""`make run` refuses what it cannot run before running anything: a malformed matrix or an unknown variant exits
non-zero with the reason, and no leaderboard (which would show earlier results as if they were this run's)."""

import os
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parent.parent


def make_run(tmp_path: Path, matrix: Path, variants: str = "") -> subprocess.CompletedProcess:
    env = {**os.environ, "YARDSTICK_MATRIX": str(matrix), "YARDSTICK_HOME": str(tmp_path / "home")}
    env.pop("DAGSTER_HOME", None)
    return subprocess.run(["make", "-s", "--no-print-directory", "run", f"VARIANTS={variants}"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize(("body", "reason"), [
    ("variants:\n  v1: [unclosed\n", "is not valid YAML"),
    ("variants:\n  v1:\n    model: {path: /x}\n    engine: {kind: tgi}\n    hardware: h\n    benchmarks: [gsm8k]\n",
     "engine kind 'tgi' unknown"),
])
def test_a_malformed_matrix_stops_make_run(tmp_path, body, reason):
    matrix = tmp_path / "matrix.yaml"
    matrix.write_text(body)
    done = make_run(tmp_path, matrix)
    assert done.returncode != 0
    assert reason in done.stderr
    assert "materializing" not in done.stdout and "leaderboard" not in done.stdout.lower()


def test_an_unknown_variant_stops_make_run_naming_the_known_ones(tmp_path):
    done = make_run(tmp_path, ROOT / "tests" / "matrix.test.yaml", variants="tiny-test nope")
    assert done.returncode != 0
    assert "unknown variant nope" in done.stderr and "has: tiny-test, tiny-test-w8a16, tiny-test-api" in done.stderr
    assert "materializing" not in done.stdout
