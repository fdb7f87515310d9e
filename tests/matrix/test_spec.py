"""The variant spec (assets/matrix/spec.py): what its settings hash covers and what it leaves out."""

from dataclasses import replace

import pytest

from assets.matrix import ModelSpec, VllmSettings, load_matrix
from tests.samples import BASE, with_protocol

pytestmark = pytest.mark.unit


def test_settings_hash_changes_with_what_changes_samples_only():
    base = load_matrix().variant("tiny-test")
    assert base.settings_hash == load_matrix().variant("tiny-test").settings_hash
    options = base.engine.options
    same_samples = {
        "load levels": replace(base, serving=replace(base.serving, concurrency=(8, 16))),
        "benchmarks and item counts": replace(base, benchmarks={"arith": 1}),
        "price row": replace(base, hardware="h100-1x"),
        "engine run-time options": replace(base, engine=replace(base.engine, options={
            **options, "concurrency": 16, "startup_timeout_s": 600, "port": 9000})),
    }
    other_samples = {
        "quantization": load_matrix().variant("tiny-test-w8a16"),
        "temperature": replace(base, protocol=replace(base.protocol, temperature=0.0)),
        "system prompt": replace(base, protocol=replace(base.protocol, system_prompt="Be brief.")),
        "engine option": replace(base, engine=replace(base.engine, options={**options, "cb_block_size": 64})),
        "engine kind": replace(base, engine=replace(base.engine, kind="vllm", options={
            key: value for key, value in options.items() if key in VllmSettings.known()})),
    }
    assert [name for name, variant in same_samples.items() if variant.settings_hash != base.settings_hash] == []
    assert [name for name, variant in other_samples.items() if variant.settings_hash == base.settings_hash] == []


def test_settings_hash_leaves_out_how_many_samples_and_which_items():
    same_samples = {
        "k": with_protocol(k=5),
        "k of one benchmark": with_protocol(k_by_benchmark={**BASE.protocol.k_by_benchmark, "arith": 3}),
        "no k per benchmark": with_protocol(k_by_benchmark={}),
        "benchmark limits": replace(BASE, benchmarks={**BASE.benchmarks, "arith": 50}),
        "benchmarks": replace(BASE, benchmarks={"gsm8k": None}),
    }
    other_samples = {
        "temperature": with_protocol(temperature=0.0),
        "max_tokens": with_protocol(max_tokens=BASE.protocol.max_tokens + 1),
        "top_p": with_protocol(top_p=0.5),
        "prompt suffix": with_protocol(prompt_suffix="Answer."),
        "model": replace(BASE, model=ModelSpec(repo="org/other", revision="abc")),
    }
    assert [name for name, v in same_samples.items() if v.settings_hash != BASE.settings_hash] == []
    assert [name for name, v in other_samples.items() if v.settings_hash == BASE.settings_hash] == []
    # the hash an older yardstick stored samples under covered k: it is the one that tells a change of k
    assert with_protocol(k=5).former_settings_hashes != BASE.former_settings_hashes
    assert BASE.settings_hash not in BASE.former_settings_hashes
