"""`vllm serve`: vLLM's OpenAI-compatible server, on GPU hosts and, through its CPU build in `.venv-vllm`, for the
offline default. Its command is configurable because vLLM pins its own torch and lives in its own environment or
container (`vllm` and its `serve` subcommand, or `python -m` its server module).
"""

from __future__ import annotations

import shlex

from assets.engine.host_load import cpu_split
from assets.matrix import VllmSettings
from assets.matrix.host import VLLM_SERVER_MODULE, ProbeError, default_vllm_command, vllm_cpu_capabilities
from assets.models.checkpoint import checkpoint_scheme
from resources.launchers.deployment import DeployRequest, EngineError, Machine
from resources.launchers.server import Launch


def starts_vllm_module(command: list[str]) -> bool:
    """Whether a vLLM command runs the server module (`python -m vllm.entrypoints.openai.api_server`), which
    takes the model as `--model`, rather than the console script (`vllm`), which takes `serve MODEL`."""
    return any(a == "-m" and b == VLLM_SERVER_MODULE for a, b in zip(command, command[1:], strict=False))


def argv(command: str, model_path: str, served_name: str, settings: VllmSettings, host: str, port: int,
         trust_remote_code: bool) -> list[str]:
    """`vllm serve` for a variant: parallelism, precision, memory, batching, the R1 reasoning parser.

    `nodes` > 1 selects Ray as the distributed executor (start the Ray cluster across the nodes first); a
    compressed-tensors checkpoint is recognised by vLLM itself, so `quantization` is only for quantizing at
    load time (`fp8`). On a CPU (`device: cpu`, vLLM's CPU build) it runs eagerly unless `enforce_eager: false`:
    compiling the graphs costs more start-up time than it saves on a short run."""
    program = shlex.split(command)
    model = ["--model", model_path] if starts_vllm_module(program) else ["serve", model_path]
    words = [*program, *model, "--host", host, "--port", str(port),
             "--served-model-name", served_name,
             "--tensor-parallel-size", str(settings.tensor_parallel_size),
             "--pipeline-parallel-size", str(settings.pipeline_parallel_size),
             "--dtype", settings.dtype,
             "--gpu-memory-utilization", str(settings.gpu_memory_utilization),
             "--seed", str(settings.seed)]
    if settings.max_model_len:
        words += ["--max-model-len", str(settings.max_model_len)]
    if settings.max_num_seqs:
        words += ["--max-num-seqs", str(settings.max_num_seqs)]
    backend = settings.distributed_executor_backend or ("ray" if settings.nodes > 1 else None)
    if backend:
        words += ["--distributed-executor-backend", backend]
    if settings.quantization:
        words += ["--quantization", settings.quantization]
    if settings.kv_cache_dtype:
        words += ["--kv-cache-dtype", settings.kv_cache_dtype]
    if settings.reasoning_parser:
        words += ["--reasoning-parser", settings.reasoning_parser]
    words.append("--enable-prefix-caching" if settings.enable_prefix_caching else "--no-enable-prefix-caching")
    if settings.eager:
        words.append("--enforce-eager")
    if trust_remote_code:
        words.append("--trust-remote-code")
    return words + list(settings.extra_args)


def refuse_unservable_on_cpu(vllm_command: str, model_path: str) -> None:
    """Raise EngineError, before anything starts, when vLLM's CPU build (probed on this host) has no kernel for the
    checkpoint's quantization scheme."""
    scheme = checkpoint_scheme(model_path)
    if scheme is None:
        return
    try:
        capabilities = vllm_cpu_capabilities(vllm_command)
    except ProbeError as error:
        raise EngineError(f"cannot tell whether vLLM can serve {scheme} on this CPU: {error}") from error
    problem = capabilities.problem(scheme) if capabilities else None
    if problem:
        raise EngineError(f"{model_path}: {problem}")


def launch(machine: Machine, settings: VllmSettings, request: DeployRequest, port: int) -> Launch:
    """`vllm serve`: ready once /health answers and /v1/models lists the loaded model. vLLM usually lives in an
    environment of its own (or a container), so the version recorded is what its server says at /version.

    On a CPU, a checkpoint the CPU build has no kernel for on this host (asked of it: assets.matrix.host) is refused
    here, before anything starts; the KV cache gets `cpu_kvcache_space_gib` (VLLM_CPU_KVCACHE_SPACE); the server
    binds its compute threads to all cores but the front one (host_load.CpuSplit)."""
    env = {"HF_HUB_OFFLINE": "1"}
    command = machine.vllm_command or default_vllm_command(cpu=settings.on_cpu)
    if settings.on_cpu:
        refuse_unservable_on_cpu(command, request.model_path)
        env["VLLM_CPU_KVCACHE_SPACE"] = str(settings.cpu_kvcache_space_gib)
        # The engine core in the server's process: on a few cores, a separate engine-core process that
        # busy-polls its worker starves the server, which then streams whole replies at once (measured on 2 cores:
        # at concurrency 8, 631 tok/s with TPOT p50 0.01 ms apart, 1,724 tok/s streamed in process).
        env["VLLM_ENABLE_V1_MULTIPROCESSING"] = "0"
    split = cpu_split() if settings.on_cpu and _one_worker(settings) else None
    if split and "VLLM_CPU_OMP_THREADS_BIND" not in settings.env:
        # Compute on all cores but the front one, which the load generator keeps to (host_load.CpuSplit): the
        # compute threads busy-poll their cores. vLLM's own `auto` reserves a core too, but picks the cores of a
        # NUMA node whatever this process may use (taskset, a cpuset). The server is not pinned: its engine core
        # would inherit the pin, and vLLM binds compute only within the cores a process may use.
        env["VLLM_CPU_OMP_THREADS_BIND"] = ",".join(str(core) for core in split.compute)
    else:
        split = None
    env.update(settings.env)
    words = argv(command, request.model_path, request.served_name, settings, machine.bind_host, port,
                 request.trust_remote_code)
    what = "vLLM (" + " ".join(words[:words.index("--host")]) + ")"
    # vLLM shuts its engine core down on TERM; give it the time to, so it releases its memory cleanly.
    return Launch(what, words, env, ("/health", "/v1/models"), request.served_name, None, version_path="/version",
                  stop_grace_s=30.0, model_list_path="/v1/models")


def _one_worker(settings: VllmSettings) -> bool:
    """Whether vLLM runs one worker (one list of cores to bind); several on a CPU split the cores their own way."""
    return settings.tensor_parallel_size * settings.pipeline_parallel_size == 1
