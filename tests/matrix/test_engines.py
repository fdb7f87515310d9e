"""Typed engine settings: per kind, defaults in one place, unknown keys and bad values refused when the matrix
loads; the defaults' settings of another kind never leak into a variant; old sample keys stay adoptable."""

import hashlib
import json
import os
import subprocess
import sys
from dataclasses import asdict, fields
from pathlib import Path

import pytest

from assets.matrix import ENGINE_SETTINGS, EngineSpec, MatrixError, load_matrix
from assets.matrix.engines import RUNTIME_ONLY_SETTINGS

unit = pytest.mark.unit

MATRIX = """
defaults:
  model: {{generate: tiny-r1-qwen2}}
  engine: {{kind: vllm, device: cpu, cpu_kvcache_space_gib: 1, max_model_len: 4096, concurrency: 4}}
  hardware: cpu-2vcpu
  benchmarks: {{arith: 2}}
variants:
  on-vllm: {{}}
  on-transformers:
    engine: {{kind: transformers, cb_num_blocks: 64}}
  api:
    model: null
    hardware: null
    api_price: deepseek-reasoner
    engine: {{kind: external, base_url: "https://api.example/v1", model: m}}
  other: {other}
"""


def matrix(tmp_path: Path, other: str = "{}"):
    path = tmp_path / "matrix.yaml"
    path.write_text(MATRIX.format(other=other))
    return load_matrix(path, host=lambda: None)


@unit
def test_each_kind_gets_its_own_settings_with_their_defaults(tmp_path):
    variants = matrix(tmp_path).variants
    vllm, transformers, api = (variants[name].engine.settings for name in ("on-vllm", "on-transformers", "api"))
    assert (vllm.cpu_kvcache_space_gib, vllm.max_model_len, vllm.concurrency) == (1, 4096, 4)
    assert (vllm.tensor_parallel_size, vllm.pipeline_parallel_size, vllm.nodes) == (1, 1, 1)
    assert vllm.on_cpu and vllm.eager and vllm.reasoning_parser == "deepseek_r1"
    # the defaults are vLLM's: what transformers also takes comes through, what only vLLM takes does not
    assert (transformers.cb_num_blocks, transformers.cb_block_size, transformers.concurrency) == (64, 32, 4)
    assert "cpu_kvcache_space_gib" not in variants["on-transformers"].engine.options
    assert transformers.max_model_len == 4096 and transformers.on_cpu
    assert api.model == "m" and api.concurrency == 4 and not hasattr(api, "device")


@pytest.mark.parametrize(("other", "refusal"), [
    ("{engine: {cpu_kvcache_space_gb: 2}}",
     "vllm engine setting cpu_kvcache_space_gb (did you mean cpu_kvcache_space_gib?) unknown"),
    ("{engine: {kind: transformers, cb_blocks: 8}}", "transformers engine setting cb_blocks"),
    ("{engine: {kind: transformers, tensor_parallel_size: 2}}",
     "transformers engine setting tensor_parallel_size unknown"),
    ("{engine: {nodes: two}}", "engine setting 'nodes' (hosts the engine spans (Ray)): invalid literal"),
    ("{engine: {cpu_kvcache_space_gib: 2.5}}", "expected a whole number, got 2.5"),
    ("{engine: {enable_prefix_caching: 'no'}}", "engine setting 'enable_prefix_caching'"),
    ("{engine: {extra_args: --foo}}", "expected a list of arguments"),
    ("{model: null, hardware: null, api_price: x, engine: {kind: external, base_url: 'https://a/v1'}}",
     "an external engine needs 'model'"),
    ("{engine: {fallback: {kind: transformers, cb_num_block: 8}}}",
     "fallback engine of vllm: transformers engine setting cb_num_block"),
])
@unit
def test_a_misspelt_or_misplaced_setting_is_refused_naming_it(tmp_path, other, refusal):
    with pytest.raises(MatrixError, match="variant 'other'") as raised:
        matrix(tmp_path, other)
    assert refusal in str(raised.value)


@unit
def test_a_setting_no_kind_knows_is_refused_in_the_defaults_even_where_it_would_not_apply(tmp_path):
    path = tmp_path / "matrix.yaml"
    only_transformers = MATRIX.format(other="{engine: {kind: transformers}}").replace("  on-vllm: {}\n", "")
    path.write_text(only_transformers.replace("max_model_len: 4096", "max_model_lenght: 4096"))
    with pytest.raises(MatrixError, match="max_model_lenght unknown to every engine kind"):
        load_matrix(path, host=lambda: None)


@unit
def test_every_setting_says_how_it_is_read_and_what_it_does():
    for settings in ENGINE_SETTINGS.values():
        for item in fields(settings):
            assert callable(item.metadata["parse"]) and item.metadata["doc"], (settings.KIND, item.name)
    assert RUNTIME_ONLY_SETTINGS <= {name for settings in ENGINE_SETTINGS.values() for name in settings.known()}


@unit
def test_an_engine_built_in_code_is_checked_like_one_in_the_matrix():
    assert EngineSpec("vllm", {"tensor_parallel_size": 2, "nodes": 2}).settings.devices_spanned == 2
    with pytest.raises(ValueError, match="vllm engine setting tensor_paralel_size"):
        EngineSpec("vllm", {"tensor_paralel_size": 2})


def old_settings_hash(variant, engine_options: dict) -> str:
    """The settings hash as yardstick computed it before typed settings, written out: that history is fixed."""
    runtime = {"concurrency", "startup_timeout_s", "port", "cpu_kvcache_space_gib", "retry"}
    protocol = asdict(variant.protocol)
    del protocol["k"], protocol["k_by_benchmark"]
    identity = {"model": asdict(variant.model), "quantization": variant.quantization.identity(),
                "engine": {"kind": variant.engine.kind,
                           "options": {k: v for k, v in engine_options.items() if k not in runtime}},
                "protocol": protocol}
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:16]


@unit
def test_samples_keyed_with_the_defaults_of_another_kind_stay_adoptable(tmp_path):
    """Before settings were typed an API variant took every engine default (vLLM's max_model_len among them) into
    its key; the key it has now leaves them out, and the old one is among those adopted."""
    variants = matrix(tmp_path).variants
    api = variants["api"]
    merged_then = {"device": "cpu", "cpu_kvcache_space_gib": 1, "max_model_len": 4096, "concurrency": 4,
                   "base_url": "https://api.example/v1", "model": "m"}
    assert old_settings_hash(api, merged_then) in api.former_settings_hashes
    assert api.settings_hash == old_settings_hash(api, {"concurrency": 4, "base_url": "https://api.example/v1",
                                                        "model": "m"})
    vllm = variants["on-vllm"]   # nothing changed for a variant of the defaults' own kind
    assert vllm.settings_hash == old_settings_hash(vllm, {"device": "cpu", "cpu_kvcache_space_gib": 1,
                                                          "max_model_len": 4096, "concurrency": 4})


@pytest.mark.integration
def test_yardstick_variants_refuses_a_misspelt_engine_setting(tmp_path):
    path = tmp_path / "matrix.yaml"
    path.write_text(MATRIX.format(other="{engine: {cpu_kvcache_space_gb: 2}}"))
    yardstick = Path(sys.executable).with_name("yardstick")
    result = subprocess.run([str(yardstick), "variants"], capture_output=True, text=True, timeout=120,
                            env={**os.environ, "YARDSTICK_MATRIX": str(path)})
    assert result.returncode != 0
    assert "cpu_kvcache_space_gb" in result.stderr and "variant 'other'" in result.stderr
