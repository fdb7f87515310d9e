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
