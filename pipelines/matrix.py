"""The evaluation matrix: which variants (model × quantization × engine × hardware) run which benchmarks.

Plain Python over a YAML file, so the command line, the tests and the Dagster definitions read it the same
way. A `defaults` block is merged under every variant; a variant's own keys win.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

DEFAULT_MATRIX = Path(__file__).parent / "matrix.yaml"
R1_PROMPT_SUFFIX = "Please reason step by step, and put your final answer within \\boxed{}."

# Named protocols: what a run records so two scores are only compared when they were produced alike.
PROTOCOL_PRESETS: dict[str, dict[str, Any]] = {
    "deepseek-r1": {
        "temperature": 0.6,
        "top_p": 0.95,
        "max_tokens": 32768,
        "k": 4,
        "k_by_benchmark": {"aime24": 64, "aime25": 64, "amc23": 64},
        "system_prompt": None,
        "prompt_suffix": R1_PROMPT_SUFFIX,
        "reasoning_prefilled": True,
    },
    "greedy": {
        "temperature": 0.0,
        "top_p": 1.0,
        "max_tokens": 32768,
        "k": 1,
        "k_by_benchmark": {},
        "system_prompt": None,
        "prompt_suffix": R1_PROMPT_SUFFIX,
        "reasoning_prefilled": True,
    },
}
ENGINE_KINDS = ("transformers", "vllm", "external")
# Engine options that change how fast samples come back but never what they are.
_RUNTIME_ONLY_ENGINE_OPTIONS = {"concurrency", "startup_timeout_s", "port"}


class MatrixError(ValueError):
    """The matrix file is missing, malformed, or names something that does not exist."""


@dataclass(frozen=True)
class ModelSpec:
    repo: str | None = None
    revision: str | None = None
    path: str | None = None
    generate: str | None = None
    trust_remote_code: bool = False
    allow_patterns: tuple[str, ...] = ("*.json", "*.safetensors", "*.model", "*.txt", "*.jinja", "*.tiktoken")

    @property
    def source(self) -> str:
        if self.repo:
            return "hub"
        return "local" if self.path else "generated" if self.generate else "external"


# Quantization schemes and the methods each allows; the first is the default. Methods other than rtn and
# dynamic need a calibration set.
QUANTIZATION_METHODS = {
    "none": ("rtn",),
    "W8A16": ("rtn", "gptq"),
    "W4A16": ("rtn", "gptq"),
    "W8A8": ("smoothquant-gptq", "gptq"),
    "FP8_DYNAMIC": ("dynamic",),
}
CALIBRATED_METHODS = ("gptq", "smoothquant-gptq")


@dataclass(frozen=True)
class QuantizationSpec:
    scheme: str = "none"
    method: str = "rtn"
    calibration: str | None = None        # a named source, see assets/models/calibration.py
    calibration_samples: int = 512
    calibration_max_seq_len: int = 2048

    def identity(self) -> dict:
        """What makes two quantized checkpoints the same (calibration sizes only matter with a calibration)."""
        identity = asdict(self)
        if self.calibration is None:
            del identity["calibration_samples"], identity["calibration_max_seq_len"]
        return identity


@dataclass(frozen=True)
class EngineSpec:
    kind: str
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def concurrency(self) -> int:
        return int(self.options.get("concurrency", 8))

    @property
    def startup_timeout_s(self) -> float:
        return float(self.options.get("startup_timeout_s", 600))


@dataclass(frozen=True)
class Protocol:
    name: str
    temperature: float
    top_p: float
    max_tokens: int
    k: int                          # samples per item, for benchmarks not in k_by_benchmark
    k_by_benchmark: dict[str, int]  # small sets get more samples: their scores are noisy
    system_prompt: str | None
    prompt_suffix: str
    reasoning_prefilled: bool

    def samples_for(self, benchmark: str) -> int:
        return int(self.k_by_benchmark.get(benchmark, self.k))


@dataclass(frozen=True)
class ServingSpec:
    concurrency: tuple[int, ...] = (1, 4)        # closed-loop levels
    request_rates: tuple[float, ...] = ()        # open-loop Poisson levels, requests/s
    requests_per_level: int = 8
    warmup_requests: int = 1
    input_len: int = 64
    output_len: int = 32
    slo_ttft_ms: float = 2000.0
    slo_tpot_ms: float = 100.0
    prompts: str = "synthetic"   # synthetic prompts of input_len tokens, or the name of one of the benchmarks


@dataclass(frozen=True)
class Variant:
    name: str
    model: ModelSpec
    quantization: QuantizationSpec
    engine: EngineSpec
    protocol: Protocol
    benchmarks: dict[str, int | None]
    serving: ServingSpec
    hardware: str | None = None     # a row of the instance price catalog: what the engine runs on
    api_price: str | None = None    # a row of the API price catalog: an API billed per token
    baseline: str | None = None     # the variant quantization loss is measured against (default: the twin)

    @property
    def settings_hash(self) -> str:
        """Identity of the matrix settings that shape a sample: model, quantization, engine and protocol.

        The weights themselves are identified by the snapshot's fingerprint; see `assets.variants.config_hash`.
        """
        engine_options = {k: v for k, v in self.engine.options.items() if k not in _RUNTIME_ONLY_ENGINE_OPTIONS}
        identity = {
            "model": asdict(self.model),
            "quantization": self.quantization.identity(),
            "engine": {"kind": self.engine.kind, "options": engine_options},
            "protocol": asdict(self.protocol),
        }
        return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Matrix:
    path: Path
    variants: dict[str, Variant]
    benchmark_mirror: str | None

    def variant(self, name: str) -> Variant:
        if name not in self.variants:
            known = ", ".join(sorted(self.variants)) or "(none)"
            raise MatrixError(f"variant '{name}' not in {self.path}; known: {known}")
        return self.variants[name]


def matrix_path() -> Path:
    return Path(os.environ.get("YARDSTICK_MATRIX", DEFAULT_MATRIX))


def load_matrix(path: str | Path | None = None) -> Matrix:
    path = Path(path) if path else matrix_path()
    if not path.exists():
        raise MatrixError(f"matrix file {path} does not exist; set YARDSTICK_MATRIX or pass --matrix")
    try:
        document = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as error:
        raise MatrixError(f"matrix file {path} is not valid YAML: {error}") from error
    raw_variants = document.get("variants")
    if not isinstance(raw_variants, dict) or not raw_variants:
        raise MatrixError(f"matrix file {path} has no 'variants' mapping")
    defaults = document.get("defaults") or {}
    variants = {
        name: _parse_variant(name, _merge(defaults, body or {}), path) for name, body in raw_variants.items()
    }
    return Matrix(path=path, variants=variants, benchmark_mirror=document.get("benchmark_mirror"))


def _merge(base: dict, override: dict) -> dict:
    merged = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def _parse_quantization(body: dict, where: str) -> QuantizationSpec:
    unknown = set(body) - set(QuantizationSpec.__dataclass_fields__)
    if unknown:
        raise MatrixError(f"{where}: quantization has unknown keys {sorted(unknown)}")
    scheme = body.get("scheme", "none")
    if scheme not in QUANTIZATION_METHODS:
        raise MatrixError(f"{where}: quantization scheme '{scheme}' unknown; known: {', '.join(QUANTIZATION_METHODS)}")
    method = body.get("method") or QUANTIZATION_METHODS[scheme][0]
    if method not in QUANTIZATION_METHODS[scheme]:
        raise MatrixError(f"{where}: scheme {scheme} is made with {' or '.join(QUANTIZATION_METHODS[scheme])}, "
                          f"not '{method}'")
    calibration = body.get("calibration")
    if method in CALIBRATED_METHODS and not calibration:
        raise MatrixError(f"{where}: method {method} needs a 'calibration' source, e.g. arith-train or "
                          "hf:HuggingFaceH4/ultrachat_200k@train_sft")
    if calibration and method not in CALIBRATED_METHODS:
        raise MatrixError(f"{where}: method {method} takes no calibration data; drop 'calibration'")
    if calibration:
        from assets.models.calibration import CalibrationError, parse_source

        try:
            parse_source(calibration)
        except CalibrationError as error:
            raise MatrixError(f"{where}: {error}") from None
    return QuantizationSpec(**{**body, "scheme": scheme, "method": method})


def _parse_variant(name: str, body: dict, path: Path) -> Variant:
    where = f"variant '{name}' in {path}"
    for required in ("engine", "benchmarks"):
        if required not in body:
            raise MatrixError(f"{where} has no '{required}'")
    external = isinstance(body["engine"], dict) and body["engine"].get("kind") == "external"
    if not (body.get("hardware") or body.get("api_price")):
        raise MatrixError(f"{where} has neither 'hardware' (a row of the instance price catalog) nor "
                          "'api_price' (a row of the API price catalog); its costs cannot be priced")
    if body.get("api_price") and not external:
        raise MatrixError(f"{where}: 'api_price' prices an external API by the token; a variant that starts "
                          "its own engine is priced by its 'hardware'")
    if body.get("api_price") and body.get("hardware"):
        raise MatrixError(f"{where}: priced both by 'hardware' and by 'api_price'; an API is billed by the "
                          "token, so set 'hardware: null' (the defaults give every variant one)")

    model_body = body.get("model") or {}
    if external and model_body:
        raise MatrixError(f"{where}: an external endpoint serves its own weights, so 'model' does not apply; "
                          "set 'model: null' (the defaults give every variant one)")
    if not external and not model_body:
        raise MatrixError(f"{where} has no 'model'")
    sources = [key for key in ("repo", "path", "generate") if model_body.get(key)]
    if not external and len(sources) != 1:
        raise MatrixError(f"{where}: model needs exactly one of 'repo', 'path' or 'generate', got {sources}")
    if model_body.get("repo") and not model_body.get("revision"):
        raise MatrixError(f"{where}: model 'repo' needs a pinned 'revision' (a commit sha or tag)")
    if "allow_patterns" in model_body:
        model_body = {**model_body, "allow_patterns": tuple(model_body["allow_patterns"])}
    model = ModelSpec(**model_body)

    quantization_body = body.get("quantization", "none")
    if isinstance(quantization_body, str):
        quantization_body = {"scheme": quantization_body}
    quantization = _parse_quantization(quantization_body, where)

    engine_body = dict(body["engine"])
    kind = engine_body.pop("kind", None)
    if kind not in ENGINE_KINDS:
        raise MatrixError(f"{where}: engine kind '{kind}' unknown; known: {', '.join(ENGINE_KINDS)}")
    engine = EngineSpec(kind=kind, options=engine_body)
    if kind == "external":
        if not engine_body.get("model"):
            raise MatrixError(f"{where}: an external engine needs 'model', the model name the endpoint serves "
                              "(for example deepseek-reasoner)")
        if engine_body.get("token_limit_param", "max_tokens") not in ("max_tokens", "max_completion_tokens"):
            raise MatrixError(f"{where}: token_limit_param is max_tokens or max_completion_tokens, not "
                              f"'{engine_body['token_limit_param']}'")
        if bool(engine_body.get("base_url")) == bool(engine_body.get("base_url_env")):
            raise MatrixError(f"{where}: an external engine needs exactly one of 'base_url' (ending in /v1) or "
                              "'base_url_env' (an environment variable holding it)")

    protocol_body = dict(body.get("protocol") or {})
    preset_name = protocol_body.pop("preset", "deepseek-r1")
    if preset_name not in PROTOCOL_PRESETS:
        raise MatrixError(f"{where}: protocol preset '{preset_name}' unknown; known: {', '.join(PROTOCOL_PRESETS)}")
    unknown = set(protocol_body) - set(PROTOCOL_PRESETS[preset_name])
    if unknown:
        raise MatrixError(f"{where}: protocol has unknown keys {sorted(unknown)}")
    protocol = Protocol(name=preset_name, **{**PROTOCOL_PRESETS[preset_name], **protocol_body})
    if min([protocol.k, *protocol.k_by_benchmark.values()]) < 1:
        raise MatrixError(f"{where}: protocol k must be at least 1, got {protocol.k} / {protocol.k_by_benchmark}")

    benchmarks = body["benchmarks"]
    if isinstance(benchmarks, list):
        benchmarks = {benchmark: None for benchmark in benchmarks}
    if not isinstance(benchmarks, dict) or not benchmarks:
        raise MatrixError(f"{where}: 'benchmarks' must map benchmark names to item counts (or null for all)")

    serving_body = dict(body.get("serving") or {})
    if "concurrency" in serving_body:
        serving_body["concurrency"] = tuple(int(c) for c in serving_body["concurrency"])
    if "request_rates" in serving_body:
        serving_body["request_rates"] = tuple(float(r) for r in serving_body["request_rates"])
    unknown = set(serving_body) - set(ServingSpec.__dataclass_fields__)
    if unknown:
        raise MatrixError(f"{where}: serving has unknown keys {sorted(unknown)}")
    serving = ServingSpec(**serving_body)
    if serving.prompts != "synthetic" and serving.prompts not in benchmarks:
        raise MatrixError(f"{where}: serving prompts '{serving.prompts}' must be 'synthetic' or one of the "
                          f"variant's benchmarks ({', '.join(benchmarks)})")

    return Variant(
        name=name,
        model=model,
        quantization=quantization,
        engine=engine,
        protocol=protocol,
        benchmarks={str(k): (int(v) if v is not None else None) for k, v in benchmarks.items()},
        serving=serving,
        hardware=str(body["hardware"]) if body.get("hardware") else None,
        api_price=str(body["api_price"]) if body.get("api_price") else None,
        baseline=str(body["baseline"]) if body.get("baseline") else None,
    )
