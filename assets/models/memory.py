"""Memory planning before anything starts: weight bytes, KV-cache bytes per token, and whether a variant fits
a GPU at a tensor-parallel size.

- Weights: the checkpoint's own bytes when it is on disk, else counted from config.json (parameters per
  architecture) at the bytes per parameter of the quantization scheme.
- KV cache per token: layers × KV heads × head dim × 2 (K and V) × dtype bytes for multi-head and grouped
  attention; for multi-head latent attention (DeepSeek-V2/V3/R1) the cache holds one compressed latent and
  the rotary key per layer, layers × (kv_lora_rank + qk_rope_head_dim) × dtype bytes, and every
  tensor-parallel rank holds all of it.
- Per GPU: weights ÷ (TP × PP) + KV for max_model_len × concurrent sequences ÷ (TP × PP) (÷ PP only for
  latent attention) + a fixed overhead for the CUDA context, activations and graphs, against
  memory × gpu_memory_utilization.
- llama.cpp serving GGUF files: gguf_memory.py's weights, KV cache and buffers, split by layers (LayerSplitPlan).

Everything here is arithmetic on plain inputs; where a model's config.json comes from is model_config.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from assets.matrix import Variant, VllmSettings
from assets.models import gguf_memory
from assets.models.model_config import ModelConfig, PlanError, variant_config

GIB = 1024**3
# CUDA context, activation peak and CUDA graphs per GPU: an estimate, checked against measured memory when a
# GPU is lent (see the notes of the GPU issue); vLLM profiles the real figure at start-up.
DEFAULT_OVERHEAD_BYTES = 2 * GIB
TENSOR_PARALLEL_SIZES = (1, 2, 4, 8)


@dataclass(frozen=True)
class Gpu:
    name: str
    memory_bytes: int      # total memory as the driver reports it (nvidia-smi, MiB × 2^20)


# Total memory as nvidia-smi reports it for each card; marketing "80 GB" is 80 GiB on A100, a little less on H100.
GPUS = {gpu.name: gpu for gpu in (
    Gpu("V100-32GB", 32768 * 2**20),
    Gpu("A100-40GB", 40960 * 2**20),
    Gpu("A100-80GB", 81920 * 2**20),
    Gpu("H100-80GB", 81559 * 2**20),
    Gpu("H200-141GB", 143771 * 2**20),
    Gpu("RTX3090-24GB", 24576 * 2**20),
    Gpu("RTX4090-24GB", 24564 * 2**20),
)}


def gpu_named(label: str | None) -> Gpu | None:
    """The planning GPU a price catalog's `gpu` column names ("H100", "H200 141GB"), or None (CPU, unknown)."""
    label = str(label or "").replace(" ", "").replace("-", "").upper()
    for name, gpu in GPUS.items():
        if label and name.replace("-", "").upper().startswith(label):
            return gpu
    return None


DTYPE_BYTES = {"float32": 4, "float16": 2, "bfloat16": 2, "fp8": 1, "float8_e4m3fn": 1, "int8": 1}
# Bytes per parameter of the quantized linear layers (scales included, group size 128 for 4-bit); embeddings,
# norms and lm_head stay in the model's dtype.
SCHEME_LINEAR_BYTES = {
    "none": None,                       # the model's dtype
    "W8A16": 1 + 2 / 4096,              # int8 weights, one bf16 scale per output channel (≈ 1/hidden)
    "W4A16": 0.5 + 2 / 128,             # packed int4, a bf16 scale per group of 128
    "W8A8": 1 + 2 / 4096,
    "FP8_DYNAMIC": 1 + 2 / 4096,
}


@dataclass(frozen=True)
class Architecture:
    """What a memory plan needs from config.json."""

    model_type: str
    num_layers: int
    hidden_size: int
    num_attention_heads: int
    num_kv_heads: int
    head_dim: int
    intermediate_size: int
    vocab_size: int
    tie_word_embeddings: bool
    dtype: str
    max_position_embeddings: int | None
    qkv_bias: bool = False
    # multi-head latent attention (DeepSeek-V2/V3/R1)
    kv_lora_rank: int | None = None
    q_lora_rank: int | None = None
    qk_nope_head_dim: int | None = None
    qk_rope_head_dim: int | None = None
    v_head_dim: int | None = None
    # mixture of experts
    n_routed_experts: int | None = None
    n_shared_experts: int = 0
    moe_intermediate_size: int | None = None
    first_k_dense_replace: int = 0
    checkpoint_dtype: str | None = None   # "fp8" when the released weights are already FP8 (DeepSeek-V3/R1)

    @classmethod
    def from_config(cls, config: dict) -> Architecture:
        text = config.get("text_config", config)
        try:
            heads = int(text["num_attention_heads"])
            hidden = int(text["hidden_size"])
            quantization = text.get("quantization_config") or {}
            return cls(
                model_type=str(text.get("model_type")),
                num_layers=int(text["num_hidden_layers"]),
                hidden_size=hidden,
                num_attention_heads=heads,
                num_kv_heads=int(text.get("num_key_value_heads") or heads),
                head_dim=int(text.get("head_dim") or hidden // heads),
                intermediate_size=int(text["intermediate_size"]),
                vocab_size=int(text["vocab_size"]),
                tie_word_embeddings=bool(text.get("tie_word_embeddings", False)),
                dtype=str(text.get("dtype") or text.get("torch_dtype") or "bfloat16"),
                max_position_embeddings=text.get("max_position_embeddings"),
                qkv_bias=bool(text.get("attention_bias", text.get("model_type") == "qwen2")),
                kv_lora_rank=text.get("kv_lora_rank"),
                q_lora_rank=text.get("q_lora_rank"),
                qk_nope_head_dim=text.get("qk_nope_head_dim"),
                qk_rope_head_dim=text.get("qk_rope_head_dim"),
                v_head_dim=text.get("v_head_dim"),
                n_routed_experts=text.get("n_routed_experts"),
                n_shared_experts=int(text.get("n_shared_experts") or 0),
                moe_intermediate_size=text.get("moe_intermediate_size"),
                first_k_dense_replace=int(text.get("first_k_dense_replace") or 0),
                checkpoint_dtype="fp8" if quantization.get("quant_method") == "fp8" else None,
            )
        except KeyError as missing:
            raise PlanError(f"config.json lacks {missing}; cannot plan memory for this architecture") from missing

    @property
    def latent_attention(self) -> bool:
        return self.kv_lora_rank is not None

    def kv_cache_bytes_per_token(self, kv_dtype: str | None = None) -> int:
        """Bytes of KV cache one token occupies across all layers (the whole model, not one GPU)."""
        size = _dtype_bytes(kv_dtype or self.dtype)
        if self.latent_attention:
            return self.num_layers * (self.kv_lora_rank + self.qk_rope_head_dim) * size
        return self.num_layers * self.num_kv_heads * self.head_dim * 2 * size

    def attention_parameters(self) -> int:
        """One layer's attention, its output projection included."""
        h = self.hidden_size
        if self.latent_attention:
            heads, rope, nope, v = (self.num_attention_heads, self.qk_rope_head_dim, self.qk_nope_head_dim,
                                    self.v_head_dim)
            if self.q_lora_rank:
                query = h * self.q_lora_rank + self.q_lora_rank + self.q_lora_rank * heads * (nope + rope)
            else:
                query = h * heads * (nope + rope)
            key_value = (h * (self.kv_lora_rank + rope) + self.kv_lora_rank
                         + self.kv_lora_rank * heads * (nope + v))
            return query + key_value + self.attention_output_parameters()
        q = self.num_attention_heads * self.head_dim
        kv = self.num_kv_heads * self.head_dim
        bias = q + 2 * kv if self.qkv_bias else 0
        return h * q + 2 * h * kv + bias + self.attention_output_parameters()

    def attention_output_parameters(self) -> int:
        value_dim = self.v_head_dim if self.latent_attention else self.head_dim
        return self.num_attention_heads * value_dim * self.hidden_size

    def ffn_down_parameters(self, layer: int) -> list[int]:
        """A layer's down projections, one per tensor (dense; or routed, shared experts); gate and up are twice that."""
        if not (self.n_routed_experts and layer >= self.first_k_dense_replace):
            return [self.hidden_size * self.intermediate_size]
        expert = self.hidden_size * self.moe_intermediate_size
        return [self.n_routed_experts * expert] + ([self.n_shared_experts * expert] if self.n_shared_experts else [])

    def router_parameters(self, layer: int) -> int:
        """A MoE layer's router: a weight row and a score-correction bias per routed expert."""
        moe = self.n_routed_experts and layer >= self.first_k_dense_replace
        return self.n_routed_experts * (self.hidden_size + 1) if moe else 0

    def linear_parameters(self) -> int:
        """Parameters in the decoder's linear layers: what weight quantization compresses."""
        return sum(self.attention_parameters() + 3 * sum(self.ffn_down_parameters(i)) + self.router_parameters(i)
                   for i in range(self.num_layers))

    def other_parameters(self) -> int:
        """Embeddings, lm_head and norms: kept in the model's dtype by the quantization schemes here."""
        embeddings = self.vocab_size * self.hidden_size * (1 if self.tie_word_embeddings else 2)
        return embeddings + (2 * self.num_layers + 1) * self.hidden_size

    def parameters(self) -> int:
        return self.linear_parameters() + self.other_parameters()

    def weight_bytes(self, scheme: str = "none") -> int:
        """Estimated bytes of the weights under `scheme` (config-only; the checkpoint's size wins when known)."""
        if scheme not in SCHEME_LINEAR_BYTES:
            raise PlanError(f"no weight-size rule for quantization scheme '{scheme}'; known: "
                            f"{', '.join(SCHEME_LINEAR_BYTES)}")
        dense = _dtype_bytes(self.dtype)
        linear = SCHEME_LINEAR_BYTES[scheme]
        if linear is None:
            # DeepSeek-V3/R1 ship FP8 linear weights with one fp32 scale per 128×128 block.
            linear = 1 + 4 / (128 * 128) if self.checkpoint_dtype == "fp8" else dense
        return round(self.linear_parameters() * linear + self.other_parameters() * dense)


@dataclass(frozen=True)
class Fit:
    gpu: str
    tensor_parallel: int
    pipeline_parallel: int
    weights_per_gpu: int
    kv_cache_per_gpu: int
    overhead_per_gpu: int
    usable_per_gpu: int

    @property
    def needed_per_gpu(self) -> int:
        return self.weights_per_gpu + self.kv_cache_per_gpu + self.overhead_per_gpu

    @property
    def fits(self) -> bool:
        return self.needed_per_gpu <= self.usable_per_gpu


@dataclass(frozen=True)
class MemoryPlan:
    weight_bytes: int
    weight_source: str           # "checkpoint" (bytes on disk) or "config" (counted)
    parameters: int
    kv_bytes_per_token: int
    max_model_len: int
    concurrency: int
    gpu_memory_utilization: float
    latent_attention: bool
    overhead_per_gpu: int = DEFAULT_OVERHEAD_BYTES
    kv_heads: int = 1_000_000      # KV heads: tensor parallelism beyond them replicates the cache
    host_weight_bytes: int = 0     # weights kept in host memory, on no GPU

    @property
    def kv_cache_bytes(self) -> int:
        """KV cache for `concurrency` sequences at full `max_model_len`: the worst case the engine admits."""
        return self.kv_bytes_per_token * self.max_model_len * self.concurrency

    def fit(self, gpu: Gpu, tensor_parallel: int, pipeline_parallel: int = 1) -> Fit:
        shards = self._weight_shards(tensor_parallel, pipeline_parallel)
        kv_shards = self._kv_shards(tensor_parallel, pipeline_parallel)
        return Fit(gpu=gpu.name, tensor_parallel=tensor_parallel, pipeline_parallel=pipeline_parallel,
                   weights_per_gpu=int(-(-(self.weight_bytes - self.host_weight_bytes) // shards)),
                   kv_cache_per_gpu=int(-(-self.kv_cache_bytes // kv_shards)),
                   overhead_per_gpu=self.overhead_per_gpu,
                   usable_per_gpu=int(gpu.memory_bytes * self.gpu_memory_utilization))

    def full_length_sequences(self, fit: Fit) -> int:
        """How many sequences of max_model_len tokens the memory left after weights and overhead can hold
        (vLLM logs the same figure as its maximum concurrency at start-up)."""
        free = fit.usable_per_gpu - fit.weights_per_gpu - fit.overhead_per_gpu
        shards = self._kv_shards(fit.tensor_parallel, fit.pipeline_parallel)
        return max(0, int(free * shards // (self.kv_bytes_per_token * self.max_model_len)))

    def _weight_shards(self, tensor_parallel: int, pipeline_parallel: int) -> float:
        return tensor_parallel * pipeline_parallel

    def _kv_shards(self, tensor_parallel: int, pipeline_parallel: int) -> int:
        """Into how many parts the KV cache splits: a latent cache is not split across heads (each
        tensor-parallel rank keeps all of it); grouped KV heads split across at most as many ranks as there
        are heads (beyond that vLLM replicates them)."""
        return pipeline_parallel * (1 if self.latent_attention else min(tensor_parallel, self.kv_heads))

    def smallest_fit(self, gpu: Gpu, pipeline_parallel: int = 1, heads: int | None = None,
                     sequences: int | None = None) -> Fit | None:
        """The smallest tensor-parallel size (1, 2, 4, 8; dividing the attention heads) at which `sequences`
        full-length sequences fit (default: all `concurrency` of them), or None."""
        wanted = self.concurrency if sequences is None else sequences
        for size in TENSOR_PARALLEL_SIZES:
            if heads and heads % size:
                continue
            fit = self.fit(gpu, size, pipeline_parallel)
            if self.full_length_sequences(fit) >= wanted:
                return fit
        return None


@dataclass(frozen=True)
class LayerSplitPlan(MemoryPlan):
    """llama.cpp's placement (gguf_memory.py): whole layers with their KV cache on each device by its share of
    --tensor-split (the largest binds; a device count other than the variant's, `tensor_parallel` here, at equal
    shares), token embeddings in host memory, no utilization cap; max_model_len is per slot, concurrency the slots."""

    shares: tuple[float, ...] = (1.0,)

    def _weight_shards(self, tensor_parallel: int, pipeline_parallel: int) -> float:
        shares = self.shares if tensor_parallel == len(self.shares) else (1.0,) * tensor_parallel
        return sum(shares) / max(shares)

    _kv_shards = _weight_shards     # a layer's KV cache lives with the layer


def plan_memory(architecture: Architecture, max_model_len: int, concurrency: int, scheme: str = "none",
                gpu_memory_utilization: float = 0.9, checkpoint_bytes: int | None = None,
                kv_cache_dtype: str | None = None, overhead_per_gpu: int = DEFAULT_OVERHEAD_BYTES) -> MemoryPlan:
    if max_model_len < 1 or concurrency < 1:
        raise PlanError(f"max_model_len and concurrency must be positive, got {max_model_len} and {concurrency}")
    if not 0 < gpu_memory_utilization <= 1:
        raise PlanError(f"gpu_memory_utilization is a share in (0, 1], got {gpu_memory_utilization}")
    return MemoryPlan(
        weight_bytes=checkpoint_bytes if checkpoint_bytes else architecture.weight_bytes(scheme),
        weight_source="checkpoint" if checkpoint_bytes else "config",
        parameters=architecture.parameters(),
        kv_bytes_per_token=architecture.kv_cache_bytes_per_token(kv_cache_dtype),
        max_model_len=max_model_len, concurrency=concurrency, gpu_memory_utilization=gpu_memory_utilization,
        latent_attention=architecture.latent_attention, overhead_per_gpu=overhead_per_gpu,
        kv_heads=architecture.num_kv_heads,
    )


def _dtype_bytes(dtype: str) -> int:
    name = str(dtype).replace("torch.", "")
    if name not in DTYPE_BYTES:
        raise PlanError(f"unknown dtype '{dtype}'; known: {', '.join(DTYPE_BYTES)}")
    return DTYPE_BYTES[name]


@dataclass(frozen=True)
class VariantPlan:
    variant: str
    config_source: str      # where config.json came from
    plan: MemoryPlan
    tensor_parallel: int
    pipeline_parallel: int
    heads: int

    def rows(self, gpus: list[Gpu]) -> list[dict]:
        """One row per GPU at the variant's own parallelism: what one GPU needs with every sequence at full
        length, whether that fits, how many full-length sequences do fit, and the smallest tensor-parallel
        sizes that hold all of them (`smallest_tp`) or just one, the least vLLM starts with (`tp_to_start`)."""
        rows = []
        for gpu in gpus:
            own = self.plan.fit(gpu, self.tensor_parallel, self.pipeline_parallel)
            every = self.plan.smallest_fit(gpu, self.pipeline_parallel, self.heads)
            one = self.plan.smallest_fit(gpu, self.pipeline_parallel, self.heads, sequences=1)
            rows.append({
                "gpu": gpu.name, "tp": self.tensor_parallel, "pp": self.pipeline_parallel,
                "weights_gib": own.weights_per_gpu / GIB, "kv_cache_gib": own.kv_cache_per_gpu / GIB,
                "needed_gib_per_gpu": own.needed_per_gpu / GIB, "usable_gib_per_gpu": own.usable_per_gpu / GIB,
                "fits": own.fits, "full_length_sequences": self.plan.full_length_sequences(own),
                "smallest_tp": every.tensor_parallel if every else None,
                "tp_to_start": one.tensor_parallel if one else None,
            })
        return rows


def plan_variant(variant: Variant, checkpoint: str | Path | None = None) -> VariantPlan:
    """The memory plan of a matrix variant, from its checkpoint on disk when there is one, else from its
    config.json (the catalog of well-known models, or the hub at the pinned revision)."""
    if variant.engine.kind == "external":
        raise PlanError(f"variant '{variant.name}' is an external endpoint; its memory is not ours to plan")
    if variant.engine.kind == "llamacpp":
        return plan_llamacpp(variant, checkpoint)
    return plan_from_config(variant, variant_config(variant, checkpoint))


def plan_llamacpp(variant: Variant, checkpoint: str | Path | None = None) -> VariantPlan:
    """llama.cpp serving a GGUF file: its tensors when `checkpoint` is one, else estimated (gguf_memory.py)."""
    model, file = gguf_memory.gguf_config(variant, checkpoint)
    architecture = Architecture.from_config(model.config)
    server = gguf_memory.server_memory(architecture, variant.engine.settings, variant.quantization.scheme, file)
    plan = LayerSplitPlan(
        weight_bytes=server.weights.total_bytes, weight_source=server.weights.source, parameters=server.parameters,
        kv_bytes_per_token=architecture.kv_cache_bytes_per_token(gguf_memory.KV_CACHE_DTYPE),
        max_model_len=server.context_per_slot, concurrency=server.slots, gpu_memory_utilization=1.0,
        latent_attention=architecture.latent_attention, overhead_per_gpu=server.overhead_per_device,
        kv_heads=architecture.num_kv_heads, host_weight_bytes=server.weights.host_bytes, shares=server.shares)
    return VariantPlan(variant.name, model.source, plan, len(server.shares), 1, 0)


def plan_from_config(variant: Variant, model: ModelConfig) -> VariantPlan:
    """A variant's engine settings (context length, sequences, parallelism, KV-cache dtype) applied to the
    architecture its config.json describes; the checkpoint's own weight bytes win when known."""
    settings = variant.engine.settings
    # vLLM's knobs; an engine without them (transformers) is planned as vLLM's defaults would have it.
    defaults = VllmSettings()
    architecture = Architecture.from_config(model.config)
    max_model_len = int(getattr(settings, "max_model_len", None) or architecture.max_position_embeddings or 0)
    concurrency = int(getattr(settings, "max_num_seqs", None)
                      or max([settings.concurrency, *variant.serving.concurrency]))
    plan = plan_memory(architecture, max_model_len, concurrency, variant.quantization.scheme,
                       gpu_memory_utilization=getattr(settings, "gpu_memory_utilization",
                                                      defaults.gpu_memory_utilization),
                       checkpoint_bytes=model.checkpoint_bytes,
                       kv_cache_dtype=_kv_dtype(getattr(settings, "kv_cache_dtype", None)))
    return VariantPlan(variant.name, model.source, plan, getattr(settings, "tensor_parallel_size", 1),
                       getattr(settings, "pipeline_parallel_size", 1), architecture.num_attention_heads)


def _kv_dtype(setting: str | None) -> str | None:
    """vLLM's --kv-cache-dtype: auto (the model's dtype) or an fp8 variant."""
    if not setting or setting == "auto":
        return None
    return "fp8" if str(setting).startswith("fp8") else str(setting)
