"""llama.cpp's memory for a GGUF model, before the server starts: the weights, the KV cache, the compute buffers,
and how they spread over devices and hosts. Plain arithmetic and one read of a file's tensor table; memory.py
makes a plan of it.

- Weights: a GGUF file's own tensor bytes when the file exists (gguf-py reads the tensor table; nothing is
  loaded). Before it exists, config.json's parameters at the bits per weight of the GGML type `llama-quantize`
  gives each kind of tensor under the scheme: TENSOR_MIXES, the rules of llama.cpp's src/llama-quant.cpp
  (`llama_tensor_get_type_impl`), with GGML's block sizes (GGML_BLOCKS). Norms and MoE routers stay F32.
- KV cache: llama.cpp's default cache type is f16 for K and V, allocated for the whole context: the slots
  (--parallel) × the context per slot, padded to 256 tokens as src/llama-context.cpp pads n_ctx. For multi-head
  latent attention (GGUF's deepseek2: DeepSeek-V2/V3/R1) it caches only K, the compressed latent and the rotary
  key, kv_lora_rank + qk_rope_head_dim per layer (src/llama-kv-cache.cpp: `has_v = !is_mla`): the figure that
  Architecture.kv_cache_bytes_per_token gives for latent attention.
- Compute buffers: activations of one micro-batch and the attention mask (compute_buffer_bytes), checked against
  what llama-server logs; on a CPU also the server's own memory (server_host_bytes), measured.
- Placement: every layer on the GPUs (the launcher's default), whole layers with their KV cache per device in
  proportion to --tensor-split, the token embeddings in host memory, a compute buffer on every device.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from assets.matrix import LlamaCppSettings, Variant
from assets.models.model_config import ModelConfig, PlanError, variant_config

# ggml's tensor types as (weights per block, bytes per block): ggml/src/ggml.c's type_traits, which gguf-py repeats
# as GGML_QUANT_SIZES (the tests check that the two agree). Bits per weight = 8 × bytes ÷ weights: Q8_0 8.5, Q6_K
# 6.5625, Q5_K 5.5, Q4_K 4.5, IQ4_XS 4.25, IQ2_XXS 2.0625, IQ1_S 1.5625, as llama-quantize's help states them.
GGML_BLOCKS = {
    "F32": (1, 4), "F16": (1, 2), "BF16": (1, 2), "Q8_0": (32, 34), "Q6_K": (256, 210), "Q5_K": (256, 176),
    "Q4_K": (256, 144), "Q4_1": (32, 20), "Q4_0": (32, 18), "Q3_K": (256, 110), "Q2_K": (256, 84),
    "IQ4_XS": (256, 136), "IQ3_S": (256, 110), "IQ3_XXS": (256, 98), "IQ2_XXS": (256, 66), "IQ1_S": (256, 50),
}
KV_CACHE_DTYPE = "float16"           # llama.cpp's --cache-type-k and --cache-type-v default
DEFAULT_CONTEXT_PER_SLOT = 4096      # what the launcher gives each slot when max_model_len is unset
CONTEXT_PADDING = 256                # src/llama-context.cpp: GGML_PAD(n_ctx, 256), and again per sequence
UBATCH_TOKENS = 512                  # llama.cpp's --ubatch-size default: the tokens one forward pass takes
# The CUDA runtime and cuBLAS workspace of one process on one GPU, which nvidia-smi counts and llama.cpp's
# buffers do not: an estimate, to be checked when a GPU is lent.
CUDA_CONTEXT_BYTES = 512 * 2**20


def bits_per_weight(ggml_type: str) -> float:
    weights, size = GGML_BLOCKS[ggml_type]
    return 8 * size / weights


def _use_more_bits(layer: int, layers: int) -> bool:
    """llama-quant.cpp's `use_more_bits`: the first and last eighth of the layers and every third one between."""
    return layer < layers // 8 or layer >= 7 * layers // 8 or (layer - layers // 8) % 3 == 2


# How a mix picks the type of one ffn_down tensor: (its index among the ffn_down tensors, its layer, the layers)
# → a type, or None for the mix's base type.
DownRule = Callable[[int, int, int], str | None]


def _base(index: int, layer: int, layers: int) -> str | None:
    return None


def _q6_k_where_more_bits(index: int, layer: int, layers: int) -> str | None:
    return "Q6_K" if _use_more_bits(layer, layers) else None


def _q3_k_m_down(index: int, layer: int, layers: int) -> str | None:
    return "Q5_K" if layer < layers // 16 else "Q4_K"


def _q3_k(index: int, layer: int, layers: int) -> str | None:
    return "Q3_K"


def _q2_k_first_eighth(index: int, layer: int, layers: int) -> str | None:
    return "Q2_K" if index < layers // 8 else None   # counted over the ffn_down tensors, experts' each apart


@dataclass(frozen=True)
class TensorMix:
    """The GGML type `llama-quantize` gives each kind of tensor under one scheme (a "file type")."""

    base: str
    output: str = "Q6_K"              # output.weight, and the token embeddings where they are tied to it
    token_embd: str | None = None     # None: the base type
    attn_output: str | None = None
    ffn_down: DownRule = _base


# From llama_tensor_get_type_impl at the pinned llama.cpp (0c1e570), with an importance matrix (i-quants always
# have one). Left out, each under 1% of the weights of the models planned here: the attn_v/attn_kv_b and
# attn_q/attn_k overrides, the 8-expert (Mixtral) and Falcon cases, and the fallback to a larger type for rows
# that are not a multiple of 256. A file's own bytes are exact; these are for planning before it exists.
TENSOR_MIXES = {
    "none": TensorMix("BF16", output="BF16"),   # the checkpoint's own 16-bit type; F16 is the same size
    "F16": TensorMix("F16", output="F16"),
    "BF16": TensorMix("BF16", output="BF16"),
    "Q8_0": TensorMix("Q8_0", output="Q8_0"),
    "Q6_K": TensorMix("Q6_K"),
    "Q5_K_M": TensorMix("Q5_K", ffn_down=_q6_k_where_more_bits),
    "Q4_K_M": TensorMix("Q4_K", ffn_down=_q6_k_where_more_bits),
    "Q4_0": TensorMix("Q4_0"),
    "Q3_K_M": TensorMix("Q3_K", attn_output="Q4_K", ffn_down=_q3_k_m_down),
    "Q2_K": TensorMix("Q2_K", attn_output="Q3_K", ffn_down=_q3_k),
    "IQ4_XS": TensorMix("IQ4_XS"),
    "IQ3_XXS": TensorMix("IQ3_XXS", output="Q5_K", token_embd="IQ3_S", attn_output="IQ3_S"),
    "IQ2_XXS": TensorMix("IQ2_XXS", output="Q5_K", token_embd="Q2_K", ffn_down=_q2_k_first_eighth),
    "IQ1_S": TensorMix("IQ1_S", output="Q5_K", token_embd="Q2_K", attn_output="IQ2_XXS",
                       ffn_down=_q2_k_first_eighth),
}


class ArchitectureFacts(Protocol):
    """What the plan reads of memory.Architecture."""

    num_layers: int
    hidden_size: int
    intermediate_size: int
    vocab_size: int
    tie_word_embeddings: bool

    def parameters(self) -> int: ...
    def attention_parameters(self) -> int: ...
    def attention_output_parameters(self) -> int: ...
    def ffn_down_parameters(self, layer: int) -> list[int]: ...
    def router_parameters(self, layer: int) -> int: ...


@dataclass(frozen=True)
class GgufWeights:
    total_bytes: int      # every tensor's data
    host_bytes: int       # the token embeddings: llama.cpp keeps the input layer in host memory on a GPU too
    source: str           # "checkpoint" (the GGUF file's tensor table) or "config" (estimated)


def estimated_weights(architecture: ArchitectureFacts, scheme: str) -> GgufWeights:
    """The tensor bytes of a GGUF file of `architecture` under `scheme`, tensor by tensor kind (TENSOR_MIXES)."""
    if scheme not in TENSOR_MIXES:
        raise PlanError(f"no GGUF size rule for scheme '{scheme}'; known: {', '.join(TENSOR_MIXES)}")
    mix = TENSOR_MIXES[scheme]
    layers, hidden = architecture.num_layers, architecture.hidden_size
    embedding = architecture.vocab_size * hidden
    tied = architecture.tie_word_embeddings
    host = embedding * bits_per_weight(mix.output if tied else mix.token_embd or mix.base) / 8
    bits = 8 * host + (0 if tied else embedding * bits_per_weight(mix.output))
    attn_output = architecture.attention_output_parameters()
    down_index = 0
    for layer in range(layers):
        bits += (architecture.attention_parameters() - attn_output) * bits_per_weight(mix.base)
        bits += attn_output * bits_per_weight(mix.attn_output or mix.base)
        for down in architecture.ffn_down_parameters(layer):
            bits += down * bits_per_weight(mix.ffn_down(down_index, layer, layers) or mix.base)
            bits += 2 * down * bits_per_weight(mix.base)        # gate and up
            down_index += 1
        bits += (architecture.router_parameters(layer) + 2 * hidden) * bits_per_weight("F32")   # router, norms
    bits += hidden * bits_per_weight("F32")                     # the final norm
    return GgufWeights(total_bytes=math.ceil(bits / 8), host_bytes=math.ceil(host), source="config")


@dataclass(frozen=True)
class GgufFile:
    path: str
    file_bytes: int
    weights: GgufWeights
    parameters: int
    tensor_types: dict[str, int]   # how many tensors of each GGML type
    config: dict                   # config.json's facts, from the file's metadata


# config.json's names for the GGUF metadata keys a plan reads, under "<architecture>." (gguf-py's constants.Keys).
_CONFIG_KEYS = {
    "block_count": "num_hidden_layers", "embedding_length": "hidden_size", "feed_forward_length": "intermediate_size",
    "context_length": "max_position_embeddings", "attention.head_count": "num_attention_heads",
    "attention.head_count_kv": "num_key_value_heads", "attention.key_length": "head_dim",
    "attention.kv_lora_rank": "kv_lora_rank", "attention.q_lora_rank": "q_lora_rank",
    "rope.dimension_count": "qk_rope_head_dim", "attention.value_length_mla": "v_head_dim",
    "expert_count": "n_routed_experts", "expert_shared_count": "n_shared_experts",
    "expert_feed_forward_length": "moe_intermediate_size", "leading_dense_block_count": "first_k_dense_replace",
    "vocab_size": "vocab_size",
}


def read_gguf(path: str | Path) -> GgufFile:
    """A GGUF file's tensor bytes, parameters and config facts, from its header and tensor table."""
    from gguf import GGUFReader  # gguf-py, installed with the llama.cpp build that made the file

    path = Path(path)
    if not path.is_file():
        raise PlanError(f"{path} is not a GGUF file; quantize the variant first (quantized_model)")
    reader = GGUFReader(path)
    tensors = {tensor.name: tensor for tensor in reader.tensors}
    embedding = tensors.get("token_embd.weight")
    weights = GgufWeights(total_bytes=sum(int(t.n_bytes) for t in tensors.values()),
                          host_bytes=int(embedding.n_bytes) if embedding is not None else 0, source="checkpoint")
    return GgufFile(path=str(path), file_bytes=path.stat().st_size, weights=weights,
                    parameters=sum(int(t.n_elements) for t in tensors.values()),
                    tensor_types=dict(Counter(t.tensor_type.name for t in tensors.values())),
                    config=_metadata_config(reader, "output.weight" not in tensors))


def _metadata_config(reader, tied: bool) -> dict:
    def value(key: str):
        field = reader.fields.get(key)
        return field.contents() if field is not None else None

    architecture = value("general.architecture")
    config = {"model_type": architecture, "tie_word_embeddings": tied, "dtype": KV_CACHE_DTYPE}
    for key, name in _CONFIG_KEYS.items():
        found = value(f"{architecture}.{key}")
        if found is not None:
            config[name] = max(found) if isinstance(found, list) else found   # per-layer lists: the largest
    if "vocab_size" not in config:
        config["vocab_size"] = len(value("tokenizer.ggml.tokens") or [])
    if config.get("kv_lora_rank"):
        # deepseek2 stores MLA as one KV head whose key is the latent and the rotary key; the per-head sizes are
        # the *_mla keys.
        config["qk_nope_head_dim"] = value(f"{architecture}.attention.key_length_mla") - config["qk_rope_head_dim"]
    return config


def server_slots(parallel: int | None, concurrency: int) -> int:
    """llama-server's slots (--parallel): the setting, else as many as the client keeps in flight."""
    return parallel or max(1, concurrency)


def context_per_slot(max_model_len: int | None, slots: int) -> int:
    """KV-cache tokens per slot as llama.cpp allocates them: -c (max_model_len × slots) padded to 256, divided among
    the slots and each share padded to 256 again (src/llama-context.cpp; the KV cache is not unified, the
    server's default)."""
    total = _padded(max_model_len or DEFAULT_CONTEXT_PER_SLOT) * slots
    return _padded(_padded(total) // slots)


def _padded(tokens: int) -> int:
    return -(-tokens // CONTEXT_PADDING) * CONTEXT_PADDING


def compute_buffer_bytes(hidden_size: int, intermediate_size: int, context_per_slot: int, slots: int) -> int:
    """One device's compute buffer: llama.cpp sizes it for the worst forward pass, a micro-batch of --ubatch-size
    tokens (fewer when the whole context is shorter), whose peak holds about 4 × hidden + 3 × intermediate f32
    activations per token, and flash attention's f16 mask over one slot's context (llama.cpp's `auto` turns flash
    attention on where the backend has it; without it the attention scores would take far more). Checked against
    llama-server's "CPU compute buffer size" for qwen2 shapes at llama.cpp 0c1e570: 16.26 MiB logged for hidden 512,
    intermediate 1408 and 4096 tokens per slot against 16.25 here, 36.01 for 1024 / 4096 against 36.00, 8.51 for
    the tiny model (256 / 512) against 9.00, and 13.26 against 13.25 with four slots sharing the 4096 tokens. MoE
    layers' routed experts, latent attention and the CUDA backend's buffers are not checked yet."""
    tokens = min(UBATCH_TOKENS, context_per_slot * slots)
    activations = 4 * tokens * (4 * hidden_size + 3 * intermediate_size)
    return activations + 2 * tokens * context_per_slot


# llama-server's host memory beside the buffers it logs, from its resident memory (VmRSS) less those buffers on this
# project's CPU host at llama.cpp 0c1e570 (short prompts, which leave most of the compute buffer untouched): about
# 24 MiB for the process, and 336 bytes per vocabulary token for the tokenizer (38 MiB with GPT-2's 50,257 tokens,
# 71 MiB with Qwen2's 151,936), about 0.15 MiB per slot, and 52 bytes per context token for the KV cache's cell
# bookkeeping (src/llama-kv-cells.h: position, extension and shift, and a 256-sequence bitset per cell).
SERVER_PROCESS_BYTES = 24 * 2**20
SERVER_BYTES_PER_VOCABULARY_TOKEN = 336
SERVER_BYTES_PER_SLOT = 150 * 2**10
KV_CELL_BYTES = 52


def server_host_bytes(vocab_size: int, context_per_slot: int, slots: int) -> int:
    """llama-server's own host memory besides its weights, KV cache and compute buffers (see above)."""
    return (SERVER_PROCESS_BYTES + SERVER_BYTES_PER_VOCABULARY_TOKEN * vocab_size + SERVER_BYTES_PER_SLOT * slots
            + KV_CELL_BYTES * context_per_slot * slots)


def device_shares(tensor_split: Sequence[str], rpc: Sequence[str]) -> tuple[float, ...]:
    """Each device's share of the layers: --tensor-split as the matrix gives it, one share per device over the
    local GPUs and every RPC server's devices in llama.cpp's order (an rpc-server offers all the GPUs of its host),
    else one device per host at equal shares (without --tensor-split llama.cpp splits by free memory, which on
    identical GPUs is equal shares)."""
    if not tensor_split:
        return (1.0,) * (1 + len(rpc))
    try:
        shares = tuple(float(share) for share in tensor_split)
    except ValueError:
        raise PlanError(f"tensor_split {list(tensor_split)}: each share must be a number") from None
    if min(shares) < 0 or sum(shares) <= 0:
        raise PlanError(f"tensor_split {list(tensor_split)}: shares must be positive")
    if len(shares) < 1 + len(rpc):
        raise PlanError(f"tensor_split has {len(shares)} shares for {1 + len(rpc)} hosts (this one and "
                             f"{len(rpc)} RPC servers): give every device its share")
    return shares


def gguf_config(variant: Variant, checkpoint: str | Path | None) -> tuple[ModelConfig, GgufFile | None]:
    """What a llama.cpp variant is planned from: its GGUF file when `checkpoint` is one (config facts from the file's
    metadata), else its checkpoint's or model's config.json (model_config.py) and no file."""
    if str(checkpoint or "").endswith(".gguf"):
        file = read_gguf(checkpoint)
        return ModelConfig(file.config, f"GGUF metadata of {file.path}", file.weights.total_bytes), file
    return variant_config(variant, checkpoint), None


@dataclass(frozen=True)
class ServerMemory:
    """What llama-server allocates for a variant."""

    weights: GgufWeights
    parameters: int
    slots: int
    context_per_slot: int
    overhead_per_device: int     # a compute buffer, and the CUDA context on a GPU or the server's own memory on a CPU
    shares: tuple[float, ...]    # each device's share of the layers


def server_memory(architecture: ArchitectureFacts, settings: LlamaCppSettings, scheme: str,
                  file: GgufFile | None) -> ServerMemory:
    """The weights (the file's, else estimated under `scheme`), slots, context and per-device overhead of a server."""
    slots = server_slots(settings.parallel, settings.concurrency)
    context = context_per_slot(settings.max_model_len, slots)
    compute = compute_buffer_bytes(architecture.hidden_size, architecture.intermediate_size, context, slots)
    beside = (server_host_bytes(architecture.vocab_size, context, slots) if settings.on_cpu else CUDA_CONTEXT_BYTES)
    return ServerMemory(weights=file.weights if file else estimated_weights(architecture, scheme),
                        parameters=file.parameters if file else architecture.parameters(), slots=slots,
                        context_per_slot=context, overhead_per_device=compute + beside,
                        shares=device_shares(settings.tensor_split, settings.rpc))
