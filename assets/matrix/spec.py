"""The evaluation matrix as data: variants (model × quantization × engine × hardware), the protocols they are
sampled under, and the identity that makes two samples comparable.

Plain Python at the bottom of the house: everything else reads these dataclasses, nothing here reads anything
else. Parsing and validating the YAML file lives in `assets.matrix.load`.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from assets.matrix.engines import (
    ENGINE_KINDS,
    ENGINE_SETTINGS,
    RUNTIME_ONLY_SETTINGS,
    EngineSettings,
    EngineSettingsError,
)

# DeepSeek-R1's recommended instruction for math, after the problem.
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


# GGUF tensor types `llama-quantize` makes (llama.cpp serves them); an i-quant (IQ*) needs an importance matrix,
# computed by `llama-imatrix` on the variant's calibration source. F16 and BF16 are the converter's own output.
GGUF_SCHEMES = ("F16", "BF16", "Q8_0", "Q6_K", "Q5_K_M", "Q4_K_M", "Q4_0", "Q3_K_M", "Q2_K", "IQ4_XS", "IQ3_XXS",
                "IQ2_XXS", "IQ1_S")
# Quantization schemes and the methods each allows; the first is the default. Methods other than rtn, dynamic and
# llama-quantize need a calibration set. `none` served by llama.cpp is the checkpoint converted to GGUF as it is.
QUANTIZATION_METHODS = {
    "none": ("rtn",),
    "W8A16": ("rtn", "gptq"),
    "W4A16": ("rtn", "gptq", "awq"),
    "W8A8": ("smoothquant-gptq", "gptq"),
    "FP8_DYNAMIC": ("dynamic",),
    "F16": ("convert",),
    "BF16": ("convert",),
    **{scheme: ("imatrix",) if scheme.startswith("IQ") else ("llama-quantize", "imatrix")
       for scheme in GGUF_SCHEMES[2:]},
}
CALIBRATED_METHODS = ("gptq", "smoothquant-gptq", "awq", "imatrix")
# What an engine can run on this host is asked of it there: see `assets.matrix.host`.


@dataclass(frozen=True)
class QuantizationSpec:
    scheme: str = "none"
    method: str = "rtn"
    calibration: str | None = None        # a named source, see assets/models/calibration.py
    calibration_samples: int = 512
    calibration_max_seq_len: int = 2048

    def problem(self) -> str | None:
        """What is wrong with this scheme, method and calibration together, or None: the one rule the matrix
        checks when it loads and the quantizer checks before it starts."""
        if self.scheme not in QUANTIZATION_METHODS:
            return f"quantization scheme '{self.scheme}' unknown; known: {', '.join(QUANTIZATION_METHODS)}"
        methods = QUANTIZATION_METHODS[self.scheme]
        if self.method not in methods:
            return f"scheme {self.scheme} is made with {' or '.join(methods)}, not '{self.method}'"
        if self.method in CALIBRATED_METHODS and not self.calibration:
            return (f"method {self.method} needs a 'calibration' source, e.g. arith-train or "
                    "hf:HuggingFaceH4/ultrachat_200k@train_sft")
        if self.calibration and self.method not in CALIBRATED_METHODS:
            return f"method {self.method} takes no calibration data; drop 'calibration'"
        return None

    def identity(self) -> dict:
        """What makes two quantized checkpoints the same (calibration sizes only matter with a calibration)."""
        identity = asdict(self)
        if self.calibration is None:
            del identity["calibration_samples"], identity["calibration_max_seq_len"]
        return identity


@dataclass(frozen=True)
class EngineSpec:
    """An engine as the matrix gives it: its kind, the settings written for it (`options`, what a sample's identity
    covers) and, typed with every default filled in, `settings`, which is what the rest of the house reads."""

    kind: str
    options: dict[str, Any] = field(default_factory=dict)
    # The engine that serves the variant where this one cannot run its checkpoint on the host (`fallback:`).
    fallback: EngineSpec | None = None
    settings: EngineSettings = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.kind not in ENGINE_SETTINGS:
            raise EngineSettingsError(f"engine kind '{self.kind}' unknown; known: {', '.join(ENGINE_KINDS)}")
        object.__setattr__(self, "settings", ENGINE_SETTINGS[self.kind].parse(self.options, "the engine"))

    @property
    def concurrency(self) -> int:
        return self.settings.concurrency

    @property
    def startup_timeout_s(self) -> float:
        return self.settings.startup_timeout_s

    @property
    def on_cpu(self) -> bool:
        return self.settings.on_cpu


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

    def sample_identity(self) -> dict:
        """What of the protocol shapes one sample: all of it but how many samples are drawn (k, k_by_benchmark),
        so a change of k keeps the samples already drawn and only draws or stops counting the others."""
        identity = asdict(self)
        del identity["k"], identity["k_by_benchmark"]
        return identity


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
    max_failed_share: float = 0.05   # a level with more failed requests than this is not priced
    # Between two evaluation runs of a variant, what is flagged as a regression (a WARN check, not a failure):
    regression_throughput_drop: float = 0.15   # output tokens/s at the priced level down by more than this share
    regression_latency_rise: float = 0.30      # p99 TTFT or TPOT at the same level up by more than this share
    regression_latency_floor_ms: float = 50.0  # ... and by more than this many ms (a p99 of a few dozen requests
                                               # is their slowest one or two: smaller rises are noise)
    regression_cost_rise: float = 0.15         # $ per million output tokens up by more than this share
    # Before the engine starts, a busy host (assets/engine/host_load.py) is reported, and then: warn (start anyway:
    # its levels are flagged contended), wait (up to busy_host_wait_s for it to quieten, then refuse) or refuse.
    busy_host: str = "warn"
    busy_host_wait_s: float = 600.0


# When a variant's finished samples are drawn again rather than reused. "daily" is for API baselines on a fixed
# small subset: a provider can change what a model name serves at any time, and only samples asked tonight
# measure what it serves tonight. The samples of one day are keyed by that day (see assets.variants.config_hash).
RESAMPLE = ("never", "daily")
# What an engine step does about a host busy before its engine starts (ServingSpec.busy_host).
BUSY_HOST_POLICIES = ("warn", "wait", "refuse")


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
    resample: str = "never"         # "daily": samples are drawn afresh each UTC day (an API's drift), see RESAMPLE
    # Where the matrix's engine cannot serve the variant on this host (asked of the engine, assets.matrix.host):
    requested_engine: str | None = None   # the engine the matrix asked for, when its fallback serves instead
    engine_note: str | None = None        # why the fallback serves
    not_runnable: str | None = None       # why nothing can serve it here: it is reported as not run
    # The engine settings as yardsticks before typed settings merged them (see former_settings_hashes), where
    # they differ from `engine.options`.
    former_engine_options: dict | None = field(default=None, compare=False, repr=False)

    @property
    def settings_hash(self) -> str:
        """Identity of the matrix settings that shape one sample: model, quantization, the engine options that
        change what it replies, and the protocol but for k. How many samples are drawn and which items are
        chosen are not part of it: readers count the samples of the items the variant names now, up to its k.

        The weights themselves are identified by the snapshot's fingerprint; see `assets.variants.config_hash`.
        """
        return self._settings_digest(self.engine.options, self.protocol.sample_identity())

    @property
    def former_settings_hashes(self) -> tuple[str, ...]:
        """The settings hashes older yardsticks keyed this variant's samples with, so they are adopted rather than
        drawn again: the hash covered the whole protocol, k included, before samples were keyed without it; and
        engine settings of another kind than the variant's were merged in from the defaults before they were
        typed per kind (an API variant took vLLM's `max_model_len`)."""
        engine_options = [self.engine.options]
        if self.former_engine_options is not None:
            engine_options.append(self.former_engine_options)
        hashes = {self._settings_digest(options, protocol) for options in engine_options
                  for protocol in (self.protocol.sample_identity(), asdict(self.protocol))}
        return tuple(sorted(hashes - {self.settings_hash}))

    def _settings_digest(self, engine_options: dict, protocol: dict) -> str:
        identity = {
            "model": asdict(self.model),
            "quantization": self.quantization.identity(),
            "engine": {"kind": self.engine.kind,
                       "options": {k: v for k, v in engine_options.items() if k not in RUNTIME_ONLY_SETTINGS}},
            "protocol": protocol,
        }
        return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Matrix:
    path: Path
    variants: dict[str, Variant]
    benchmark_mirror: str | None
    # Per benchmark that takes options (LiveCodeBench: release, since, until), the same for every variant, so
    # that all of them answer the same items.
    benchmark_options: dict[str, dict] = field(default_factory=dict)
    # The common reference (`reference:`): the unquantized variant every other variant of its model and protocol is
    # also compared with, whatever its engine; None: the first such variant in matrix order (see reference_of).
    reference: str | None = None

    def __post_init__(self) -> None:
        problem = self._reference_problem()
        if problem:
            unquantized = ", ".join(self._references()) or "(none)"
            raise MatrixError(f"matrix file {self.path}: {problem}; name one of the unquantized variants "
                              f"({unquantized}), or drop 'reference': each model's first is then its reference")

    def _references(self) -> list[str]:
        """The variants that can be a reference: unquantized, on weights the matrix gives (not an endpoint's own)."""
        return [name for name, variant in self.variants.items()
                if variant.quantization.scheme == "none" and variant.engine.kind != "external"]

    def _reference_problem(self) -> str | None:
        if self.reference is None:
            return None
        if not isinstance(self.reference, str):
            return f"'reference' names one variant, got {self.reference!r}"
        if self.reference not in self.variants:
            return f"reference '{self.reference}' is not a variant of the matrix"
        chosen = self.variants[self.reference]
        if chosen.engine.kind == "external":
            return (f"reference '{self.reference}' is an external endpoint, which serves weights of its own: nothing "
                    "else runs its weights to be compared with it")
        if chosen.quantization.scheme != "none":
            return (f"reference '{self.reference}' is quantized ({chosen.quantization.scheme}); the reference is "
                    "the unquantized weights the others are measured against")
        return None

    def variant(self, name: str) -> Variant:
        if name not in self.variants:
            known = ", ".join(sorted(self.variants)) or "(none)"
            raise MatrixError(f"variant '{name}' not in {self.path}; known: {known}")
        return self.variants[name]

    def baseline_of(self, variant: Variant) -> Variant | None:
        """The variant quantization loss is measured against: the explicit `baseline`, else the variant with the
        same model, engine kind and protocol and no quantization; None for an unquantized variant."""
        if variant.baseline:
            return self.variant(variant.baseline)
        if variant.quantization.scheme == "none":
            return None
        for other in self.variants.values():
            if (other.quantization.scheme == "none" and other.model == variant.model
                    and other.engine.kind == variant.engine.kind and other.protocol == variant.protocol):
                return other
        return None

    def reference_of(self, variant: Variant) -> Variant | None:
        """The common reference a variant is compared with besides its twin: the matrix's `reference` where it has
        the variant's model and protocol, else the first unquantized variant in matrix order that has them, on
        whichever engine; None for an external endpoint (its weights are its own)."""
        if variant.engine.kind == "external":
            return None
        candidates = [self.reference] if self.reference else []
        for name in candidates + self._references():
            other = self.variants[name]
            if other.model == variant.model and other.protocol == variant.protocol:
                return other
        return None

    def baselines_of(self, variant: Variant) -> dict[str, Variant]:
        """What a variant's quantization loss is measured against, by relation: 'twin', its unquantized twin
        (`baseline_of`), and 'reference', the common reference (`reference_of`) where that is neither the twin nor
        the variant itself. An unquantized variant on another engine so has the reference alone: the engine's own
        effect on the same weights; the reference has none."""
        baselines = {}
        twin = self.baseline_of(variant)
        if twin is not None:
            baselines["twin"] = twin
        reference = self.reference_of(variant)
        if reference is not None and reference.name not in (variant.name, twin.name if twin else None):
            baselines["reference"] = reference
        return baselines

    def mirror_folder(self, override: str | None = None) -> str | None:
        """The offline benchmark mirror: `override` (YARDSTICK_BENCHMARK_MIRROR), else the matrix's
        `benchmark_mirror` relative to the matrix file, else None for the hub."""
        if override:
            return str(Path(override).expanduser().resolve())
        if self.benchmark_mirror:
            return str((self.path.parent / self.benchmark_mirror).resolve())
        return None


