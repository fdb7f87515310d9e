"""`llama-server`: llama.cpp's OpenAI-compatible server, serving the variant's GGUF file (assets.models.gguf made it),
from the build `make llama.cpp` caches or the one YARDSTICK_LLAMACPP_SERVER names (a CUDA build, a container).
"""

from __future__ import annotations

import shlex

from assets.matrix import LlamaCppSettings
from assets.models.gguf import LlamaCppError, llamacpp_tool, llamacpp_version
from assets.models.gguf_memory import DEFAULT_CONTEXT_PER_SLOT, server_slots
from resources.launchers.deployment import DeployRequest, EngineError, Machine
from resources.launchers.server import Launch

# Layers offloaded on a GPU when the matrix does not say: all of them (llama.cpp stops at the model's count).
ALL_LAYERS = 999


def slots(settings: LlamaCppSettings) -> int:
    """Sequences the server batches at once: `parallel`, else as many as the client keeps in flight (the memory
    plan counts the same: assets.models.gguf_memory)."""
    return server_slots(settings.parallel, settings.concurrency)


def argv(program: str, model_path: str, served_name: str, settings: LlamaCppSettings, host: str, port: int,
         parallel: int, threads: int) -> list[str]:
    """`llama-server` for a variant: the GGUF file, `parallel` slots of `max_model_len` tokens each (the context
    is shared among the slots), Prometheus metrics, the model's own chat template (`--jinja`), the reasoning
    split as DeepSeek's (`reasoning_content`), and on GPUs every layer offloaded unless `gpu_layers` says."""
    context = (settings.max_model_len or DEFAULT_CONTEXT_PER_SLOT) * parallel
    words = [*shlex.split(program), "-m", model_path, "--host", host, "--port", str(port), "--alias", served_name,
             "--parallel", str(parallel), "-c", str(context), "--metrics", "--jinja",
             "--reasoning-format", settings.reasoning_format, "--seed", str(settings.seed),
             "--threads", str(settings.threads or threads), "--no-webui"]
    layers = settings.gpu_layers if settings.gpu_layers is not None else (0 if settings.on_cpu else ALL_LAYERS)
    words += ["--n-gpu-layers", str(layers)]
    if settings.tensor_split:
        words += ["--tensor-split", ",".join(settings.tensor_split)]
    if settings.rpc:
        words += ["--rpc", ",".join(settings.rpc)]
    return words + list(settings.extra_args)


def launch(machine: Machine, settings: LlamaCppSettings, request: DeployRequest, port: int) -> Launch:
    """`llama-server`: ready once /health answers 200 (503 while it loads) and /v1/models lists the alias; its
    version is what the program says (`--version`: build number and commit)."""
    if not request.model_path.endswith(".gguf"):
        raise EngineError(f"llama.cpp serves GGUF files, and {request.model_path} is not one: materialize the "
                          "variant's quantized_model (it converts the checkpoint)")
    try:
        program = llamacpp_tool("server")
        version = llamacpp_version(program)
    except LlamaCppError as error:
        raise EngineError(str(error)) from error
    words = argv(program, request.model_path, request.served_name, settings, machine.bind_host, port,
                 slots(settings), machine.cpu_threads)
    return Launch("llama-server", words, dict(settings.env), ("/health", "/v1/models"), request.served_name,
                  f"llama.cpp {version}", stop_grace_s=10.0, model_list_path="/v1/models")
