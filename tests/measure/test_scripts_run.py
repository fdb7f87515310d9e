"""Every measurement script in tests/measure runs to its end on a tiny input, so none rots unnoticed: each is run
as its README line runs it (`python -m tests.measure.<script>` in the checkout) with its smallest options, and
what it prints is checked for the figures it exists to give. The numbers themselves are not judged here."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT, SHARED_BENCHMARKS, SHARED_GRADING, needs_shared

pytestmark = pytest.mark.integration

SCRIPTS = sorted(path.stem for path in (ROOT / "tests" / "measure").glob("*.py")
                 if path.stem not in ("__init__", Path(__file__).stem))


def _run(script: str, *options: str, timeout_s: float = 240) -> str:
    done = subprocess.run([sys.executable, "-m", f"tests.measure.{script}", *options], cwd=ROOT,
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True,
                          timeout=timeout_s)
    assert done.returncode == 0, f"{script} exited {done.returncode}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout


@needs_shared
def test_grader_reference():
    out = _run("grader_reference", str(SHARED_BENCHMARKS))
    assert "MATH-500: 500 solutions; own answer correct" in out and "GSM8K: 1319 solutions" in out


@needs_shared
def test_grader_agreement():
    out = _run("grader_agreement", str(SHARED_GRADING))
    assert "answers: agreement with the recorded verdicts" in out and "disagreements in" in out


@needs_shared
def test_grader_throughput():
    out = _run("grader_throughput", "--items", "5", "--k", "4", "--mirror", str(SHARED_BENCHMARKS))
    assert "20 responses (5 items x k=4)" in out and "identical verdicts: " in out


def test_loadgen_fidelity():
    out = _run("loadgen_fidelity", "--slots", "4", "--num-requests", "8", "--concurrency", "1,4",
               "--output-len", "4", "--ttft-ms", "10", "--tpot-ms", "2")
    assert "truth: TTFT 10.0 ms" in out
    assert "concurrency    1 (8 requests)" in out and "concurrency    4 (8 requests)" in out


def test_ingest_scale():
    out = _run("ingest_scale", "--rows", "200", "--batch", "100", "--row-by-row", "10", "--only", "file")
    assert "DuckDB file: 200 rows in batches of 100" in out and "row by row (10 rows" in out


@pytest.mark.skipif(shutil.which("bwrap") is None, reason="the sandbox needs bubblewrap (make test installs it)")
def test_sandbox_overhead():
    out = _run("sandbox_overhead", "--sequential", "2")
    assert "graded 164 canonical solutions" in out and "164 passed" in out and "median of 2" in out


def test_vllm_bench_side_by_side_against_the_reference_server(tiny_model):
    out = _run("vllm_bench_side_by_side", "--targets", "reference", "--concurrency", "2", "--requests", "4",
               "--input-len", "8", "--output-len", "4", "--ttft-ms", "10", "--tpot-ms", "2", "--slots", "4",
               "--model-dir", str(tiny_model))
    assert "| reference | 2 |" in out and "failed to start" not in out


def test_llamacpp_timings_on_the_tiny_model(tiny_gguf):
    out = _run("llamacpp_timings", str(tiny_gguf), "--concurrency", "1,4", "--parallel", "2", "--requests", "4",
               "--input-len", "8", "--output-len", "8")
    assert "### concurrency 1: 4 of 4 requests on both clocks, 2 slots (no request waits for a slot)" in out
    assert "### concurrency 4: 4 of 4 requests on both clocks, 2 slots (requests wait for a slot)" in out
    assert out.count("| TTFT vs prompt_ms | ") == 2 and out.count("| TPOT vs predicted_per_token_ms | ") == 2
    assert out.count("token counts that differ (client usage vs engine predicted_n): 0") == 2


def test_busy_host_on_the_tiny_model(tiny_model):
    out = _run("busy_host", "--variants", "tiny-bf16-transformers-cpu", "--model", str(tiny_model), "--concurrency",
               "2", "--requests", "8", "--idle-windows", "1", "--window-s", "0.5")
    assert "idle host, 1 windows of 0.5 s: other processes' CPU median" in out
    assert out.count("| tiny-bf16-transformers-cpu | quiet | concurrency 2 |") == 1
    assert out.count("| tiny-bf16-transformers-cpu | 1 hog(s) | concurrency 2 |") == 1
    assert "regression check, quiet run then hogged run: " in out


def test_fault_tolerance_on_the_real_engine(tiny_model):
    out = _run("fault_tolerance", "--items", "2", "--k", "1", "--rounds", "1", "--max-tokens", "8",
               "--share", "0.5", "--stall-s", "2", "--deadline-s", "1", "--model-dir", str(tiny_model))
    assert "ready after" in out


@pytest.mark.skip(reason="common_seeds quantizes the tiny model to W4A16 with GPTQ and serves it and its bf16 "
                         "baseline in two vLLM deployments; its smallest run (--k 1 --benchmarks arith) is minutes")
def test_common_seeds():
    _run("common_seeds", "--k", "1", "--benchmarks", "arith")


@pytest.mark.skipif(shutil.which("guidellm") is None,
                    reason="GuideLLM lives in its own environment (see the script's docstring); none on PATH here")
def test_guidellm_side_by_side(tiny_model):
    out = _run("guidellm_side_by_side", "--guidellm", shutil.which("guidellm"), "--tokenizer", str(tiny_model),
               "--levels", "1:4", "--output-len", "4")
    assert "| guidellm | 1 |" in out and "| yardstick | 1 |" in out


def test_every_script_has_a_smoke_test():
    tested = {name.removeprefix("test_").split("_against_")[0].split("_on_the_")[0]
              for name in globals() if name.startswith("test_") and name != "test_every_script_has_a_smoke_test"}
    assert tested == set(SCRIPTS)
