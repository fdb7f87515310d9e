"""The generated tiny model, checkpoint facts, fingerprints and quantization, on the real files."""

import hashlib
import json

import pytest

from assets.models.checkpoint import CheckpointError, checkpoint_fingerprint, describe_checkpoint
from assets.models.quantize import QuantizationError, quantize_checkpoint
from assets.models.tiny import R1_CHAT_TEMPLATE, build_tiny_model, ensure_tiny_model
from tests.conftest import STATE


@pytest.fixture(scope="module")
def tiny():
    """The trained offline model, built once per test session (the end-to-end tests use the same one)."""
    return ensure_tiny_model(STATE / "models" / "tiny-r1-qwen2")


def _sha(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_tiny_model_build_is_deterministic(tmp_path):
    first = build_tiny_model(tmp_path / "first", training_steps=5)
    again = build_tiny_model(tmp_path / "again", training_steps=5)
    assert _sha(first / "model.safetensors") == _sha(again / "model.safetensors")
    assert _sha(first / "tokenizer.json") == _sha(again / "tokenizer.json")


def test_tiny_model_is_trained_and_r1_shaped(tiny):
    build = json.loads((tiny / "yardstick_build.json").read_text())
    assert build["training_steps"] > 0 and build["final_loss"] < 0.5
    facts = describe_checkpoint(tiny)
    assert facts["model_type"] == "qwen2" and facts["architecture"] == "Qwen2ForCausalLM"
    assert facts["bytes"] < 5 * 2**20 and facts["parameters"] > 100_000
    assert facts["head_dim"] == facts["hidden_size"] // facts["num_attention_heads"]

    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny)
    prompt = tokenizer.apply_chat_template([{"role": "user", "content": "1+1?"}], tokenize=False,
                                           add_generation_prompt=True)
    assert prompt.endswith("<｜Assistant｜><think>\n")
    assert tokenizer.chat_template == R1_CHAT_TEMPLATE


def test_fingerprint_follows_the_files(tiny, tmp_path):
    copy = tmp_path / "copy"
    copy.mkdir()
    for file in tiny.iterdir():
        (copy / file.name).write_bytes(file.read_bytes())
    first = checkpoint_fingerprint(copy)
    assert checkpoint_fingerprint(copy) == first
    config = json.loads((copy / "config.json").read_text())
    config["rms_norm_eps"] = 1e-5
    (copy / "config.json").write_text(json.dumps(config))
    assert checkpoint_fingerprint(copy) != first


def test_w8a16_writes_a_compressed_tensors_checkpoint(tiny, tmp_path):
    record = quantize_checkpoint(tiny, tmp_path / "w8a16", "W8A16")
    config = json.loads((tmp_path / "w8a16" / "config.json").read_text())
    assert config["quantization_config"]["quant_method"] == "compressed-tensors"
    assert record["bytes_after"] < record["bytes_before"]
    assert record["tool"] == "llmcompressor" and record["tool_version"]
    assert not (tmp_path / "w8a16.partial").exists()
    assert (tmp_path / "w8a16" / "tokenizer.json").exists()


def test_unknown_scheme_and_not_a_checkpoint(tiny, tmp_path):
    with pytest.raises(QuantizationError, match="'W3A5' is not supported; supported: none, W8A16"):
        quantize_checkpoint(tiny, tmp_path / "x", "W3A5")
    with pytest.raises(CheckpointError, match="has no config.json"):
        describe_checkpoint(tmp_path)
