"""Memory plans against hand calculations for real configurations, and the `yardstick plan` command."""

import json

import pytest

from assets.matrix import load_matrix
from assets.models.memory import GIB, GPUS, Architecture, PlanError, plan_memory, plan_variant
from assets.models.model_config import known_config
from pipelines.cli import main

pytestmark = pytest.mark.unit

QWEN_32B = Architecture.from_config(known_config("deepseek-ai/DeepSeek-R1-Distill-Qwen-32B"))
R1 = Architecture.from_config(known_config("deepseek-ai/DeepSeek-R1"))


def test_qwen_32b_kv_cache_and_weights_by_hand():
    # 64 layers × 8 KV heads × head dim 128 × 2 (K and V) × 2 bytes = 262,144 bytes = 256 KiB per token
    assert QWEN_32B.kv_cache_bytes_per_token() == 64 * 8 * 128 * 2 * 2 == 256 * 1024
    # embeddings and lm_head 2 × 152064 × 5120; per layer q/o 5120² each, k/v 5120 × 1024 each, q/k/v biases
    # 5120 + 2 × 1024, MLP 3 × 5120 × 27648, two norms 2 × 5120; 64 layers and a final norm
    per_layer = 2 * 5120 * 5120 + 2 * 5120 * 1024 + (5120 + 2 * 1024) + 3 * 5120 * 27648 + 2 * 5120
    assert QWEN_32B.parameters() == 2 * 152064 * 5120 + 64 * per_layer + 5120 == 32_763_876_352
    assert QWEN_32B.weight_bytes() == 2 * 32_763_876_352       # ~65.5 GB of bf16
    assert QWEN_32B.weight_bytes() / 1e9 == pytest.approx(65.5, abs=0.05)
    # an fp8 KV cache halves it
    assert QWEN_32B.kv_cache_bytes_per_token("fp8") == 128 * 1024


def test_deepseek_r1_latent_attention_by_hand():
    # MLA caches the 512-wide latent and the 64-wide rotary key per layer: 61 × 576 × 2 bytes
    assert R1.latent_attention
    assert R1.kv_cache_bytes_per_token() == 61 * (512 + 64) * 2 == 70_272
    # ... where grouped attention with its 128 heads would need 61 × 128 × (128 + 64 + 128) × 2: 71× more
    assert 61 * 128 * (192 + 128) * 2 / R1.kv_cache_bytes_per_token() == pytest.approx(71.1, abs=0.1)
    # 671 B parameters: 3 dense layers, 58 MoE layers of 256 routed + 1 shared expert (the released
    # checkpoint's extra multi-token-prediction layer is not served and not counted)
    assert R1.parameters() / 1e9 == pytest.approx(671.0, abs=0.1)
    # FP8 linear weights with an fp32 scale per 128×128 block, bf16 embeddings and norms
    assert R1.weight_bytes() / 1e9 == pytest.approx(673.0, abs=0.1)


def test_latent_cache_is_held_whole_by_every_tensor_parallel_rank():
    plan = plan_memory(R1, max_model_len=32768, concurrency=4)
    h200 = GPUS["H200-141GB"]
    assert plan.fit(h200, 8).kv_cache_per_gpu == plan.kv_cache_bytes == 70_272 * 32768 * 4
    assert plan.fit(h200, 8).weights_per_gpu == -(-R1.weight_bytes() // 8)
    # 673 GB over 8 H200s is 78.4 GiB each, under 0.9 × 140.4 GiB: R1 fits one 8×H200 node
    assert plan.fit(h200, 8).fits and not plan.fit(GPUS["H100-80GB"], 8).fits
    grouped = plan_memory(QWEN_32B, max_model_len=32768, concurrency=4)
    assert grouped.fit(h200, 4).kv_cache_per_gpu == grouped.kv_cache_bytes // 4


def test_fit_and_smallest_tensor_parallel_size_by_hand():
    plan = plan_memory(QWEN_32B, max_model_len=32768, concurrency=2)
    h100 = GPUS["H100-80GB"]
    one = plan.fit(h100, 1)
    # 61.03 GiB of weights + 2 × 8 GiB of KV + 2 GiB overhead = 79.03 GiB > 0.9 × 79.65 GiB = 71.68 GiB
    assert one.needed_per_gpu == QWEN_32B.weight_bytes() + 2 * 8 * GIB + 2 * GIB
    assert one.usable_per_gpu == int(81559 * 2**20 * 0.9) and not one.fits
    assert plan.full_length_sequences(one) == 1          # 71.68 - 61.03 - 2 = 8.65 GiB: one 8 GiB sequence
    assert plan.smallest_fit(h100, heads=40).tensor_parallel == 2
    assert plan.smallest_fit(h100, heads=40, sequences=1).tensor_parallel == 1
    # 70B: 141 GB of bf16 needs two H200s; 4-bit weights fit one A100 80GB
    llama = Architecture.from_config(known_config("deepseek-ai/DeepSeek-R1-Distill-Llama-70B"))
    assert plan_memory(llama, 8192, 1).smallest_fit(GPUS["H200-141GB"], heads=64).tensor_parallel == 2
    assert plan_memory(llama, 8192, 1, scheme="W4A16").smallest_fit(GPUS["A100-80GB"], heads=64).tensor_parallel == 1


def test_plan_of_a_matrix_variant_uses_its_engine_settings():
    variant = load_matrix("pipelines/matrix.gpu.yaml").variant("r1-qwen-32b-bf16-2xh100")
    planned = plan_variant(variant)
    assert planned.tensor_parallel == 2 and planned.plan.max_model_len == 34816
    assert planned.plan.kv_bytes_per_token == 256 * 1024 and planned.plan.weight_source == "config"
    with pytest.raises(PlanError, match="unknown dtype"):
        Architecture.from_config({**known_config("deepseek-ai/DeepSeek-R1-Distill-Qwen-7B"),
                                  "torch_dtype": "float6"}).weight_bytes()


def test_plan_command_prints_the_table_and_refuses_unknown_gpus(capsys):
    assert main(["plan", "r1-qwen-32b-bf16-2xh100", "--matrix", "pipelines/matrix.gpu.yaml",
                 "--gpu", "H100-80GB"]) == 0
    out = capsys.readouterr().out
    assert "256.00 KiB per token" in out and "| H100-80GB" in out
    assert main(["plan", "r1-qwen-32b-bf16-2xh100", "--matrix", "pipelines/matrix.gpu.yaml",
                 "--gpu", "TPU"]) == 2
    assert "unknown GPU 'TPU'; known: V100-32GB" in capsys.readouterr().err


def test_tensor_parallelism_beyond_the_kv_heads_replicates_them():
    small = Architecture.from_config(known_config("deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B"))   # 2 KV heads
    plan = plan_memory(small, max_model_len=8192, concurrency=4)
    h100 = GPUS["H100-80GB"]
    assert plan.fit(h100, 2).kv_cache_per_gpu == plan.kv_cache_bytes // 2
    assert plan.fit(h100, 4).kv_cache_per_gpu == plan.kv_cache_bytes // 2   # not // 4: each head on two ranks


def test_a_checkpoint_on_disk_is_planned_from_its_own_config_and_weight_files(tmp_path):
    variant = load_matrix("pipelines/matrix.gpu.yaml").variant("r1-qwen-32b-bf16-2xh100")
    config = known_config("deepseek-ai/DeepSeek-R1-Distill-Qwen-32B")
    (tmp_path / "config.json").write_text(json.dumps(config))
    (tmp_path / "model-00001-of-00002.safetensors").write_bytes(bytes(1000))
    (tmp_path / "model-00002-of-00002.safetensors").write_bytes(bytes(24))
    (tmp_path / "tokenizer.json").write_text("{}")   # not a weight file: not counted
    planned = plan_variant(variant, tmp_path)
    assert planned.config_source == str(tmp_path)
    assert planned.plan.weight_source == "checkpoint" and planned.plan.weight_bytes == 1024
    assert planned.plan.kv_bytes_per_token == 256 * 1024
