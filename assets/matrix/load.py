"""Reading the evaluation matrix: YAML with a `defaults` block merged under every variant (a variant's own keys
win), validated into the dataclasses of `assets.matrix.spec` with errors that say what to fix."""

from __future__ import annotations

import copy
import dataclasses
import os
import re
from collections.abc import Callable
from pathlib import Path

import yaml

from assets.matrix.engines import ENGINE_KINDS, ENGINE_SETTINGS, EngineSettingsError, ExternalSettings
from assets.matrix.host import SCHEME_KERNELS, ProbeError, VllmCpuCapabilities, vllm_cpu_capabilities
from assets.matrix.spec import (
    BUSY_HOST_POLICIES,
    GGUF_SCHEMES,
    PROTOCOL_PRESETS,
    QUANTIZATION_METHODS,
    RESAMPLE,
    EngineSpec,
    Matrix,
    MatrixError,
    ModelSpec,
    Protocol,
    QuantizationSpec,
    ServingSpec,
    Variant,
)
from assets.models.calibration import CalibrationError, parse_source
from assets.secrets import redact_url, url_has_credentials

# The offline default; YARDSTICK_MATRIX names another file.
DEFAULT_MATRIX = Path(__file__).resolve().parents[2] / "pipelines" / "matrix.yaml"


def matrix_path() -> Path:
    return Path(os.environ.get("YARDSTICK_MATRIX", DEFAULT_MATRIX))


TOP_LEVEL_KEYS = ("benchmark_mirror", "benchmark_options", "defaults", "reference", "variants")

HostCapabilities = Callable[[], VllmCpuCapabilities | None]


def load_matrix(path: str | Path | None = None, host: HostCapabilities | None = None) -> Matrix:
    """The matrix at `path` (default: `matrix_path()`), validated, each variant routed to an engine that can serve
    it on this host: `host` answers what vLLM's CPU build can run here (default: probe it, `assets.matrix.host`)."""
    path = Path(path) if path else matrix_path()
    if not path.exists():
        raise MatrixError(f"matrix file {path} does not exist; set YARDSTICK_MATRIX or pass --matrix")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise MatrixError(f"matrix file {path} is not UTF-8 text ({error.reason} at byte {error.start + 1}: "
                          f"{error.object[error.start:error.end]!r}); save it as UTF-8") from None
    except OSError as error:
        raise MatrixError(f"matrix file {path} cannot be read ({error.strerror}); name a YAML file") from None
    try:
        document = yaml.safe_load(text) or {}
    except yaml.YAMLError as error:
        raise MatrixError(f"matrix file {path} is not valid YAML: {error}") from error
    if not isinstance(document, dict):
        raise MatrixError(f"matrix file {path} must be a mapping with 'variants' (and 'defaults', 'benchmark_mirror')")
    unknown = sorted(str(key) for key in document if key not in TOP_LEVEL_KEYS and not str(key).startswith("x-"))
    if unknown:
        raise MatrixError(f"matrix file {path} has unknown top-level keys {unknown}; known: "
                          f"{', '.join(TOP_LEVEL_KEYS)} (and x-... for YAML anchors)")
    raw_variants = document.get("variants")
    if not isinstance(raw_variants, dict) or not raw_variants:
        raise MatrixError(f"matrix file {path} has no 'variants' mapping")
    defaults = document.get("defaults") or {}
    variants = {
        name: _with_former_options(
            _parse_variant(name, _with_defaults(defaults, body or {}, f"variant '{name}' in {path}"), path),
            _merge(defaults, body or {}).get("engine"))
        for name, body in raw_variants.items()
    }
    variants = _routed(variants, host or _probed_host)
    return Matrix(path=path, variants=variants, benchmark_mirror=document.get("benchmark_mirror"),
                  benchmark_options=_benchmark_options(document.get("benchmark_options"), path),
                  reference=document.get("reference"))   # checked by the Matrix: an unquantized variant


def _benchmark_options(raw: object, path: Path) -> dict[str, dict]:
    from assets.benchmarks.registry import benchmark_named
    from assets.benchmarks.sources import BenchmarkDataError

    if raw is None:
        return {}
    if not isinstance(raw, dict) or not all(isinstance(value, dict) for value in raw.values()):
        raise MatrixError(f"matrix file {path}: benchmark_options maps a benchmark to its options, e.g. "
                          "{livecodebench: {release: release_v6, since: 2025-01-01}}")
    checked = {}
    for name, options in raw.items():
        try:
            checked[str(name)] = benchmark_named(str(name)).checked_options(options)
        except (BenchmarkDataError, ValueError) as error:
            raise MatrixError(f"matrix file {path}: benchmark_options: {error}") from None
    return checked


def _with_defaults(defaults: dict, body: dict, where: str) -> dict:
    """The defaults merged under a variant, but for its `benchmarks`, which name all it runs: a variant that
    gives its own (say a small nightly subset) runs those only; and for the engine settings of another kind than
    the variant's, which do not apply to it (the defaults' `cpu_kvcache_space_gib` of vLLM says nothing to a
    variant served by transformers)."""
    merged = _merge({key: value for key, value in defaults.items() if key != "engine"}, body)
    if isinstance(body.get("benchmarks"), dict | list):
        merged["benchmarks"] = copy.deepcopy(body["benchmarks"])
    default_engine, engine = _engine_mapping(defaults.get("engine")), _engine_mapping(body.get("engine"))
    if default_engine is None or (engine is None and "engine" in body):
        return merged
    kind = (engine or {}).get("kind", default_engine.get("kind"))
    if kind != default_engine.get("kind") and kind in ENGINE_SETTINGS:
        _refuse_unknown_anywhere(default_engine, f"{where}: the defaults' engine")
        applies = ENGINE_SETTINGS[kind].known()
        default_engine = {key: value for key, value in default_engine.items() if key in applies}
    merged["engine"] = _merge(default_engine, engine or {})
    return merged


def _with_former_options(variant: Variant, merged_engine: object) -> Variant:
    """The variant, with the engine settings an older yardstick merged for it (every setting of the defaults',
    whatever their kind) where they differ from its own: its samples were keyed by them."""
    former = _engine_mapping(merged_engine)
    if former is None:
        return variant
    former = {key: value for key, value in former.items() if key not in ("kind", "fallback")}
    return variant if former == variant.engine.options else dataclasses.replace(variant, former_engine_options=former)


def _engine_mapping(raw: object) -> dict | None:
    """An engine as a mapping (`engine: vllm` is `engine: {kind: vllm}`); what is neither is left to the parser."""
    if isinstance(raw, str):
        return {"kind": raw}
    return dict(raw) if isinstance(raw, dict) else None


def _refuse_unknown_anywhere(engine_body: dict, where: str) -> None:
    """A setting no engine kind knows is a typo wherever it is written, even where it would not apply."""
    every = {name for settings in ENGINE_SETTINGS.values() for name in settings.known()} | {"kind", "fallback"}
    unknown = sorted(str(key) for key in engine_body if key not in every)
    if unknown:
        raise MatrixError(f"{where}: engine settings {', '.join(unknown)} unknown to every engine kind "
                          f"({', '.join(ENGINE_KINDS)}); see assets/matrix/engines.py for each kind's settings")


def _merge(base: dict, override: dict) -> dict:
    merged = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


# Engine settings that would hold a secret written into the matrix; keys come from environment variables only.
_INLINE_SECRETS = ("api_key", "key", "token", "password", "secret", "authorization")


def _refuse_inline_secrets(engine_body: dict, where: str) -> None:
    """A matrix is committed and shared: an API key written in it is refused, with where it belongs."""
    for name in engine_body:
        if name.lower().replace("-", "_") in _INLINE_SECRETS:
            raise MatrixError(f"{where}: engine setting '{name}' would put a secret in the matrix; keys come only from "
                              "environment variables: export it (e.g. DEEPSEEK_API_KEY) and name the variable with "
                              "`api_key_env: DEEPSEEK_API_KEY`")
    base_url = engine_body.get("base_url")
    if isinstance(base_url, str) and url_has_credentials(base_url):
        raise MatrixError(f"{where}: base_url {redact_url(base_url)} carries credentials in the matrix; put the "
                          "whole URL in an environment variable and name it with `base_url_env`, or the key "
                          "alone with `api_key_env`")


def _parse_quantization(body: dict, where: str) -> QuantizationSpec:
    unknown = set(body) - set(QuantizationSpec.__dataclass_fields__)
    if unknown:
        raise MatrixError(f"{where}: quantization has unknown keys {sorted(unknown)}")
    scheme = body.get("scheme", "none")
    default_method = QUANTIZATION_METHODS[scheme][0] if scheme in QUANTIZATION_METHODS else None
    spec = QuantizationSpec(**{**body, "scheme": scheme, "method": body.get("method") or default_method})
    problem = spec.problem()
    if problem:
        raise MatrixError(f"{where}: {problem}")
    calibration = spec.calibration
    if calibration:
        try:
            parse_source(calibration)
        except CalibrationError as error:
            raise MatrixError(f"{where}: {error}") from None
    return spec


def _check_format(engine: EngineSpec, quantization: QuantizationSpec, where: str) -> None:
    """GGUF files are llama.cpp's, and llama.cpp serves nothing else."""
    gguf = quantization.scheme in GGUF_SCHEMES
    if gguf and engine.kind != "llamacpp":
        raise MatrixError(f"{where}: {quantization.scheme} is a GGUF type, which llama.cpp serves; set the engine's "
                          f"kind to llamacpp, or choose an llm-compressor scheme for {engine.kind}")
    if engine.kind == "llamacpp" and not gguf and quantization.scheme != "none":
        raise MatrixError(f"{where}: llama.cpp serves GGUF files, not {quantization.scheme}; choose one of "
                          f"{', '.join(GGUF_SCHEMES)} (or none: the checkpoint converted to GGUF as it is)")
    if engine.fallback is not None and engine.fallback.kind == "llamacpp":
        raise MatrixError(f"{where}: llama.cpp cannot stand in for {engine.kind}: it serves GGUF files")


# Engine settings a fallback engine takes from the engine it stands in for, unless it sets its own.
_FALLBACK_INHERITS = ("device", "concurrency", "startup_timeout_s")


def _parse_engine(raw: object, where: str, fallback_of: str | None = None) -> EngineSpec:
    if isinstance(raw, str):
        raw = {"kind": raw}
    if not isinstance(raw, dict):
        raise MatrixError(f"{where}: engine settings are a mapping with 'kind', got {raw!r}")
    engine_body = dict(raw)
    kind = engine_body.pop("kind", None)
    what = f"fallback engine of {fallback_of}" if fallback_of else "engine"
    if kind not in ENGINE_KINDS:
        raise MatrixError(f"{where}: {what} kind '{kind}' unknown; known: {', '.join(ENGINE_KINDS)}")
    _refuse_inline_secrets(engine_body, where)
    fallback = engine_body.pop("fallback", None)
    try:
        ENGINE_SETTINGS[kind].parse(engine_body, f"{where}: {what}")
    except EngineSettingsError as error:
        raise MatrixError(str(error)) from None
    if fallback is not None:
        if fallback_of:
            raise MatrixError(f"{where}: a fallback engine has no fallback of its own")
        fallback_spec = _parse_engine(fallback, where, fallback_of=kind)
        if fallback_spec.kind in (kind, "external"):
            raise MatrixError(f"{where}: the fallback of engine {kind} must start another engine on the same weights "
                              f"(transformers or vllm), not {fallback_spec.kind}")
        inherited = {key: engine_body[key] for key in _FALLBACK_INHERITS if key in engine_body}
        fallback = dataclasses.replace(fallback_spec, options={**inherited, **fallback_spec.options})
    return EngineSpec(kind=kind, options=engine_body, fallback=fallback)


def _probed_host() -> VllmCpuCapabilities | None:
    """vLLM's CPU build as probed on this host; None where it cannot be (then the launcher asks again, and says)."""
    try:
        return vllm_cpu_capabilities()
    except ProbeError:
        return None


def _routed(variants: dict[str, Variant], host: HostCapabilities) -> dict[str, Variant]:
    """Each variant whose quantization vLLM's CPU build cannot run on this host, given to its fallback engine with
    the reason, or marked not runnable with it; the others as they are. The host is probed only when some variant
    needs a kernel of its own."""
    routed = {}
    for name, variant in variants.items():
        engine = variant.engine
        if engine.kind != "vllm" or not engine.on_cpu or variant.quantization.scheme not in SCHEME_KERNELS:
            routed[name] = variant
            continue
        capabilities = host()
        reason = capabilities.why_not(variant.quantization.scheme) if capabilities else None
        if reason is None:
            routed[name] = variant
        elif engine.fallback is not None:
            routed[name] = dataclasses.replace(
                variant, engine=engine.fallback, requested_engine=engine.kind, former_engine_options=None,
                engine_note=f"served by {engine.fallback.kind}, its fallback: vllm cannot run it here: {reason}")
        else:
            problem = capabilities.problem(variant.quantization.scheme)
            routed[name] = dataclasses.replace(variant, not_runnable=f"vllm cannot run it here: {problem}")
    return routed


# A variant's name becomes a partition key, a folder and file name, a run tag and a Kubernetes label: letters,
# digits, '.', '_' and '-', starting with a letter or digit, at most 63 characters (a label's limit).
VARIANT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}")


VARIANT_KEYS = ("model", "quantization", "engine", "protocol", "benchmarks", "serving", "hardware", "api_price",
                "baseline", "resample")


def _parse_variant(name: object, body: dict, path: Path) -> Variant:
    if not isinstance(name, str) or not VARIANT_NAME.fullmatch(name):
        raise MatrixError(f"variant name {name!r} in {path} is not a name yardstick can use: it becomes a folder, a "
                          "file name and a label, so it takes letters, digits, '.', '_' and '-', starts with a letter "
                          "or digit and has at most 63 characters (for example r1-qwen-7b-w4a16)")
    where = f"variant '{name}' in {path}"
    unknown = sorted(str(key) for key in body if key not in VARIANT_KEYS and not str(key).startswith("x-"))
    if unknown:
        raise MatrixError(f"{where} has unknown keys {unknown}; known: {', '.join(VARIANT_KEYS)}")
    for required in ("engine", "benchmarks"):
        if required not in body:
            raise MatrixError(f"{where} has no '{required}'")
    engine = _parse_engine(body["engine"], where)
    external = engine.kind == "external"
    _check_pricing(body, external, where)
    if external:
        _check_endpoint(engine.settings, where)
    quantization_body = body.get("quantization", "none")
    if isinstance(quantization_body, str):
        quantization_body = {"scheme": quantization_body}
    benchmarks = _parse_benchmarks(body["benchmarks"], where)
    resample = str(body.get("resample") or "never")
    if resample not in RESAMPLE:
        raise MatrixError(f"{where}: resample '{resample}' unknown; known: {', '.join(RESAMPLE)} (daily draws the "
                          "samples afresh each UTC day, for an API baseline's drift)")
    quantization = _parse_quantization(quantization_body, where)
    _check_format(engine, quantization, where)
    return Variant(
        name=name,
        model=_parse_model(body.get("model") or {}, external, where),
        quantization=quantization,
        engine=engine,
        protocol=_parse_protocol(dict(body.get("protocol") or {}), where),
        benchmarks=benchmarks,
        serving=_parse_serving(dict(body.get("serving") or {}), benchmarks, where),
        hardware=str(body["hardware"]) if body.get("hardware") else None,
        api_price=str(body["api_price"]) if body.get("api_price") else None,
        baseline=str(body["baseline"]) if body.get("baseline") else None,
        resample=resample,
    )


def _check_pricing(body: dict, external: bool, where: str) -> None:
    if not (body.get("hardware") or body.get("api_price")):
        raise MatrixError(f"{where} has neither 'hardware' (a row of the instance price catalog) nor "
                          "'api_price' (a row of the API price catalog); its costs cannot be priced")
    if body.get("api_price") and not external:
        raise MatrixError(f"{where}: 'api_price' prices an external API by the token; a variant that starts "
                          "its own engine is priced by its 'hardware'")
    if body.get("api_price") and body.get("hardware"):
        raise MatrixError(f"{where}: priced both by 'hardware' and by 'api_price'; an API is billed by the "
                          "token, so set 'hardware: null' (the defaults give every variant one)")


def _check_endpoint(settings: ExternalSettings, where: str) -> None:
    if settings.token_limit_param not in ("max_tokens", "max_completion_tokens"):
        raise MatrixError(f"{where}: token_limit_param is max_tokens or max_completion_tokens, not "
                          f"'{settings.token_limit_param}'")
    if bool(settings.base_url) == bool(settings.base_url_env):
        raise MatrixError(f"{where}: an external engine needs exactly one of 'base_url' (ending in /v1) or "
                          "'base_url_env' (an environment variable holding it)")


def _parse_model(model_body: dict, external: bool, where: str) -> ModelSpec:
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
    return ModelSpec(**model_body)


def _parse_protocol(protocol_body: dict, where: str) -> Protocol:
    preset_name = protocol_body.pop("preset", "deepseek-r1")
    if preset_name not in PROTOCOL_PRESETS:
        raise MatrixError(f"{where}: protocol preset '{preset_name}' unknown; known: {', '.join(PROTOCOL_PRESETS)}")
    unknown = set(protocol_body) - set(PROTOCOL_PRESETS[preset_name])
    if unknown:
        raise MatrixError(f"{where}: protocol has unknown keys {sorted(unknown)}")
    protocol = Protocol(name=preset_name, **{**PROTOCOL_PRESETS[preset_name], **protocol_body})
    if min([protocol.k, *protocol.k_by_benchmark.values()]) < 1:
        raise MatrixError(f"{where}: protocol k must be at least 1, got {protocol.k} / {protocol.k_by_benchmark}")
    return protocol


def _parse_benchmarks(benchmarks: object, where: str) -> dict[str, int | None]:
    if isinstance(benchmarks, list):
        benchmarks = {benchmark: None for benchmark in benchmarks}
    if not isinstance(benchmarks, dict) or not benchmarks:
        raise MatrixError(f"{where}: 'benchmarks' must map benchmark names to item counts (or null for all)")
    return {str(k): (int(v) if v is not None else None) for k, v in benchmarks.items()}


def _parse_serving(serving_body: dict, benchmarks: dict, where: str) -> ServingSpec:
    for key, kind in (("concurrency", int), ("request_rates", float)):
        if key in serving_body:
            serving_body[key] = tuple(kind(value) for value in serving_body[key])
    if unknown := set(serving_body) - set(ServingSpec.__dataclass_fields__):
        raise MatrixError(f"{where}: serving has unknown keys {sorted(unknown)}")
    serving = ServingSpec(**serving_body)
    if not 0 <= serving.max_failed_share < 1:
        raise MatrixError(f"{where}: serving max_failed_share is a share of a level's requests, in [0, 1), got "
                          f"{serving.max_failed_share}")
    if serving.busy_host not in BUSY_HOST_POLICIES:
        raise MatrixError(f"{where}: serving busy_host is one of {', '.join(BUSY_HOST_POLICIES)}, not "
                          f"'{serving.busy_host}'")
    if serving.prompts != "synthetic" and serving.prompts not in benchmarks:
        raise MatrixError(f"{where}: serving prompts '{serving.prompts}' must be 'synthetic' or one of the "
                          f"variant's benchmarks ({', '.join(benchmarks)})")
    return serving
