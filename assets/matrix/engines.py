"""Engine settings, typed: one frozen dataclass per engine kind with its defaults in one place, parsed from the
matrix's `engine:` block with unknown keys refused (naming the key and the known ones).

Every part of the house that needs an engine setting (argv, devices, memory plan, Kubernetes, cost, requests)
reads these fields; none reads the YAML mapping. Adding an engine kind adds its dataclass here and one line in
`ENGINE_SETTINGS` (and its launcher, `resources.launchers`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import MISSING, dataclass, field, fields
from difflib import get_close_matches
from typing import Any, ClassVar


class EngineSettingsError(ValueError):
    """An engine setting is unknown for its kind or has a value of the wrong type."""


def _number(kind: type) -> Callable[[object], Any]:
    def parse(value: object) -> Any:
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise ValueError(f"expected a number, got {value!r}")
        if kind is int and isinstance(value, float) and not value.is_integer():
            raise ValueError(f"expected a whole number, got {value!r}")
        return kind(value)
    return parse


def _flag(value: object) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"expected true or false, got {value!r}")
    return value


def _text(value: object) -> str:
    if not isinstance(value, str | int | float) or isinstance(value, bool):
        raise ValueError(f"expected text, got {value!r}")
    return str(value)


def _optional(parse: Callable[[object], Any]) -> Callable[[object], Any]:
    return lambda value: None if value is None else parse(value)


def _variables(value: object) -> dict[str, str]:
    if not isinstance(value, Mapping):
        raise ValueError(f"expected a mapping of environment variables to values, got {value!r}")
    return {str(name): str(setting) for name, setting in value.items()}


def _arguments(value: object) -> tuple[str, ...]:
    if not isinstance(value, list | tuple):
        raise ValueError(f"expected a list of arguments, got {value!r}")
    return tuple(str(argument) for argument in value)


def _mapping(value: object) -> dict:
    if not isinstance(value, Mapping):
        raise ValueError(f"expected a mapping, got {value!r}")
    return dict(value)


def setting(default: object, parse: Callable[[object], Any], doc: str) -> Any:
    """A field of an engine's settings: its default, how a YAML value becomes it, and what it does."""
    if isinstance(default, dict):
        return field(default_factory=dict, metadata={"parse": parse, "doc": doc})
    return field(default=default, metadata={"parse": parse, "doc": doc})


def _no_default(parse: Callable[[object], Any], doc: str) -> Any:
    return field(metadata={"parse": parse, "doc": doc})


@dataclass(frozen=True, kw_only=True)
class EngineSettings:
    """What every engine kind takes."""

    KIND: ClassVar[str] = ""
    # What the engine can do, which the load test and the cluster deployment ask rather than its kind:
    FORCES_OUTPUT_LENGTH: ClassVar[bool] = False   # honours ignore_eos/min_tokens: a level's outputs are exactly
                                                   # output_len tokens long
    USAGE_PER_CHUNK: ClassVar[bool] = False        # reports token usage in every streamed chunk
    NEEDS_SHARED_MEMORY: ClassVar[bool] = False    # its workers exchange tensors through /dev/shm
    NODES_JOIN_RAY: ClassVar[bool] = False         # beyond one node, its pods join a Ray cluster (vLLM); llama.cpp's
                                                   # other hosts are RPC servers it is given the addresses of
    concurrency: int = setting(8, _number(int), "requests in flight from the client")
    per_request_seed: bool = setting(True, _flag, "send each sample's own seed (false for an API that refuses it)")
    retry: dict | None = setting(None, _optional(_mapping), "retry policy (assets.engine.retry)")
    startup_timeout_s: float = setting(600.0, _number(float), "seconds the engine may take to become ready")

    @property
    def on_cpu(self) -> bool:
        return False

    @property
    def node_count(self) -> int:
        """The hosts one engine spans."""
        return 1

    @property
    def devices_spanned(self) -> int:
        """The GPUs one engine uses over all its hosts (tensor × pipeline parallel)."""
        return 1

    @classmethod
    def known(cls) -> tuple[str, ...]:
        return tuple(item.name for item in fields(cls))

    @classmethod
    def parse(cls, body: Mapping[str, object], where: str) -> EngineSettings:
        """These settings from the matrix's mapping (without `kind`), unknown keys and bad values refused."""
        known = cls.known()
        unknown = sorted(str(key) for key in body if key not in known)
        if unknown:
            guesses = [f"{key} (did you mean {close[0]}?)" if (close := get_close_matches(key, known, n=1)) else key
                       for key in unknown]
            raise EngineSettingsError(
                f"{where}: {cls.KIND} engine setting{'s' if len(unknown) > 1 else ''} {', '.join(guesses)} unknown; "
                f"known: {', '.join(sorted(known))}")
        values = {}
        for item in fields(cls):
            if item.name not in body:
                if item.default is MISSING and item.default_factory is MISSING:
                    article = "an" if cls.KIND[0] in "aeiou" else "a"
                    raise EngineSettingsError(f"{where}: {article} {cls.KIND} engine needs '{item.name}' "
                                              f"({item.metadata['doc']})")
                continue
            try:
                values[item.name] = item.metadata["parse"](body[item.name])
            except (TypeError, ValueError) as error:
                raise EngineSettingsError(f"{where}: engine setting '{item.name}' ({item.metadata['doc']}): "
                                          f"{error}") from None
        return cls(**values)


@dataclass(frozen=True, kw_only=True)
class LocalEngineSettings(EngineSettings):
    """What every engine this project starts itself takes."""

    device: str = setting("cuda", _text, "cpu, or cuda for GPUs")
    dtype: str = setting("auto", _text, "the weights' compute dtype")
    env: dict = setting({}, _variables, "environment variables for the engine process")
    max_model_len: int | None = setting(None, _optional(_number(int)),
                                        "the longest sequence the engine and its memory plan allow")
    port: int | None = setting(None, _optional(_number(int)), "a fixed port (default: a free one)")

    @property
    def on_cpu(self) -> bool:
        return self.device.startswith("cpu")


@dataclass(frozen=True, kw_only=True)
class VllmSettings(LocalEngineSettings):
    KIND: ClassVar[str] = "vllm"
    FORCES_OUTPUT_LENGTH: ClassVar[bool] = True
    USAGE_PER_CHUNK: ClassVar[bool] = True
    NEEDS_SHARED_MEMORY: ClassVar[bool] = True
    NODES_JOIN_RAY: ClassVar[bool] = True
    cpu_kvcache_space_gib: int = setting(1, _number(int), "KV cache in RAM on vLLM's CPU build, whole GiB")
    distributed_executor_backend: str | None = setting(None, _optional(_text), "mp or ray (ray when nodes > 1)")
    enable_prefix_caching: bool = setting(True, _flag, "automatic prefix caching")
    enforce_eager: bool | None = setting(None, _optional(_flag), "no CUDA graphs / compilation (default: on a CPU)")
    extra_args: tuple[str, ...] = setting((), _arguments, "more `vllm serve` arguments, as given")
    gpu_memory_utilization: float = setting(0.9, _number(float), "share of each GPU's memory vLLM may use")
    kv_cache_dtype: str | None = setting(None, _optional(_text), "auto or an fp8 variant")
    max_num_seqs: int | None = setting(None, _optional(_number(int)), "sequences batched at once")
    nodes: int = setting(1, _number(int), "hosts the engine spans (Ray)")
    pipeline_parallel_size: int = setting(1, _number(int), "pipeline-parallel stages")
    quantization: str | None = setting(None, _optional(_text), "quantize at load time (fp8)")
    reasoning_parser: str | None = setting("deepseek_r1", _optional(_text), "splits the reasoning from the answer")
    seed: int = setting(0, _number(int), "the engine's default seed")
    tensor_parallel_size: int = setting(1, _number(int), "tensor-parallel GPUs per stage")

    @property
    def node_count(self) -> int:
        return max(1, self.nodes)

    @property
    def devices_spanned(self) -> int:
        return max(1, self.tensor_parallel_size * self.pipeline_parallel_size)

    @property
    def eager(self) -> bool:
        return self.on_cpu if self.enforce_eager is None else self.enforce_eager


@dataclass(frozen=True, kw_only=True)
class TransformersSettings(LocalEngineSettings):
    KIND: ClassVar[str] = "transformers"
    device: str = setting("cpu", _text, "cpu, or cuda for a GPU")
    cb_block_size: int = setting(32, _number(int), "continuous batching: tokens per KV block")
    cb_max_batch_tokens: int = setting(2048, _number(int), "continuous batching: tokens per forward pass")
    cb_num_blocks: int = setting(512, _number(int), "continuous batching: KV blocks")
    continuous_batching: bool = setting(True, _flag, "batch requests as they come")
    seed: int | None = setting(None, _optional(_number(int)), "the server's default seed")


@dataclass(frozen=True, kw_only=True)
class LlamaCppSettings(LocalEngineSettings):
    """llama.cpp's `llama-server`, serving a GGUF file (the variant's quantization makes it)."""

    KIND: ClassVar[str] = "llamacpp"
    FORCES_OUTPUT_LENGTH: ClassVar[bool] = True   # ignore_eos: a level's outputs are exactly output_len long
    USAGE_PER_CHUNK: ClassVar[bool] = False       # usage comes in the last chunk only
    device: str = setting("cpu", _text, "cpu, or cuda for GPUs (a CUDA build: YARDSTICK_LLAMACPP_SERVER)")
    dtype: str = setting("auto", _text, "not used: the GGUF file's tensor types are what runs")
    parallel: int | None = setting(None, _optional(_number(int)),
                                   "server slots batched at once (default: the variant's concurrency)")
    gpu_layers: int | None = setting(None, _optional(_number(int)),
                                     "layers offloaded to the GPUs, -ngl (default: all on a GPU, none on a CPU)")
    tensor_split: tuple[str, ...] = setting((), _arguments, "the share of the model on each GPU, --tensor-split")
    threads: int | None = setting(None, _optional(_number(int)), "CPU threads (default: the host's engine cores)")
    reasoning_format: str = setting("deepseek", _text, "deepseek: the reasoning in reasoning_content; none: kept")
    rpc: tuple[str, ...] = setting((), _arguments, "host:port of llama.cpp RPC servers to spread the model over")
    extra_args: tuple[str, ...] = setting((), _arguments, "more `llama-server` arguments, as given")
    seed: int = setting(0, _number(int), "the server's default seed")

    @property
    def node_count(self) -> int:
        return 1 + len(self.rpc)

    @property
    def devices_spanned(self) -> int:
        return max(1, len(self.tensor_split))


@dataclass(frozen=True, kw_only=True)
class ExternalSettings(EngineSettings):
    KIND: ClassVar[str] = "external"
    model: str = _no_default(_text, "the model name the endpoint serves, e.g. deepseek-reasoner")
    api_key_env: str | None = setting(None, _optional(_text), "the environment variable holding the API key")
    base_url: str | None = setting(None, _optional(_text), "the endpoint, ending in /v1")
    base_url_env: str | None = setting(None, _optional(_text), "the environment variable holding the endpoint")
    fixed_sampling: bool = setting(False, _flag, "the API takes only its own temperature and top_p")
    token_limit_param: str = setting("max_tokens", _text, "max_tokens or max_completion_tokens")


ENGINE_SETTINGS: dict[str, type[EngineSettings]] = {
    settings.KIND: settings for settings in (TransformersSettings, VllmSettings, LlamaCppSettings, ExternalSettings)
}
ENGINE_KINDS = tuple(ENGINE_SETTINGS)
# Settings that change how fast samples come back but never what they are: not part of a sample's identity.
RUNTIME_ONLY_SETTINGS = frozenset({"concurrency", "startup_timeout_s", "port", "cpu_kvcache_space_gib", "retry",
                                   "threads"})
