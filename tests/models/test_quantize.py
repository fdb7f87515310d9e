"""Quantization (assets/models/quantize.py) on the real tiny model: every scheme's checkpoint is served, and an
earlier one is reused only for the same source and settings."""

import json

import httpx
import pytest

from assets.benchmarks.prompts import build_messages
from assets.benchmarks.synthetic import arithmetic_items
from assets.matrix import EngineSpec, QuantizationSpec, load_matrix
from assets.matrix.host import SCHEME_KERNELS, vllm_cpu_capabilities
from assets.models.checkpoint import (
    CheckpointError,
    checkpoint_scheme,
    describe_checkpoint,
)
from assets.models.quantize import (
    QuantizationError,
    earlier_quantization,
    passthrough_record,
    quantize_and_record,
    quantize_checkpoint,
    source_identity,
)
from pipelines import settings
from resources.engines import EngineError, EngineResource

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
