"""Checkpoint facts (assets/models/checkpoint.py): fingerprints, external snapshots, the scheme a checkpoint says."""

import json
from dataclasses import replace

import pytest

from assets.matrix import EngineSpec, load_matrix
from assets.models.checkpoint import (
    checkpoint_fingerprint,
    checkpoint_scheme,
    external_snapshot,
)


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


@pytest.mark.unit
def test_an_external_snapshot_stores_and_fingerprints_the_url_without_credentials():
    variant = load_matrix().variant("tiny-test-api")
    with_key = external_snapshot(variant, "https://user:sk-secret@api.example.com/v1")
    without = external_snapshot(variant, "https://api.example.com/v1")
    assert with_key == without and "sk-secret" not in str(with_key)
    assert external_snapshot(variant, "https://other.example.com/v1")["fingerprint"] != without["fingerprint"]
