"""The generated tiny model, checkpoint facts, fingerprints and quantization, on the real files."""

import hashlib
import json
from dataclasses import replace

import httpx
import pytest

from assets.benchmarks.prompts import build_messages
from assets.benchmarks.synthetic import arithmetic_items
from assets.matrix import EngineSpec, QuantizationSpec, load_matrix
from assets.matrix.host import SCHEME_KERNELS, vllm_cpu_capabilities
from assets.models.calibration import CalibrationError, calibration_texts, parse_source
from assets.models.checkpoint import (
    CheckpointError,
    checkpoint_fingerprint,
    checkpoint_scheme,
    describe_checkpoint,
    external_snapshot,
)
from assets.models.quantize import (
    QuantizationError,
    earlier_quantization,
    passthrough_record,
    quantize_and_record,
    quantize_checkpoint,
    source_identity,
)
from assets.models.tiny import R1_CHAT_TEMPLATE, build_tiny_model
from pipelines import settings
from resources.engines import EngineError, EngineResource


def _sha(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.integration
def test_tiny_model_build_is_deterministic(tmp_path):
    first = build_tiny_model(tmp_path / "first", training_steps=5)
    again = build_tiny_model(tmp_path / "again", training_steps=5)
    assert _sha(first / "model.safetensors") == _sha(again / "model.safetensors")
    assert _sha(first / "tokenizer.json") == _sha(again / "tokenizer.json")


@pytest.mark.integration
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


@pytest.mark.integration
def test_fingerprint_follows_the_files(tiny_model, tmp_path):
    copy = tmp_path / "copy"
    copy.mkdir()
    for file in tiny_model.iterdir():
        (copy / file.name).write_bytes(file.read_bytes())
    first = checkpoint_fingerprint(copy)
    assert checkpoint_fingerprint(copy) == first
    config = json.loads((copy / "config.json").read_text())
    config["rms_norm_eps"] = 1e-5
    (copy / "config.json").write_text(json.dumps(config))
    assert checkpoint_fingerprint(copy) != first


SCHEMES = {
    "W8A16": QuantizationSpec("W8A16"),
    "W4A16": QuantizationSpec("W4A16"),
    "W4A16-gptq": QuantizationSpec("W4A16", "gptq", "arith-train", calibration_samples=32,
                                   calibration_max_seq_len=64),
    "W8A8": QuantizationSpec("W8A8", "smoothquant-gptq", "arith-train", calibration_samples=32,
                             calibration_max_seq_len=64),
    "FP8_DYNAMIC": QuantizationSpec("FP8_DYNAMIC", "dynamic"),
}


@pytest.mark.integration
@pytest.mark.parametrize("name", SCHEMES)
def test_every_scheme_writes_a_checkpoint_the_cpu_engine_serves(tiny_model, tmp_path, name):
    spec = SCHEMES[name]
    record = quantize_checkpoint(tiny_model, tmp_path / name, spec)
    config = json.loads((tmp_path / name / "config.json").read_text())
    assert config["quantization_config"]["quant_method"] == "compressed-tensors"
    assert checkpoint_scheme(tmp_path / name) == spec.scheme   # what the vLLM launcher reads to ask the probe
    assert record["bytes_after"] < record["bytes_before"]
    assert record["scheme"] == spec.scheme and record["method"] == spec.method
    assert record["tool_version"].startswith("llmcompressor ") and "compressed-tensors" in record["tool_version"]
    assert record["recipe"] and ("GPTQModifier" in record["recipe"]) == (spec.method != "rtn" and
                                                                          spec.method != "dynamic")
    assert ("SmoothQuantModifier" in record["recipe"]) == (spec.method == "smoothquant-gptq")
    assert (record["calibration"] or "").startswith("arith-train: 32 samples") == bool(spec.calibration)
    assert not (tmp_path / f"{name}.partial").exists() and (tmp_path / name / "tokenizer.json").exists()

    # The checkpoint serves through the CPU engine's own code: asked as the evaluation asks (an arith problem under
    # the R1 protocol), it answers under its name with a counted, bounded reply. What the reply says depends on
    # the CPU's floating-point path, so it is not asserted.
    engine = EngineResource(log_dir=str(tmp_path / "logs"))
    options = {"device": "cpu", "cb_num_blocks": 32, "cb_block_size": 32, "cb_max_batch_tokens": 256,
               "startup_timeout_s": 120}
    protocol = load_matrix().variant("tiny-test").protocol
    with engine.deploy(EngineSpec("transformers", options), str(tmp_path / name), served_name=name,
                       log_name=name, warmup_sampling={"temperature": 0.0}) as deployment:
        reply = httpx.post(f"{deployment.base_url}/chat/completions", timeout=120, json={
            "model": deployment.served_model, "max_tokens": 48, "temperature": 0.0,
            "messages": build_messages(arithmetic_items(1)[0]["problem"], protocol)}).json()
    assert_served(reply, 48)

    # And through vLLM's CPU build where the probe of this host finds the scheme's kernel; where it does not, the
    # launcher refuses the checkpoint before it starts anything, naming the kernel (test_host.py forces that branch).
    vllm = EngineResource(log_dir=str(tmp_path / "vllm-logs"), vllm_command=settings.vllm_command(), cpu_threads=2)
    vllm_spec = EngineSpec("vllm", {"device": "cpu", "cpu_kvcache_space_gib": 1, "startup_timeout_s": 300})
    problem = vllm_cpu_capabilities(settings.vllm_command()).problem(spec.scheme)
    if problem is not None:
        kernel = SCHEME_KERNELS[spec.scheme].kernel
        with pytest.raises(EngineError, match=kernel), \
                vllm.deploy(vllm_spec, str(tmp_path / name), served_name=name, log_name=name):
            pass
        assert not (tmp_path / "vllm-logs" / f"{name}.log").exists()   # nothing was started
        return
    with vllm.deploy(vllm_spec, str(tmp_path / name), served_name=name, log_name=name) as deployment:
        reply = httpx.post(f"{deployment.base_url}/chat/completions", timeout=120, json={
            "model": deployment.served_model, "max_tokens": 48, "temperature": 0.0,
            "messages": build_messages(arithmetic_items(1)[0]["problem"], protocol)}).json()
    assert_served(reply, 48)


def assert_served(reply: dict, max_tokens: int) -> None:
    """Served and counted within the limit: what an engine guarantees, whatever the model says."""
    choice = reply["choices"][0]
    assert isinstance(choice["message"]["content"], str | None)
    assert choice["finish_reason"] in ("stop", "length")
    assert 1 <= reply["usage"]["completion_tokens"] <= max_tokens and reply["usage"]["prompt_tokens"] > 0


@pytest.mark.unit
def test_calibration_never_uses_test_items():
    with pytest.raises(CalibrationError, match="the split the 'math500' benchmark tests on"):
        parse_source("hf:HuggingFaceH4/MATH-500@test")
    assert parse_source("hf:openai/gsm8k:main@train").split == "train"
    questions = {row["problem"] for row in arithmetic_items()}
    texts = calibration_texts(parse_source("arith-train"), FakeTemplate(), 50)
    assert len(texts) == 50 and not any(question in text for text in texts for question in questions)


class FakeTemplate:
    """Renders a chat as plain text; enough to see which questions a calibration set holds."""

    @staticmethod
    def apply_chat_template(messages, tokenize=False, add_generation_prompt=False):
        return "".join(message["content"] for message in messages) + "|"


@pytest.mark.integration
def test_unknown_scheme_and_not_a_checkpoint(tiny_model, tmp_path):
    with pytest.raises(QuantizationError, match="scheme 'W3A5' unknown; known: none, W8A16, W4A16, W8A8"):
        quantize_checkpoint(tiny_model, tmp_path / "x", QuantizationSpec("W3A5"))
    with pytest.raises(CheckpointError, match="has no config.json"):
        describe_checkpoint(tmp_path)


@pytest.mark.unit
def test_a_quantized_checkpoint_is_reused_only_for_the_same_source_and_settings(tmp_path, monkeypatch):
    source, target = tmp_path / "source", tmp_path / "quantized"
    source.mkdir()
    (source / "model.safetensors").write_bytes(bytes(10))
    spec = QuantizationSpec("W4A16")
    made = []

    def quantize(source, target, spec):   # stands in for llm-compressor: the bookkeeping is under test
        target.mkdir(exist_ok=True)
        made.append(spec)
        return {"scheme": spec.scheme, "method": spec.method, "bytes_before": 10, "bytes_after": 4}

    monkeypatch.setattr("assets.models.quantize.quantize_checkpoint", quantize)
    identity = source_identity(source, "abc123", spec)
    assert earlier_quantization(target, identity) is None
    record = quantize_and_record(source, target, spec, identity)
    assert record["local_path"] == str(target) and len(made) == 1
    assert earlier_quantization(target, source_identity(source, "abc123", spec)) == record
    calibrated = QuantizationSpec("W4A16", "gptq", "arith-train")
    for changed in (source_identity(source, "def456", spec), source_identity(source, "abc123", calibrated)):
        assert earlier_quantization(target, changed) is None
    (source / "model.safetensors").write_bytes(bytes(11))   # rewritten in place: the size tells
    assert earlier_quantization(target, source_identity(source, "abc123", spec)) is None
    assert passthrough_record(source)["bytes_after"] == 11


@pytest.mark.unit
def test_an_external_snapshot_is_fingerprinted_by_endpoint_and_served_model():
    api = load_matrix("pipelines/matrix.gpu.yaml").variant("deepseek-reasoner-api")

    def fingerprint(endpoint, model):
        variant = replace(api, engine=EngineSpec("external", {**api.engine.options, "model": model}))
        return external_snapshot(variant, endpoint)["fingerprint"]

    first = fingerprint("https://api.example.com/v1", "reasoner")
    assert first == fingerprint("https://api.example.com/v1", "reasoner")
    assert first != fingerprint("https://other.example.com/v1", "reasoner")
    assert first != fingerprint("https://api.example.com/v1", "chat")


def _group(weights: dict | None, activations: dict | None = None) -> dict:
    return {"weights": weights, "input_activations": activations, "targets": ["Linear"]}


@pytest.mark.unit
@pytest.mark.parametrize(("groups", "scheme"), [
    ({"group_0": _group({"type": "int", "num_bits": 4})}, "W4A16"),
    ({"group_0": _group({"type": "int", "num_bits": 8})}, "W8A16"),
    ({"group_0": _group({"type": "int", "num_bits": 8}, {"type": "int", "num_bits": 8, "dynamic": True})}, "W8A8"),
    ({"group_0": _group({"type": "float", "num_bits": 8}, {"type": "float", "num_bits": 8, "dynamic": True})},
     "FP8_DYNAMIC"),
    ({"group_0": _group({"type": "int", "num_bits": 4}), "group_1": _group({"type": "int", "num_bits": 8})}, None),
    ({"group_0": _group({"type": "float", "num_bits": 4})}, None),
])
def test_a_checkpoint_says_its_scheme_as_the_matrix_names_it(tmp_path, groups, scheme):
    """What the vLLM launcher reads from a checkpoint to ask the probe whether this host's build can serve it."""
    (tmp_path / "config.json").write_text(json.dumps({"quantization_config": {
        "quant_method": "compressed-tensors", "config_groups": groups}}))
    assert checkpoint_scheme(tmp_path) == scheme
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "qwen2"}))
    assert checkpoint_scheme(tmp_path) is None and checkpoint_scheme(tmp_path / "missing") is None
