"""What this host's engines can do (assets/matrix/host.py): vLLM's CPU build probed on this host, the matrix routing
a variant it cannot serve to its fallback engine or reporting it not run, and the launcher refusing, before anything
starts, what the build cannot run. Both branches run on every host: the AVX2 answer is forced by probing the library
vLLM loads on an AVX2 CPU (YARDSTICK_VLLM_CPU_ISA=avx2), and the routing is checked on answers built here."""

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest
import yaml

from assets.matrix import EngineSpec, MatrixError, load_matrix
from assets.matrix.host import (
    FORCE_ISA_ENV,
    ProbeError,
    VllmCpuCapabilities,
    cpu_signature,
    forced_isa,
    vllm_cpu_capabilities,
    vllm_python,
)
from pipelines import settings
from resources.engines import EngineError, EngineResource
from resources.warehouse import WarehouseResource
from tests.conftest import ROOT, STATE, needs_shared

BIN = Path(sys.executable).parent
# What vllm-cpu 0.32.0 (pinned in constraints-vllm.txt) answers on an AVX2 CPU and on an AVX-512 one, as probed.
AVX2 = VllmCpuCapabilities(
    vllm_version="0.32.0", library="_C_AVX2",
    kernels=frozenset({"onednn_scaled_mm", "onednn_mm", "torch_fp8_scaled_mm"}),
    other_libraries={"_C_AVX512": frozenset({"cpu_gemm_wna16", "onednn_scaled_mm", "onednn_mm"}),
                     "_C": frozenset({"cpu_gemm_wna16", "onednn_scaled_mm", "onednn_mm"})},
    weight_only_bits=(4,), cpu="an AVX2 CPU (avx2)")
AVX512 = VllmCpuCapabilities(
    vllm_version="0.32.0", library="_C_AVX512", kernels=frozenset({"cpu_gemm_wna16", "onednn_scaled_mm"}),
    other_libraries={"_C_AVX2": frozenset({"onednn_scaled_mm"})}, weight_only_bits=(4,), cpu="avx2, avx512f")
NOT_THERE_ANYWHERE = VllmCpuCapabilities(
    vllm_version="0.32.0", library="_C_AVX2", kernels=frozenset(), other_libraries={"_C_AVX512": frozenset()},
    weight_only_bits=(4,), cpu="an AVX2 CPU (avx2)")
# On an AVX2 CPU vLLM's AVX-512 libraries may not even load to be asked.
AVX2_UNASKED = dataclasses.replace(AVX2, other_libraries={"_C_AVX512": None, "_C": None})


@pytest.mark.unit
@pytest.mark.parametrize(("capabilities", "scheme", "named"), [
    (AVX2, "W4A16", ["W4A16 needs cpu_gemm_wna16", "_C_AVX2", "AVX-512 (avx512f)", "fallback: transformers"]),
    (AVX2, "W8A16", ["W8A16 needs cpu_gemm_wna16", "AVX-512"]),
    (AVX2, "W8A8", None),
    (AVX2, "FP8_DYNAMIC", None),
    (AVX2, "none", None),
    (AVX512, "W4A16", None),
    (AVX512, "W8A16", ["8-bit weights", "takes 4-bit weights only, on any CPU"]),
    (NOT_THERE_ANYWHERE, "W8A8", ["onednn_scaled_mm", "none of its libraries runs it", "or run it with vLLM on a GPU"]),
    (AVX2_UNASKED, "W4A16", ["cpu_gemm_wna16", "_C_AVX512, _C may have it, but would not load on this CPU",
                             "a CPU with AVX-512 (avx512f)", "run it on a CPU with that feature"]),
    (NOT_THERE_ANYWHERE, "FP8_DYNAMIC", ["FP8_DYNAMIC needs torch_fp8_scaled_mm", "torch's FP8 matmul"]),
])
def test_what_a_build_cannot_run_is_named_with_its_kernel_and_cpu_feature(capabilities, scheme, named):
    problem = capabilities.problem(scheme)
    if named is None:
        assert problem is None
    else:
        assert problem is not None and all(part in problem for part in named), problem


def _matrix(tmp_path: Path, engine: dict, scheme: str = "W4A16") -> Path:
    path = tmp_path / "matrix.yaml"
    path.write_text(yaml.safe_dump({"variants": {"v": {
        "model": {"generate": "tiny-r1-qwen2"}, "hardware": "cpu-2vcpu", "quantization": scheme,
        "benchmarks": {"arith": 2}, "engine": engine}}}))
    return path


VLLM_CPU = {"kind": "vllm", "device": "cpu", "concurrency": 3, "cpu_kvcache_space_gib": 1}
FALLBACK = {**VLLM_CPU, "fallback": {"kind": "transformers", "cb_num_blocks": 64}}


@pytest.mark.unit
def test_a_variant_vllm_cannot_serve_here_goes_to_its_fallback_and_says_why(tmp_path):
    variant = load_matrix(_matrix(tmp_path, FALLBACK), host=lambda: AVX2).variant("v")
    assert variant.engine == EngineSpec("transformers", {"device": "cpu", "concurrency": 3, "cb_num_blocks": 64})
    assert variant.requested_engine == "vllm" and variant.not_runnable is None
    assert "served by transformers" in variant.engine_note and "cpu_gemm_wna16" in variant.engine_note
    assert "declare a fallback" not in variant.engine_note   # it has one
    # Where the build has the kernel, vLLM serves it and the fallback waits unused.
    served = load_matrix(_matrix(tmp_path, FALLBACK), host=lambda: AVX512).variant("v")
    assert served.engine.kind == "vllm" and served.engine.fallback.kind == "transformers"
    assert served.requested_engine is served.engine_note is served.not_runnable is None
    # The samples of the two engines never mix: the fallback is another engine, so another settings hash.
    assert variant.settings_hash != served.settings_hash


@pytest.mark.unit
def test_a_variant_nothing_here_can_serve_is_marked_not_runnable_with_why(tmp_path):
    variant = load_matrix(_matrix(tmp_path, VLLM_CPU), host=lambda: AVX2).variant("v")
    assert variant.engine.kind == "vllm" and "cpu_gemm_wna16" in variant.not_runnable
    assert "declare a fallback engine for the variant" in variant.not_runnable   # what to do
    # An answer the host cannot give (vLLM in a container, or not installed) leaves it to vLLM itself.
    assert load_matrix(_matrix(tmp_path, VLLM_CPU), host=lambda: None).variant("v").not_runnable is None


@pytest.mark.unit
@pytest.mark.parametrize(("engine", "scheme"), [
    (VLLM_CPU, "none"), ({"kind": "vllm"}, "W4A16"), ({"kind": "transformers", "device": "cpu"}, "W4A16")])
def test_the_host_is_asked_only_where_a_variant_needs_a_kernel_of_its_own(tmp_path, engine, scheme):
    def never() -> None:
        raise AssertionError("probed for a variant that needs no CPU kernel of vLLM's")

    assert load_matrix(_matrix(tmp_path, engine, scheme), host=never).variant("v").not_runnable is None


@pytest.mark.unit
@pytest.mark.parametrize(("fallback", "refusal"), [
    ({"kind": "vllm"}, "must start another engine on the same weights"),
    ({"kind": "external", "model": "m", "base_url": "http://x/v1"}, "must start another engine"),
    ({"kind": "tgi"}, "fallback engine of vllm kind 'tgi' unknown"),
    ({"kind": "transformers", "fallback": "vllm"}, "a fallback engine has no fallback of its own"),
    ({"kind": "transformers", "api_key": "sk-1"}, "would put a secret in the matrix"),
])
def test_a_wrong_fallback_is_refused_when_the_matrix_loads(tmp_path, fallback, refusal):
    with pytest.raises(MatrixError, match=refusal):
        load_matrix(_matrix(tmp_path, {**VLLM_CPU, "fallback": fallback}), host=lambda: AVX2)


@pytest.mark.unit
def test_the_forced_isa_is_one_vllm_builds_for(monkeypatch):
    monkeypatch.setenv(FORCE_ISA_ENV, "AVX2")
    assert forced_isa() == "avx2"
    monkeypatch.setenv(FORCE_ISA_ENV, "sse4")
    with pytest.raises(ProbeError, match="not one of avx2, avx512, avx512_bf16"):
        forced_isa()


@pytest.mark.unit
def test_the_python_a_vllm_command_runs_is_found(tmp_path):
    assert vllm_python(f"{sys.executable} -m vllm.entrypoints.openai.api_server") == Path(sys.executable)
    script = tmp_path / "vllm"
    script.write_text(f"#!{sys.executable}\nprint('serve')\n")
    script.chmod(0o755)
    assert vllm_python(str(script)) == Path(sys.executable)
    assert vllm_python("sh -c 'exit 3'") is None   # a wrapper: vLLM itself is the judge
    assert vllm_python(str(tmp_path / "missing")) is None


def _cpu_flags() -> set[str]:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("flags"):
            return set(line.partition(":")[2].split())
    return set()


@pytest.mark.integration
def test_the_probe_finds_the_library_vllm_loads_on_this_cpu_and_caches_it(tmp_path, monkeypatch):
    monkeypatch.delenv(FORCE_ISA_ENV, raising=False)
    capabilities = vllm_cpu_capabilities(settings.vllm_command(), tmp_path)
    flags = _cpu_flags()
    expected = ("_C" if "avx512_bf16" in flags else "_C_AVX512") if "avx512f" in flags else "_C_AVX2"
    assert capabilities.library == expected and capabilities.forced is None
    assert capabilities.cpu == cpu_signature() and capabilities.vllm_version == "0.32.0"
    assert (capabilities.problem("W4A16") is None) == ("cpu_gemm_wna16" in capabilities.kernels)
    print(f"probed: {capabilities.describe()}")
    cached = list(tmp_path.glob("vllm-cpu-*.json"))
    assert len(cached) == 1 and json.loads(cached[0].read_text())["library"] == expected


@pytest.mark.integration
def test_forced_to_the_avx2_library_the_launcher_refuses_w4a16_before_anything_starts(tmp_path, monkeypatch,
                                                                                      tiny_model):
    from assets.matrix import QuantizationSpec
    from assets.models.quantize import quantize_checkpoint

    monkeypatch.setenv(FORCE_ISA_ENV, "avx2")
    capabilities = vllm_cpu_capabilities(settings.vllm_command(), tmp_path / "capabilities")
    assert capabilities.library == "_C_AVX2" and capabilities.forced == "avx2"
    assert "cpu_gemm_wna16" not in capabilities.kernels   # vllm-cpu 0.32.0's AVX2 library, loaded for real
    checkpoint = tmp_path / "w4a16"
    quantize_checkpoint(tiny_model, checkpoint, QuantizationSpec("W4A16"))
    engine = EngineResource(log_dir=str(tmp_path / "logs"), vllm_command=settings.vllm_command())
    with pytest.raises(EngineError) as refused, engine.deploy(
            EngineSpec("vllm", {"device": "cpu", "startup_timeout_s": 60}), str(checkpoint), served_name="w4a16",
            log_name="w4a16"):
        pass
    assert "cpu_gemm_wna16" in str(refused.value) and "AVX-512" in str(refused.value), refused.value
    assert not (tmp_path / "logs" / "w4a16.log").exists()   # nothing was started


def _host_matrix(tmp_path: Path) -> Path:
    """The test matrix's defaults, three variants: W4A16 on vLLM with a fallback, the same without one, and a
    variant whose engine dies while it starts."""
    test_matrix = yaml.safe_load((ROOT / "tests" / "matrix.test.yaml").read_text())
    defaults = {**test_matrix["defaults"], "benchmarks": {"arith": 3, "gsm8k": 1},
                "serving": {"concurrency": [1], "request_rates": [], "requests_per_level": 2, "input_len": 16,
                            "output_len": 8}}
    vllm = {"kind": "vllm", "device": "cpu", "concurrency": 4, "cpu_kvcache_space_gib": 1, "startup_timeout_s": 300}
    variants = {
        "tiny-host-w4a16": {"quantization": "W4A16", "engine": {**vllm, "fallback": test_matrix["defaults"]["engine"]}},
        "tiny-host-unservable": {"quantization": "W4A16", "engine": vllm},
        "tiny-host-broken": {"quantization": "none", "engine": {"dtype": "not-a-dtype"}},
    }
    path = tmp_path / "matrix.yaml"
    path.write_text(yaml.safe_dump({"defaults": defaults, "variants": variants}))
    return path


@needs_shared
@pytest.mark.integration
def test_the_chain_forced_to_avx2_serves_w4a16_on_the_fallback_and_leaves_a_trace_of_what_did_not_run(
        tmp_path, tiny_model):
    dagster_home = tmp_path / "dagster"
    dagster_home.mkdir()
    (dagster_home / "dagster.yaml").write_text((ROOT / "pipelines" / "dagster.yaml").read_text())
    env = {**os.environ, "YARDSTICK_MATRIX": str(_host_matrix(tmp_path)), "YARDSTICK_HOME": str(STATE),
           "YARDSTICK_WAREHOUSE": str(tmp_path / "warehouse.duckdb"), "DAGSTER_HOME": str(dagster_home),
           FORCE_ISA_ENV: "avx2"}
    done = subprocess.run([str(BIN / "yardstick"), "materialize", "tiny-host-w4a16", "tiny-host-unservable",
                           "tiny-host-broken"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=1500)
    output = done.stdout + done.stderr
    assert done.returncode != 0, output   # the broken variant failed, and says so
    assert "yardstick: variant tiny-host-unservable not run: vllm cannot run it here: W4A16 needs cpu_gemm_wna16" \
        in output, output[-4000:]
    assert "== tiny-host-w4a16: served by transformers, its fallback" in output
    assert "yardstick: variant tiny-host-broken failed" in output

    warehouse = WarehouseResource(path=env["YARDSTICK_WAREHOUSE"])
    deployments = {row["variant"]: row for row in warehouse.query(
        "SELECT * FROM engine_deployments ORDER BY variant").to_dict("records")}
    assert set(deployments) == {"tiny-host-w4a16", "tiny-host-broken"}   # nothing started for the unservable one
    served = deployments["tiny-host-w4a16"]
    assert (served["engine"], served["requested_engine"], served["status"]) == ("transformers", "vllm", "stopped")
    assert "cpu_gemm_wna16" in served["engine_note"] and "AVX-512" in served["engine_note"]
    broken = deployments["tiny-host-broken"]
    assert broken["status"] == "failed" and "while starting" in broken["failure"]
    assert "Unsupported dtype: 'not-a-dtype'" in broken["failure"]   # the engine's own log tail

    runs = {row["variant"]: row for row in warehouse.query("SELECT * FROM evaluation_runs").to_dict("records")}
    assert runs["tiny-host-w4a16"]["status"] == "published" and runs["tiny-host-w4a16"]["engine"] == "transformers"
    assert "cpu_gemm_wna16" in runs["tiny-host-w4a16"]["engine_note"]
    assert runs["tiny-host-unservable"]["status"] == "not_run"
    assert "cpu_gemm_wna16" in json.loads(runs["tiny-host-unservable"]["evidence"])["not_run"]
    assert runs["tiny-host-broken"]["status"] == "failed_run"
    assert "Unsupported dtype" in json.loads(runs["tiny-host-broken"]["evidence"])["failure"]
    board = warehouse.query("SELECT DISTINCT variant, engine, engine_note FROM leaderboard")
    assert board["variant"].tolist() == ["tiny-host-w4a16"] and board["engine"].tolist() == ["transformers"]
    assert "cpu_gemm_wna16" in board["engine_note"][0]

    report = subprocess.run([str(BIN / "yardstick"), "report"], cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=300)
    assert report.returncode == 0, report.stderr
    assert "  engine: served by transformers, its fallback: vllm cannot run it here" in report.stdout
    assert "tiny-host-unservable: not run" in report.stdout and "tiny-host-broken: its latest run failed" \
        in report.stdout, report.stdout
    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        assert len(instance.get_runs()) == 2   # no Dagster run for a variant nothing here can serve


@pytest.mark.unit
@pytest.mark.parametrize(("pinned", "cpu_max", "cores"), [
    (range(8), "max 100000", 8), (range(8), "200000 100000", 2), (range(8), "50000 100000", 1),
    (range(2), "800000 100000", 2), (range(4), None, 4)])
def test_the_cores_a_process_may_use_count_its_pinning_and_its_quota(tmp_path, monkeypatch, pinned, cpu_max, cores):
    """Grading pools and CPU engine slots are sized by these, not by the whole machine's count."""
    import assets.matrix.host as host

    monkeypatch.setattr(host.os, "sched_getaffinity", lambda pid: set(pinned))
    monkeypatch.setattr(host, "CGROUP_CPU_MAX", tmp_path / "cpu.max")
    if cpu_max is not None:
        (tmp_path / "cpu.max").write_text(cpu_max + "\n")
    assert host.usable_cores() == cores
