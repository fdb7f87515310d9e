"""llama.cpp's memory plans (assets/models/gguf_memory.py through memory.plan_variant): weights from a GGUF file's
tensor table or from config.json under llama-quantize's rules, the KV cache per slot × context, the compute buffer
against what llama-server logged, the split over GPUs and RPC hosts, and the 671B rows of matrix.gpu.yaml."""

import math

import numpy as np
import pytest

from assets.matrix import load_matrix
from assets.models import gguf_memory
from assets.models.gguf_memory import (
    GGML_BLOCKS,
    bits_per_weight,
    compute_buffer_bytes,
    context_per_slot,
    device_shares,
    estimated_weights,
)
from assets.models.memory import GIB, GPUS, Architecture, PlanError, plan_variant
from assets.models.model_config import known_config
from pipelines.cli import main

pytestmark = pytest.mark.unit

GPU_MATRIX = load_matrix("pipelines/matrix.gpu.yaml")
R1 = Architecture.from_config(known_config("deepseek-ai/DeepSeek-R1"))
LLAMA_8B = Architecture.from_config(known_config("deepseek-ai/DeepSeek-R1-Distill-Llama-8B"))   # Llama-3-8B's shape
R1_KV_PER_TOKEN = 61 * (512 + 64) * 2     # llama.cpp caches K only for latent attention: latent + rotary key, f16


@pytest.mark.parametrize(("ggml_type", "bits"), [
    ("Q8_0", 8.5), ("Q6_K", 6.5625), ("Q5_K", 5.5), ("Q4_K", 4.5), ("Q4_0", 4.5), ("IQ4_XS", 4.25),
    ("IQ3_XXS", 3.0625), ("Q2_K", 2.625), ("IQ2_XXS", 2.0625), ("IQ1_S", 1.5625), ("F16", 16), ("F32", 32),
])
def test_bits_per_weight_come_from_the_block_layout(ggml_type, bits):
    assert bits_per_weight(ggml_type) == bits


def test_block_layouts_are_gguf_pys():
    gguf = pytest.importorskip("gguf", reason="gguf-py comes with the llama.cpp build (make llama.cpp)")
    for name, (weights, size) in GGML_BLOCKS.items():
        assert gguf.GGML_QUANT_SIZES[gguf.GGMLQuantizationType[name]] == (weights, size), name


# llama-quantize's own sizes of Llama-3-8B (tools/quantize/quantize.cpp at llama.cpp 0c1e570, in GiB), which
# DeepSeek-R1-Distill-Llama-8B shares: the estimate applies llama-quant.cpp's rules per tensor kind.
LLAMA_3_8B_GIB = {"Q8_0": 7.96, "Q6_K": 6.14, "Q5_K_M": 5.33, "Q4_K_M": 4.58, "Q4_0": 4.34, "Q3_K_M": 3.74,
                  "Q2_K": 2.96}


@pytest.mark.parametrize(("scheme", "gib"), sorted(LLAMA_3_8B_GIB.items()))
def test_config_estimate_matches_llama_quantizes_published_sizes(scheme, gib):
    assert estimated_weights(LLAMA_8B, scheme).total_bytes / GIB == pytest.approx(gib, rel=0.015)


def test_q4_k_m_of_llama_8b_by_hand():
    # llama-quant.cpp's Q4_K_M: Q4_K throughout, but Q6_K for output.weight and for ffn_down in the layers
    # `use_more_bits` picks (the first and last eighth, every third between: 16 of 32); norms stay F32.
    more_bits = [layer for layer in range(32) if gguf_memory._use_more_bits(layer, 32)]
    assert more_bits == [0, 1, 2, 3, 6, 9, 12, 15, 18, 21, 24, 27, 28, 29, 30, 31]
    embedding, ffn_down = 128256 * 4096, 4096 * 14336
    bits = ((LLAMA_8B.linear_parameters() + embedding) * 4.5 + len(more_bits) * ffn_down * (6.5625 - 4.5)
            + embedding * 6.5625 + (2 * 32 + 1) * 4096 * 32)
    weights = estimated_weights(LLAMA_8B, "Q4_K_M")
    assert weights.total_bytes == math.ceil(bits / 8)
    assert weights.host_bytes == embedding * 4.5 / 8                # token_embd, kept in host memory by llama.cpp
    with pytest.raises(PlanError, match="no GGUF size rule for scheme 'W4A16'"):
        estimated_weights(R1, "W4A16")


def test_iq1_s_keeps_the_first_eighth_of_ffn_down_at_q2_k():
    # counted over ffn_down tensors, as llama.cpp's i_ffn_down counts them: R1's 61 // 8 = 7 first ones are
    # layers 0-2 (dense) and the routed and shared experts' of layers 3 and 4
    rule = gguf_memory.TENSOR_MIXES["IQ1_S"].ffn_down
    assert [rule(index, 0, 61) for index in (0, 6, 7)] == ["Q2_K", "Q2_K", None]
    assert R1.ffn_down_parameters(3) == [256 * 7168 * 2048, 7168 * 2048] and R1.ffn_down_parameters(2) == [7168 * 18432]


def test_671b_weights_where_the_community_files_are():
    # unsloth's DeepSeek-R1 GGUFs: Q4_K_M 404 GB; the 1.58-bit dynamic IQ1_S 131 GB (157 GB for its 1.73-bit
    # sibling), which keeps more of the attention at higher types than llama-quantize's own IQ1_S mix.
    sizes = {scheme: estimated_weights(R1, scheme).total_bytes / 1e9 for scheme in ("IQ1_S", "IQ2_XXS", "Q4_K_M",
                                                                                    "Q8_0", "BF16")}
    assert 131 <= sizes["IQ1_S"] <= 157
    assert sizes["Q4_K_M"] == pytest.approx(404, abs=4)
    assert sizes["Q8_0"] == pytest.approx(713, abs=1)      # 8.5 bits a weight over 671 B
    assert sizes["IQ1_S"] < sizes["IQ2_XXS"] < sizes["Q4_K_M"] < sizes["Q8_0"] < sizes["BF16"]


def write_gguf(path, layers=2, hidden=256, heads=4, kv_heads=2, intermediate=512, vocab=64) -> dict:
    """A qwen2-shaped GGUF with tensors of known types (Q8_0 linear layers, F16 embeddings, F32 norms) and the
    metadata keys convert_hf_to_gguf.py writes; returns the bytes and parameters each tensor kind should count."""
    gguf = pytest.importorskip("gguf", reason="gguf-py comes with the llama.cpp build (make llama.cpp)")
    writer = gguf.GGUFWriter(str(path), "qwen2")
    writer.add_block_count(layers)
    writer.add_context_length(4096)
    writer.add_embedding_length(hidden)
    writer.add_feed_forward_length(intermediate)
    writer.add_head_count(heads)
    writer.add_head_count_kv(kv_heads)
    writer.add_token_list([f"t{n}" for n in range(vocab)])
    q8 = gguf.GGMLQuantizationType.Q8_0
    head_dim = hidden // heads
    linear = {"attn_q": (hidden, hidden), "attn_k": (kv_heads * head_dim, hidden),
              "attn_v": (kv_heads * head_dim, hidden), "attn_output": (hidden, hidden),
              "ffn_gate": (intermediate, hidden), "ffn_up": (intermediate, hidden), "ffn_down": (hidden, intermediate)}
    for layer in range(layers):
        for name, (rows, columns) in linear.items():
            writer.add_tensor(f"blk.{layer}.{name}.weight", np.zeros((rows, columns // 32 * 34), np.uint8),
                              raw_dtype=q8)
        writer.add_tensor(f"blk.{layer}.attn_norm.weight", np.ones(hidden, np.float32))
    writer.add_tensor("token_embd.weight", np.zeros((vocab, hidden), np.float16))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    linear_weights = layers * sum(rows * columns for rows, columns in linear.values())
    return {"bytes": linear_weights // 32 * 34 + layers * hidden * 4 + vocab * hidden * 2,
            "embedding_bytes": vocab * hidden * 2, "parameters": linear_weights + layers * hidden + vocab * hidden}


def test_a_gguf_files_weights_are_its_tensor_bytes(tmp_path):
    expected = write_gguf(tmp_path / "model.gguf")
    file = gguf_memory.read_gguf(tmp_path / "model.gguf")
    assert file.weights.total_bytes == expected["bytes"] and file.weights.source == "checkpoint"
    assert file.weights.host_bytes == expected["embedding_bytes"] and file.parameters == expected["parameters"]
    assert file.tensor_types == {"Q8_0": 14, "F32": 2, "F16": 1}
    assert file.file_bytes > file.weights.total_bytes          # the header and metadata besides
    assert file.config["num_hidden_layers"] == 2 and file.config["num_key_value_heads"] == 2
    assert file.config["vocab_size"] == 64 and file.config["tie_word_embeddings"]     # no output.weight


def test_a_llamacpp_variant_is_planned_from_its_gguf_file(tmp_path):
    expected = write_gguf(tmp_path / "model.gguf")
    (tmp_path / "matrix.yaml").write_text(
        "variants:\n  tiny-q8_0-llamacpp-cpu:\n    model: {generate: tiny-r1-qwen2}\n    quantization: Q8_0\n"
        "    engine: {kind: llamacpp, parallel: 16, max_model_len: 4096}\n    hardware: cpu-2vcpu\n"
        "    benchmarks: [arith]\n")
    variant = load_matrix(tmp_path / "matrix.yaml").variant("tiny-q8_0-llamacpp-cpu")
    planned = plan_variant(variant, tmp_path / "model.gguf")
    plan = planned.plan
    assert planned.config_source == f"GGUF metadata of {tmp_path / 'model.gguf'}"
    assert plan.weight_bytes == expected["bytes"] and plan.weight_source == "checkpoint"
    # f16 K and V: 2 layers × 2 KV heads × head dim 64 × 2 × 2 bytes, for 16 slots × 4096 tokens
    assert plan.kv_bytes_per_token == 2 * 2 * 64 * 2 * 2 == 1024
    assert (plan.max_model_len, plan.concurrency) == (4096, 16)
    assert plan.kv_cache_bytes == 1024 * 4096 * 16
    # on the CPU the overhead is the compute buffer and the server's own memory: what RSS adds to weights and KV
    server = gguf_memory.server_host_bytes(64, 4096, 16)
    assert plan.overhead_per_gpu == compute_buffer_bytes(256, 512, 4096, 16) + server
    with pytest.raises(PlanError, match="is not a GGUF file"):
        plan_variant(variant, tmp_path / "missing.gguf")


@pytest.mark.parametrize(("max_model_len", "slots", "per_slot"), [
    (4096, 16, 4096),       # the tiny matrix's llama.cpp variants
    (34816, 8, 34816),      # the GPU matrix's: 32768 generated tokens and the prompt, a multiple of 256
    (1000, 3, 1024),        # -c 3000 padded to 3072, a third of it each
    (None, 4, 4096),        # the launcher's default context per slot
])
def test_context_per_slot_is_padded_as_llama_cpp_pads_it(max_model_len, slots, per_slot):
    assert context_per_slot(max_model_len, slots) == per_slot


# What llama-server logged as "CPU compute buffer size" (MiB) at llama.cpp 0c1e570 for qwen2 shapes:
# (hidden, intermediate, tokens per slot, slots, logged). The tiny model's shape is 256 / 512.
LOGGED_COMPUTE_BUFFERS = [
    (512, 1408, 4096, 1, 16.26), (512, 1408, 16384, 1, 28.26), (512, 1408, 1024, 4, 13.26),
    (1024, 4096, 4096, 1, 36.01), (1024, 4096, 4096, 4, 36.01),
    (256, 512, 4096, 1, 8.51), (256, 512, 256, 16, 4.76), (256, 512, 1024, 64, 5.51), (256, 512, 256, 1, 2.38),
]


@pytest.mark.parametrize(("hidden", "intermediate", "per_slot", "slots", "logged"), LOGGED_COMPUTE_BUFFERS)
def test_compute_buffer_is_near_what_llama_server_logged(hidden, intermediate, per_slot, slots, logged):
    assert compute_buffer_bytes(hidden, intermediate, per_slot, slots) / 2**20 == pytest.approx(logged, rel=0.11)


def test_tensor_split_and_rpc_hosts_give_each_device_its_share():
    assert device_shares([], []) == (1.0,)
    assert device_shares([], ["10.0.0.2:50052"]) == (1.0, 1.0)          # one device per host without a split
    assert device_shares(["3", "1"], []) == (3.0, 1.0)
    with pytest.raises(PlanError, match="2 shares for 3 hosts"):
        device_shares(["1", "1"], ["a:1", "b:1"])
    with pytest.raises(PlanError, match="must be a number"):
        device_shares(["half", "half"], [])
    uneven = plan_variant(GPU_MATRIX.variant("r1-671b-iq1_s-llamacpp-2xh100")).plan
    uneven = type(uneven)(**{**uneven.__dict__, "shares": (3.0, 1.0)})
    on_gpus = uneven.weight_bytes - uneven.host_weight_bytes
    fit = uneven.fit(GPUS["H100-80GB"], 2)
    assert fit.weights_per_gpu == pytest.approx(on_gpus * 3 / 4, abs=1)
    assert fit.kv_cache_per_gpu == pytest.approx(uneven.kv_cache_bytes * 3 / 4, abs=1)
    assert uneven.fit(GPUS["H100-80GB"], 4).weights_per_gpu == math.ceil(on_gpus / 4)   # other counts: equal shares


@pytest.mark.parametrize(("name", "devices", "nodes", "slots"), [
    ("r1-671b-iq1_s-llamacpp-2xh100", 2, 1, 8),
    ("r1-671b-q4_k_m-llamacpp-8xh100", 8, 1, 16),
    ("r1-671b-q4_k_m-llamacpp-2x4xh100", 8, 2, 8),
])
def test_the_671b_rows_of_the_gpu_matrix_are_planned_per_gpu(name, devices, nodes, slots):
    variant = GPU_MATRIX.variant(name)
    planned = plan_variant(variant)
    plan = planned.plan
    assert variant.engine.settings.node_count == nodes and planned.tensor_parallel == devices
    assert plan.weight_source == "config"
    assert plan.weight_bytes == estimated_weights(R1, variant.quantization.scheme).total_bytes
    assert plan.kv_bytes_per_token == R1_KV_PER_TOKEN and plan.kv_cache_bytes == R1_KV_PER_TOKEN * 34816 * slots
    fit = plan.fit(GPUS["H100-80GB"], devices)
    assert fit.weights_per_gpu == math.ceil((plan.weight_bytes - plan.host_weight_bytes) / devices)
    assert fit.kv_cache_per_gpu == math.ceil(plan.kv_cache_bytes / devices)
    assert fit.fits and fit.usable_per_gpu == GPUS["H100-80GB"].memory_bytes     # no utilization cap
    assert not plan.fit(GPUS["H100-80GB"], devices // 2).fits                   # half the GPUs would not do


def test_plan_command_answers_a_671b_row_across_two_hosts(capsys):
    assert main(["plan", "r1-671b-q4_k_m-llamacpp-2x4xh100", "--matrix", "pipelines/matrix.gpu.yaml",
                 "--gpu", "H100-80GB"]) == 0
    out = capsys.readouterr().out
    assert "quantization Q4_K_M" in out and "68.62 KiB per token" in out and "34816 tokens per slot × 8 slots" in out
    assert "8 devices on 2 hosts" in out and "| H100-80GB |         8 |" in out
