"""Golden tests of the `vllm serve` command line for every vLLM variant of the example GPU matrix, and the
installed vLLM's own parser run over them.

The golden file is what the launcher must build; after a deliberate change, regenerate it with
`YARDSTICK_UPDATE_GOLDEN=1 .venv/bin/pytest tests/test_vllm_argv.py` and review the diff.
"""

import json
import os
import shlex
import subprocess
from pathlib import Path

import pytest

from assets.matrix import EngineSettingsError, EngineSpec, load_matrix
from resources.engines import EngineResource
from resources.launchers import DeployRequest, vllm

GOLDEN = Path(__file__).parent / "golden" / "vllm_argv.json"
MATRIX = load_matrix(Path(__file__).parent.parent / "pipelines" / "matrix.gpu.yaml")
VLLM_VARIANTS = sorted(name for name, v in MATRIX.variants.items() if v.engine.kind == "vllm")


def argv_for(name: str) -> list[str]:
    variant = MATRIX.variant(name)
    return vllm.argv("vllm", f"/models/{name}", name, variant.engine.settings, "127.0.0.1", 8000,
                     variant.model.trust_remote_code)


@pytest.mark.unit
def test_golden_file_covers_every_vllm_variant():
    if os.environ.get("YARDSTICK_UPDATE_GOLDEN"):
        GOLDEN.write_text(json.dumps({name: shlex.join(argv_for(name)) for name in VLLM_VARIANTS}, indent=1) + "\n")
    assert sorted(json.loads(GOLDEN.read_text())) == VLLM_VARIANTS


@pytest.mark.unit
@pytest.mark.parametrize("name", VLLM_VARIANTS)
def test_vllm_argv_matches_the_golden_file(name):
    assert argv_for(name) == shlex.split(json.loads(GOLDEN.read_text())[name])


def _flag(argv: list[str], flag: str) -> str | None:
    return argv[argv.index(flag) + 1] if flag in argv else None


@pytest.mark.unit
def test_vllm_argv_carries_the_variant_settings():
    single = argv_for("r1-qwen-7b-bf16-h100")
    assert single[:3] == ["vllm", "serve", "/models/r1-qwen-7b-bf16-h100"]
    assert _flag(single, "--served-model-name") == "r1-qwen-7b-bf16-h100"
    assert _flag(single, "--tensor-parallel-size") == "1" and _flag(single, "--reasoning-parser") == "deepseek_r1"
    assert _flag(single, "--max-model-len") == "34816" and _flag(single, "--max-num-seqs") == "64"
    assert _flag(single, "--dtype") == "bfloat16" and _flag(single, "--seed") == "0"
    assert "--enable-prefix-caching" in single and "--trust-remote-code" not in single
    assert "--distributed-executor-backend" not in single and "--quantization" not in single
    assert _flag(argv_for("r1-qwen-32b-bf16-2xh100"), "--tensor-parallel-size") == "2"
    multi_node = argv_for("r1-671b-fp8-2x8xh100")
    assert _flag(multi_node, "--pipeline-parallel-size") == "2"
    assert _flag(multi_node, "--distributed-executor-backend") == "ray"


@pytest.mark.unit
def test_options_that_are_off_by_default_appear_when_asked():
    options = {"quantization": "fp8", "kv_cache_dtype": "fp8", "enable_prefix_caching": False,
               "distributed_executor_backend": "mp", "extra_args": ["--enforce-eager"]}
    settings = EngineSpec("vllm", options).settings
    argv = vllm.argv("docker run --gpus all vllm/vllm-openai", "/m", "m", settings, "0.0.0.0", 9000, True)
    assert argv[:6] == ["docker", "run", "--gpus", "all", "vllm/vllm-openai", "serve"]
    assert _flag(argv, "--quantization") == "fp8" and _flag(argv, "--kv-cache-dtype") == "fp8"
    assert "--no-enable-prefix-caching" in argv and _flag(argv, "--distributed-executor-backend") == "mp"
    assert argv[-2:] == ["--trust-remote-code", "--enforce-eager"]


VLLM_PYTHON = Path(__file__).resolve().parent.parent / ".venv-vllm" / "bin" / "python"
SERVE_PARSER = Path(__file__).parent / "instruments" / "vllm_serve_parser.py"


def vllm_verdicts(command_lines: dict[str, list[str]]) -> dict[str, str | None]:
    """What the installed vLLM's own `serve` parser says of each command line (None: accepted)."""
    if not VLLM_PYTHON.exists():
        pytest.fail(f"{VLLM_PYTHON} is missing; `make test` creates the vLLM environment (make .venv-vllm)")
    result = subprocess.run([str(VLLM_PYTHON), str(SERVE_PARSER)], input=json.dumps(command_lines),
                            capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout)


@pytest.mark.integration
def test_the_installed_vllm_accepts_every_command_line_of_the_gpu_matrix():
    """Every `vllm serve` argument the launcher emits for the example GPU matrix, through vLLM's own parser (and
    its reasoning-parser registry), with a misspelt flag and a bad value as controls that must be refused."""
    serve_arguments = {name: argv_for(name)[argv_for(name).index("serve") + 1:] for name in VLLM_VARIANTS}
    controls = {"control-misspelt-flag": ["/models/x", "--tensor-paralel-size", "2"],
                "control-bad-value": ["/models/x", "--tensor-parallel-size", "two"],
                "control-unknown-reasoning-parser": ["/models/x", "--reasoning-parser", "no_such_parser"]}
    verdicts = vllm_verdicts({**serve_arguments, **controls})
    assert {name: verdicts[name] for name in VLLM_VARIANTS} == dict.fromkeys(VLLM_VARIANTS)
    assert all(verdicts[name] for name in controls), verdicts


def launched(engine: EngineResource, options: dict, model_path: str, served_name: str = "tiny"):
    """The Launch vLLM's launcher builds for these engine settings, serving on port 8000."""
    request = DeployRequest(model_path=model_path, served_name=served_name, log_path=Path(model_path) / "v.log")
    return vllm.launch(engine, EngineSpec("vllm", options).settings, request, 8000)


@pytest.mark.unit
def test_vllm_on_a_cpu_runs_eagerly_in_one_process_with_its_cache_sized_and_the_variants_env_last(tmp_path):
    engine = EngineResource(log_dir=str(tmp_path), vllm_command="/v/bin/python -m vllm.entrypoints.openai.api_server")
    launch = launched(engine, {"device": "cpu", "cpu_kvcache_space_gib": 3,
                               "env": {"VLLM_ENABLE_V1_MULTIPROCESSING": 1, "VLLM_CPU_OMP_THREADS_BIND": "nobind"}},
                      str(tmp_path))
    assert launch.argv[:5] == ["/v/bin/python", "-m", "vllm.entrypoints.openai.api_server", "--model", str(tmp_path)]
    assert "--enforce-eager" in launch.argv and launch.served_model == "tiny" and launch.version_path == "/version"
    assert launch.env["VLLM_CPU_KVCACHE_SPACE"] == "3" and launch.env["VLLM_CPU_OMP_THREADS_BIND"] == "nobind"
    assert launch.env["VLLM_ENABLE_V1_MULTIPROCESSING"] == "1"   # the variant's own setting wins
    on_gpu = launched(engine, {}, str(tmp_path))
    assert "--enforce-eager" not in on_gpu.argv and "VLLM_CPU_KVCACHE_SPACE" not in on_gpu.env
    with pytest.raises(EngineSettingsError, match="engine setting 'env'"):   # refused where the settings are read
        EngineSpec("vllm", {"env": ["A=1"]})


@pytest.mark.unit
def test_without_a_configured_command_the_engines_device_chooses_the_vllm_it_starts(tmp_path, monkeypatch):
    """A CPU engine starts vLLM's CPU build in .venv-vllm, on a host with a GPU too; a GPU engine starts `vllm`;
    YARDSTICK_VLLM_COMMAND (the resource's `vllm_command`) wins for both."""
    from assets.matrix.host import VLLM_CPU_PYTHON, default_vllm_command

    monkeypatch.delenv("YARDSTICK_VLLM_COMMAND", raising=False)
    assert default_vllm_command(cpu=False) == "vllm"
    assert default_vllm_command(cpu=True) == (f"{VLLM_CPU_PYTHON} -m vllm.entrypoints.openai.api_server"
                                              if VLLM_CPU_PYTHON.exists() else "vllm")
    engine = EngineResource(log_dir=str(tmp_path))
    assert launched(engine, {}, str(tmp_path), "m").argv[:2] == ["vllm", "serve"]
    monkeypatch.setenv("YARDSTICK_VLLM_COMMAND", "/opt/vllm/bin/vllm")
    assert default_vllm_command(cpu=True) == default_vllm_command(cpu=False) == "/opt/vllm/bin/vllm"
    configured = EngineResource(log_dir=str(tmp_path), vllm_command="/opt/vllm/bin/vllm")
    assert launched(configured, {}, str(tmp_path), "m").argv[0] == "/opt/vllm/bin/vllm"
