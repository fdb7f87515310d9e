"""Inference engines behind one interface: each yields an OpenAI-compatible endpoint for the life of a block.

- `vllm`: vLLM's OpenAI-compatible server, on GPU hosts and, through its CPU build in `.venv-vllm`, for the
  offline default; its command is configurable because vLLM pins its own torch and lives in its own
  environment or container (`vllm` and its `serve` subcommand, or `python -m` its server module).
- `transformers`: `transformers serve` on the CPU or any torch device.
- `external`: an endpoint that already runs (a vLLM cluster, a paid API as a baseline); nothing is started.

Each kind that starts a process has a launcher (`LAUNCHERS`) that says how: argv, environment, the URLs that say
it is ready, the name it serves the model under, where its version comes from; it also refuses, before
anything starts, what that engine cannot run. Supervision is shared: a started server lives in its own process
group (vLLM's engine core included), logs to a file, and is stopped group-wide (TERM, then KILL) when the block
exits, however it exits. It is also asked to die with its parent, so a killed step leaves no server behind.

Before a server starts, a configured port that something already listens on is refused, and so is a disk without
room for the engine's log. Ready means more than answering: the socket that answers on the port must be held by
the started process or one it started (read from /proc, where there is one), and a server that lists its models
must list the one asked for. Otherwise a busy port would have the run benchmark whatever server was there.
"""

from __future__ import annotations

import ctypes
import errno
import os
import shlex
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg
import httpx

from assets.matrix import EngineSpec, on_cpu
from assets.matrix.host import VLLM_SERVER_MODULE, ProbeError, default_vllm_command, vllm_cpu_capabilities
from assets.models.checkpoint import checkpoint_scheme
from assets.secrets import redact_url, url_has_credentials
from assets.versions import installed_version
from resources.disk import ENGINE_MIN_FREE_BYTES, disk_full_hint, require_free_space
from resources.ports import describe_processes, foreign_listeners, port_holder

LOG_TAIL_LINES = 40
_PR_SET_PDEATHSIG = 1
# Loaded before any fork: the child may only make plain calls between fork and exec.
_LIBC = ctypes.CDLL("libc.so.6", use_errno=True)


class EngineError(RuntimeError):
    """An engine did not start, died, or cannot be reached."""


@dataclass
class Deployment:
    """What actually ran: recorded with every result it served."""

    engine: str
    engine_version: str | None
    base_url: str
    served_model: str
    api_key: str = "not-needed"
    argv: list[str] = field(default_factory=list)
    startup_seconds: float = 0.0
    pid: int | None = None
    peak_rss_bytes: int | None = None
    gpu_memory_bytes: int | None = None   # held on the GPU when measured (vLLM preallocates its cache)

    @property
    def public_url(self) -> str:
        """The endpoint as stored and logged: `base_url` without credentials."""
        return redact_url(self.base_url)

    def measure_memory(self) -> None:
        """Read the server's peak resident memory and the GPU memory its process group holds, now, while it
        still runs; a no-op for endpoints started elsewhere."""
        if self.pid is not None:
            self.peak_rss_bytes = _peak_rss_bytes(self.pid) or self.peak_rss_bytes
            self.gpu_memory_bytes = gpu_memory_bytes(self.pid) or self.gpu_memory_bytes


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


def refuse_busy_port(host: str, port: int) -> None:
    """Raise EngineError when `host:port` cannot be listened on: started anyway, the engine would fail to bind
    while the server already there answered its readiness checks and the run benchmarked that one."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        # As the engines' servers (uvicorn) bind: over connections an earlier server there left in TIME_WAIT, which
        # a probe without SO_REUSEADDR would take for a busy port; Linux refuses it all the same when one listens.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as error:
            if error.errno != errno.EADDRINUSE:
                raise EngineError(f"cannot listen on {host}:{port} ({error.strerror}); set another `port:` in the "
                                  "variant's engine settings in the matrix, or leave `port` unset to get a free "
                                  "one") from error
            raise EngineError(
                f"port {port} on {host} is already in use: {port_holder(host, port)} listens there, and the engine "
                "would be measured against that server instead. Stop it, set another `port:` in the variant's "
                "engine settings in the matrix, or leave `port` unset to get a free one") from error


def log_tail(path: Path | None, lines: int = LOG_TAIL_LINES) -> str:
    if path is None or not path.exists():
        return "(no log)"
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def _die_with_parent() -> None:
    """Runs in the child before exec: own process group, and SIGTERM when the parent dies."""
    os.setsid()
    _LIBC.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def _peak_rss_bytes(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def gpu_memory_bytes(group: int) -> int | None:
    """GPU memory held by the processes of a process group, as nvidia-smi reports it; None without a GPU."""
    try:
        listing = subprocess.run(
            ["nvidia-smi", "--query-compute-apps=pid,used_memory", "--format=csv,noheader,nounits"],
            capture_output=True, text=True, timeout=30, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    used = None   # stays None when no listed process is ours (containers, other PID namespaces, Ray workers)
    for line in listing.splitlines():
        pid, _, mib = line.partition(",")
        try:
            if os.getpgid(int(pid)) == group:
                used = (used or 0) + int(float(mib)) * 2**20
        except (ValueError, ProcessLookupError, PermissionError):
            continue
    return used


GROUP_EXIT_WAIT_S = 10.0
UNREADY_STOP_GRACE_S = 3.0


def stop_process_group(process: subprocess.Popen, grace_s: float = 10.0) -> None:
    """TERM the whole group, wait, then KILL whatever is left."""
    if process.poll() is None:
        try:
            os.killpg(process.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            process.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    process.wait()
    # The server's own children (vLLM's engine core) die a moment after it: wait for them too, so that the devices
    # the engine held are free when the claim on them is let go, and the next engine can have them.
    deadline = time.monotonic() + GROUP_EXIT_WAIT_S
    while _group_members(process.pid) and time.monotonic() < deadline:
        time.sleep(0.05)


def _group_members(group: int) -> list[int]:
    """Live processes of a process group (a zombie has exited: it holds no memory and no device)."""
    members = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            state, _parent, process_group = (proc / "stat").read_text().rsplit(")", 1)[1].split()[:3]
        except (OSError, ValueError):
            continue
        if int(process_group) == group and state not in ("Z", "X"):
            members.append(int(proc.name))
    return members


# What engines print when the weights or the KV cache do not fit (PyTorch, vLLM).
_OUT_OF_MEMORY = ("CUDA out of memory", "OutOfMemoryError", "No available memory for the cache blocks",
                  "larger than the maximum number of tokens that can be stored in KV cache",
                  "Cannot allocate memory")


def out_of_memory_hint(tail: str) -> str:
    """Advice when the log shows the engine ran out of memory while loading; empty otherwise."""
    if not any(marker in tail for marker in _OUT_OF_MEMORY):
        return ""
    return ("\nThe engine ran out of memory while loading: the weights and KV cache do not fit. See "
            "`yardstick plan VARIANT` for the memory plan, then lower max_model_len or max_num_seqs, raise "
            "tensor_parallel_size, use a quantized variant, or change gpu_memory_utilization.")


def failure_hints(tail: str, log_path: Path) -> str:
    """Advice for an engine that failed to start, from its log's tail: out of memory, or out of disk."""
    return out_of_memory_hint(tail) + disk_full_hint(tail, log_path.parent)


def wait_until_ready(
    process: subprocess.Popen, urls: list[str], timeout_s: float, log_path: Path, what: str
) -> float:
    """Poll every URL (health, then the model list) until each answers 200; fail fast with the log tail (and
    advice when it shows the engine ran out of memory or of disk) if the process dies, or when time runs out."""
    started = time.monotonic()
    pending = list(urls)
    while True:
        if process.poll() is not None:
            tail = log_tail(log_path)
            raise EngineError(
                f"{what} exited with code {process.returncode} before it was ready; "
                f"last lines of {log_path}:\n{tail or '(the log is empty)'}{failure_hints(tail, log_path)}"
            )
        try:
            while pending and httpx.get(pending[0], timeout=2.0).status_code == 200:
                pending.pop(0)
            if not pending:
                return time.monotonic() - started
        except httpx.HTTPError:
            pass
        if time.monotonic() - started > timeout_s:
            tail = log_tail(log_path)
            raise EngineError(
                f"{what} was not ready at {pending[0]} after {timeout_s:.0f} s; last lines of {log_path}:\n"
                f"{tail or '(the log is empty)'}{failure_hints(tail, log_path)}"
            )
        time.sleep(0.25)


@contextmanager
def server_process(
    argv: list[str], log_path: Path, ready_urls: list[str], timeout_s: float, env: dict[str, str], what: str,
    stop_grace_s: float = 10.0,
) -> Iterator[tuple[subprocess.Popen, float]]:
    """Start a server, wait until it is ready, yield it, and always stop its whole process group."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        try:
            process = subprocess.Popen(
                argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                # The hook makes only two system calls through a preloaded libc: no locks, safe with threads.
                env={**os.environ, **env}, preexec_fn=_die_with_parent,  # noqa: PLW1509
            )
        except FileNotFoundError as error:
            raise EngineError(f"cannot start {what}: command {argv[0]!r} not found ({error})") from error
    ready = False
    try:
        startup = wait_until_ready(process, ready_urls, timeout_s, log_path, what)
        ready = True
        yield process, startup
    finally:
        # An engine stopped before it was ready has nothing to wind down, and one still loading may not look at
        # TERM at all (vLLM took 35 s, its whole grace, when stopped while it loaded): a short grace, then KILL.
        stop_process_group(process, stop_grace_s if ready else min(stop_grace_s, UNREADY_STOP_GRACE_S))


def _sibling_command(name: str) -> str:
    """A console script installed next to the running interpreter, else `name` on PATH."""
    candidate = Path(sys.executable).with_name(name)
    return shlex.quote(str(candidate)) if candidate.exists() else name


def transformers_argv(command: str, model_path: str, options: dict, host: str, port: int) -> list[str]:
    argv = [*shlex.split(command), "serve", model_path, "--host", host, "--port", str(port),
            "--device", str(options.get("device", "cpu")), "--dtype", str(options.get("dtype", "auto"))]
    if options.get("continuous_batching", True):
        argv += ["--continuous-batching",
                 "--cb-num-blocks", str(options.get("cb_num_blocks", 512)),
                 "--cb-block-size", str(options.get("cb_block_size", 32)),
                 "--cb-max-batch-tokens", str(options.get("cb_max_batch_tokens", 2048))]
    if options.get("seed") is not None:
        argv += ["--default-seed", str(options["seed"])]
    if options.get("trust_remote_code"):
        argv.append("--trust-remote-code")
    return argv


def starts_vllm_module(command: list[str]) -> bool:
    """Whether a vLLM command runs the server module (`python -m vllm.entrypoints.openai.api_server`), which
    takes the model as `--model`, rather than the console script (`vllm`), which takes `serve MODEL`."""
    return any(a == "-m" and b == VLLM_SERVER_MODULE for a, b in zip(command, command[1:], strict=False))


def vllm_argv(command: str, model_path: str, served_name: str, options: dict, host: str, port: int,
              trust_remote_code: bool) -> list[str]:
    """`vllm serve` for a variant: parallelism, precision, memory, batching, the R1 reasoning parser.

    `nodes` > 1 selects Ray as the distributed executor (start the Ray cluster across the nodes first); a
    compressed-tensors checkpoint is recognised by vLLM itself, so `quantization` is only for quantizing at
    load time (`fp8`). On a CPU (`device: cpu`, vLLM's CPU build) it runs eagerly unless `enforce_eager: false`:
    compiling the graphs costs more start-up time than it saves on a short run."""
    program = shlex.split(command)
    model = ["--model", model_path] if starts_vllm_module(program) else ["serve", model_path]
    argv = [*program, *model, "--host", host, "--port", str(port),
            "--served-model-name", served_name,
            "--tensor-parallel-size", str(options.get("tensor_parallel_size", 1)),
            "--pipeline-parallel-size", str(options.get("pipeline_parallel_size", 1)),
            "--dtype", str(options.get("dtype", "auto")),
            "--gpu-memory-utilization", str(options.get("gpu_memory_utilization", 0.9)),
            "--seed", str(options.get("seed", 0))]
    if options.get("max_model_len"):
        argv += ["--max-model-len", str(options["max_model_len"])]
    if options.get("max_num_seqs"):
        argv += ["--max-num-seqs", str(options["max_num_seqs"])]
    backend = options.get("distributed_executor_backend") or ("ray" if int(options.get("nodes", 1)) > 1 else None)
    if backend:
        argv += ["--distributed-executor-backend", str(backend)]
    if options.get("quantization"):
        argv += ["--quantization", str(options["quantization"])]
    if options.get("kv_cache_dtype"):
        argv += ["--kv-cache-dtype", str(options["kv_cache_dtype"])]
    if options.get("reasoning_parser", "deepseek_r1"):
        argv += ["--reasoning-parser", str(options.get("reasoning_parser", "deepseek_r1"))]
    argv.append("--enable-prefix-caching" if options.get("enable_prefix_caching", True)
                else "--no-enable-prefix-caching")
    if options.get("enforce_eager", on_cpu(options)):
        argv.append("--enforce-eager")
    if trust_remote_code:
        argv.append("--trust-remote-code")
    return argv + [str(arg) for arg in options.get("extra_args", [])]


def external_base_url(spec: EngineSpec) -> str:
    """The base URL of an external endpoint: written in the matrix, or read from the variable it names."""
    variable = spec.options.get("base_url_env")
    base_url = dg.EnvVar(variable).get_value() if variable else spec.options.get("base_url")
    if not base_url:
        where = f"environment variable {variable}" if variable else "'base_url' in the variant's engine settings"
        raise EngineError(f"engine kind 'external' needs its endpoint's base URL; set {where}")
    return str(base_url).rstrip("/")


def engine_env(spec: EngineSpec) -> dict[str, str]:
    """The engine settings' `env`: variables for the engine process (e.g. VLLM_ATTENTION_BACKEND), which win over
    the launcher's own."""
    variables = spec.options.get("env") or {}
    if not isinstance(variables, dict):
        raise EngineError(f"engine setting 'env' maps variable names to values, got {variables!r}")
    return {str(name): str(value) for name, value in variables.items()}


@dataclass(frozen=True)
class Launch:
    """How one engine process is started, known and stopped: what runs, what says it is ready, the name its model is
    served under, and the version that runs."""

    what: str                       # for messages: "vllm serve"
    argv: list[str]
    env: dict[str, str]
    ready_paths: tuple[str, ...]    # polled in order until each answers 200
    served_model: str
    version: str | None             # the installed one; `version_path` asks the running server instead
    version_path: str | None = None
    stop_grace_s: float = 10.0      # after TERM to the group, how long before KILL
    model_list_path: str | None = None   # lists the served models (OpenAI's /v1/models); None where it cannot


def transformers_launch(engine: EngineResource, spec: EngineSpec, model_path: str, served_name: str, port: int,
                        trust_remote_code: bool) -> Launch:
    """`transformers serve`: it serves the model under its path, and lists the hub cache at /v1/models (which
    fails on a machine without one), so /health alone says it is up."""
    argv = transformers_argv(engine.transformers_command or _sibling_command("transformers"), model_path,
                             {**spec.options, "trust_remote_code": trust_remote_code}, engine.bind_host, port)
    env = {"OMP_NUM_THREADS": str(engine.cpu_threads), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_NO_ADVISORY_WARNINGS": "1",
           **engine_env(spec)}
    return Launch("transformers serve", argv, env, ("/health",), model_path, installed_version("transformers"))


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


def vllm_launch(engine: EngineResource, spec: EngineSpec, model_path: str, served_name: str, port: int,
                trust_remote_code: bool) -> Launch:
    """`vllm serve`: ready once /health answers and /v1/models lists the loaded model. vLLM usually lives in an
    environment of its own (or a container), so the version recorded is what its server says at /version.

    On a CPU, a checkpoint the CPU build has no kernel for on this host (asked of it: assets.matrix.host) is refused
    here, before anything starts; the KV cache gets `cpu_kvcache_space_gib` (VLLM_CPU_KVCACHE_SPACE); vLLM binds its
    threads to the cores itself."""
    env = {"HF_HUB_OFFLINE": "1"}
    command = engine.vllm_command or default_vllm_command(cpu=on_cpu(spec.options))
    if on_cpu(spec.options):
        refuse_unservable_on_cpu(command, model_path)
        env["VLLM_CPU_KVCACHE_SPACE"] = str(spec.options.get("cpu_kvcache_space_gib", 1))
        # The engine core in the server's process: on a few cores, a separate engine-core process that
        # busy-polls its worker starves the server, which then streams whole replies at once (measured on 2 cores:
        # at concurrency 8, 631 tok/s with TPOT p50 0.01 ms apart, 1,724 tok/s streamed in process).
        env["VLLM_ENABLE_V1_MULTIPROCESSING"] = "0"
    env.update(engine_env(spec))
    argv = vllm_argv(command, model_path, served_name, spec.options, engine.bind_host, port,
                     trust_remote_code)
    what = "vLLM (" + " ".join(argv[:argv.index("--host")]) + ")"
    # vLLM shuts its engine core down on TERM; give it the time to, so it releases its memory cleanly.
    return Launch(what, argv, env, ("/health", "/v1/models"), served_name, None, version_path="/version",
                  stop_grace_s=30.0, model_list_path="/v1/models")


def _served_version(url: str) -> str | None:
    """The version a running server reports about itself (vLLM's /version), or None when it does not say."""
    try:
        response = httpx.get(url, timeout=5.0)
        return str(response.json()["version"]) if response.status_code == 200 else None
    except (httpx.HTTPError, ValueError, KeyError, TypeError):
        return None


def confirm_listener_is_ours(process: subprocess.Popen, host: str, port: int, what: str) -> None:
    """Raise EngineError when the socket listening on `host:port` is held by a process outside the started one's
    tree (something took the port between the check and the start, or while the engine loaded); where /proc
    cannot tell, say so in the log and go on."""
    foreign = foreign_listeners(host, port, process.pid)
    if foreign is None:
        dg.get_dagster_logger().info(
            f"could not tell from /proc which process listens on {host}:{port}; not checking that it is {what}")
        return
    if foreign:
        raise EngineError(
            f"the server answering on {host}:{port} is not {what} (pid {process.pid}) nor a process it started: "
            f"{describe_processes(foreign)} listens there. Stop that process and run again; where the variant's "
            "engine settings set `port:`, set another or leave it unset to get a free one")


def confirm_served_model(listing: object, served_model: str, url: str) -> None:
    """Raise EngineError unless a model list (the JSON of OpenAI's /v1/models) names `served_model`."""
    try:
        served = [str(model["id"]) for model in listing["data"]]
    except (KeyError, TypeError) as error:
        raise EngineError(f"the server at {url} did not answer with a model list: {listing!r:.200}") from error
    if served_model not in served:
        raise EngineError(
            f"the server at {url} serves {served}, not {served_model!r}: it is not the engine started for this "
            "variant, or that engine ignored the served model name. Stop whatever else listens on its port, or "
            "check the engine command")


def _confirm_ready_server(process: subprocess.Popen, launch: Launch, host: str, port: int) -> None:
    """A ready server is the one started: it holds the port and, where it lists its models, lists ours."""
    confirm_listener_is_ours(process, host, port, launch.what)
    if launch.model_list_path:
        url = f"http://{host}:{port}{launch.model_list_path}"
        try:
            listing = httpx.get(url, timeout=10.0).json()
        except (httpx.HTTPError, ValueError) as error:
            raise EngineError(f"{launch.what} is up but its model list at {url} cannot be read ({error})") from error
        confirm_served_model(listing, launch.served_model, url)


# The engines this resource starts itself, one launcher per kind; `external` endpoints are started elsewhere.
LAUNCHERS = {"transformers": transformers_launch, "vllm": vllm_launch}


class EngineResource(dg.ConfigurableResource):
    """Starts the engine a variant names and hands back its endpoint; machine-level settings live here."""

    bind_host: str = "127.0.0.1"
    log_dir: str   # where each started server logs ($YARDSTICK_HOME/logs)
    transformers_command: str = ""  # empty: the `transformers` command of this Python environment
    # Empty: by the engine's device, vLLM's CPU build in .venv-vllm for `device: cpu`, else `vllm` (assets.matrix.host).
    vllm_command: str = ""
    cpu_threads: int = 1

    @contextmanager
    def deploy(
        self, spec: EngineSpec, model_path: str, served_name: str, log_name: str,
        trust_remote_code: bool = False, warmup_sampling: dict | None = None, device_env: dict | None = None,
    ) -> Iterator[Deployment]:
        """Yield a ready endpoint for `model_path`; a server started here is stopped when the block exits.
        `device_env` tells the server the devices claimed for it (CUDA_VISIBLE_DEVICES; see resources.devices).

        Refused before anything starts: a configured port something already listens on (EngineError), a disk
        without room for the engine's log (DiskSpaceError)."""
        log_path = Path(self.log_dir).resolve() / f"{log_name}.log"
        if spec.kind == "external":
            yield self._external(spec, served_name)
            return
        if not Path(model_path).exists():
            raise EngineError(f"model path {model_path} does not exist; materialize model_snapshot first")
        configured_port = spec.options.get("port")
        if configured_port:
            refuse_busy_port(self.bind_host, int(configured_port))
        require_free_space(log_path.parent, ENGINE_MIN_FREE_BYTES, "an engine's start (its log and caches)")
        port = int(configured_port or free_port(self.bind_host))
        base = f"http://{self.bind_host}:{port}"
        launch = LAUNCHERS[spec.kind](self, spec, model_path, served_name, port, trust_remote_code)
        ready = [f"{base}{path}" for path in launch.ready_paths]
        with server_process(launch.argv, log_path, ready, spec.startup_timeout_s, {**launch.env, **(device_env or {})},
                            launch.what, launch.stop_grace_s) as (process, startup):
            _confirm_ready_server(process, launch, self.bind_host, port)
            version = _served_version(f"{base}{launch.version_path}") if launch.version_path else None
            deployment = Deployment(engine=spec.kind, engine_version=version or launch.version, base_url=f"{base}/v1",
                                    served_model=launch.served_model, argv=launch.argv, startup_seconds=startup,
                                    pid=process.pid)
            if warmup_sampling is not None:
                self._warm_up(deployment, warmup_sampling, process, log_path)
            try:
                yield deployment
            finally:
                deployment.measure_memory()

    @staticmethod
    def _warm_up(deployment: Deployment, sampling: dict, process: subprocess.Popen, log_path: Path) -> None:
        """One request first: it loads the weights and, under continuous batching, fixes the sampling settings
        every later request shares (transformers' batch manager takes them from its first request)."""
        started = time.monotonic()
        body = {"model": deployment.served_model, "messages": [{"role": "user", "content": "warm-up"}],
                "max_tokens": 1, **sampling}
        try:
            response = httpx.post(f"{deployment.base_url}/chat/completions", json=body, timeout=600)
            response.raise_for_status()
        except httpx.HTTPError as error:
            raise EngineError(
                f"{deployment.engine} started but failed its first request ({error}); process "
                f"{'alive' if process.poll() is None else 'exited'}; last lines of {log_path}:\n{log_tail(log_path)}"
            ) from error
        deployment.startup_seconds += time.monotonic() - started

    @staticmethod
    def _external(spec: EngineSpec, served_name: str) -> Deployment:
        base_url = external_base_url(spec)
        key_variable = spec.options.get("api_key_env")
        if key_variable and url_has_credentials(base_url):
            raise EngineError(f"the endpoint {redact_url(base_url)} carries credentials in its URL and the engine "
                              f"settings name a key too (api_key_env: {key_variable}); the client would send the "
                              "URL's and drop the key: keep one, the URL without user:password@, or no api_key_env")
        api_key = "not-needed"
        if key_variable:
            api_key = dg.EnvVar(key_variable).get_value() or ""
            if not api_key:
                raise EngineError(f"environment variable {key_variable} (the API key for {redact_url(base_url)}) is "
                                  "not set")
        return Deployment(engine="external", engine_version=None, base_url=base_url,
                          served_model=str(spec.options.get("model", served_name)), api_key=api_key)
