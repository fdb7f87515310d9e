"""The generated tiny model (assets/models/tiny.py): built the same every time, trained and R1-shaped."""

import hashlib
import json

import pytest

from assets.models.checkpoint import (
    describe_checkpoint,
)
from assets.models.tiny import R1_CHAT_TEMPLATE, build_tiny_model

pytestmark = pytest.mark.integration


def _sha(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_tiny_model_build_is_deterministic(tmp_path):
    first = build_tiny_model(tmp_path / "first", training_steps=5)
    again = build_tiny_model(tmp_path / "again", training_steps=5)
    assert _sha(first / "model.safetensors") == _sha(again / "model.safetensors")
    assert _sha(first / "tokenizer.json") == _sha(again / "tokenizer.json")


def test_tiny_model_is_trained_and_r1_shaped(tiny_model):
    build = json.loads((tiny_model / "yardstick_build.json").read_text())
    assert build["training_steps"] > 0 and build["final_loss"] < 0.5
    facts = describe_checkpoint(tiny_model)
    assert facts["model_type"] == "qwen2" and facts["architecture"] == "Qwen2ForCausalLM"
    assert facts["bytes"] < 5 * 2**20 and facts["parameters"] > 100_000
    assert facts["head_dim"] == facts["hidden_size"] // facts["num_attention_heads"]

    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    prompt = tokenizer.apply_chat_template([{"role": "user", "content": "1+1?"}], tokenize=False,
                                           add_generation_prompt=True)
    assert prompt.endswith("<｜Assistant｜><think>\n")
    assert tokenizer.chat_template == R1_CHAT_TEMPLATE


def test_tiny_model_is_shaped_for_gguf(tiny_model):
    """Every weight row a multiple of 256 (K-quants and i-quants really apply), an embedding with a row for every
    token the tokenizer has, digits split one by one as Qwen2's rule does, and past reasoning dropped by the
    template as R1's does."""
    from safetensors import safe_open
    from transformers import AutoTokenizer

    config = json.loads((tiny_model / "config.json").read_text())
    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    assert config["vocab_size"] % 64 == 0 and max(tokenizer.get_vocab().values()) < config["vocab_size"]
    with safe_open(tiny_model / "model.safetensors", "pt") as weights:
        rows = {name: weights.get_slice(name).get_shape()[-1] for name in weights.keys() if name.endswith("weight")}
    matrices = {name: width for name, width in rows.items() if "norm" not in name}
    assert matrices and all(width % 256 == 0 for width in matrices.values()), matrices
    assert tokenizer.tokenize("12345") == list("12345")
    history = [{"role": "user", "content": "1+1?"}, {"role": "assistant", "content": "one and one</think> 2"},
               {"role": "user", "content": "2+2?"}]
    prompt = tokenizer.apply_chat_template(history, tokenize=False, add_generation_prompt=True)
    assert "one and one" not in prompt and "<｜Assistant｜> 2" in prompt
