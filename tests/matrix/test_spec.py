"""The variant spec (assets/matrix/spec.py): what its settings hash covers and what it leaves out; what each variant
is compared with (its unquantized twin and the matrix's common reference)."""

from dataclasses import replace

import pytest

from assets.matrix import DEFAULT_MATRIX, MatrixError, ModelSpec, VllmSettings, load_matrix
from tests.matrix.test_host import AVX2
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


def _names(baselines: dict) -> dict[str, str]:
    return {relation: baseline.name for relation, baseline in baselines.items()}


BF16, TRANSFORMERS, LLAMACPP = "tiny-bf16-cpu", "tiny-bf16-transformers-cpu", "tiny-bf16-llamacpp-cpu"


def _default_matrix(tmp_path, host, reference: str | None):
    """The offline default matrix with `reference: <reference>` (None: without the key)."""
    text = DEFAULT_MATRIX.read_text()
    assert f"\nreference: {BF16}\n" in text
    path = tmp_path / "matrix.yaml"
    path.write_text(text.replace(f"\nreference: {BF16}\n", f"\nreference: {reference}\n" if reference else "\n"))
    return load_matrix(path, host=lambda: host)


# The offline default matrix: each variant's baselines where vLLM's CPU build runs every scheme (host None: not
# asked) and on an AVX2 CPU, where its W4A16 variants are served by transformers, their fallback.
@pytest.mark.parametrize(("host", "variant", "baselines"), [
    (None, BF16, {}),                                       # the common reference
    (None, TRANSFORMERS, {"reference": BF16}),              # another engine on the same weights: the engine's effect
    (None, LLAMACPP, {"reference": BF16}),
    (None, "tiny-w4a16-cpu", {"twin": BF16}),               # its twin is the reference: once
    (None, "tiny-w8a8-gptq-cpu", {"twin": BF16}),
    (None, "tiny-w8a16-cpu", {"twin": TRANSFORMERS, "reference": BF16}),
    (None, "tiny-fp8-cpu", {"twin": TRANSFORMERS, "reference": BF16}),
    (None, "tiny-q8_0-llamacpp-cpu", {"twin": LLAMACPP, "reference": BF16}),
    (None, "tiny-iq4_xs-llamacpp-cpu", {"twin": LLAMACPP, "reference": BF16}),
    (AVX2, "tiny-w4a16-awq-cpu", {"twin": TRANSFORMERS, "reference": BF16}),   # the engine that serves it
    (AVX2, "tiny-w8a8-cpu", {"twin": BF16}),
])
def test_the_default_matrix_compares_each_variant_with_its_twin_and_the_common_reference(tmp_path, host, variant,
                                                                                           baselines):
    explicit = load_matrix(DEFAULT_MATRIX, host=lambda: host)
    assert explicit.reference == BF16   # what the default would be: the first unquantized variant in matrix order
    for matrix in (explicit, _default_matrix(tmp_path, host, None)):
        assert _names(matrix.baselines_of(matrix.variant(variant))) == baselines
        assert matrix.reference_of(matrix.variant(variant)).name == BF16


def test_an_explicit_reference_replaces_the_first_unquantized_variant(tmp_path):
    matrix = _default_matrix(tmp_path, None, TRANSFORMERS)
    baselines = {name: _names(matrix.baselines_of(variant)) for name, variant in matrix.variants.items()}
    assert baselines[TRANSFORMERS] == {}
    assert baselines[BF16] == {"reference": TRANSFORMERS}
    assert baselines["tiny-w4a16-cpu"] == {"twin": BF16, "reference": TRANSFORMERS}
    assert baselines["tiny-w8a16-cpu"] == {"twin": TRANSFORMERS}


# Two models, two protocols and an API: a reference is of one model and protocol, and an endpoint has none.
TWO_MODELS = """
defaults: {hardware: cpu-2vcpu, benchmarks: [gsm8k], engine: {kind: transformers}}
variants:
  a-bf16: {model: {path: /a}}
  a-vllm-bf16: {model: {path: /a}, engine: {kind: vllm, device: cpu}}
  a-greedy: {model: {path: /a}, protocol: {preset: greedy}}
  b-bf16: {model: {path: /b}, engine: {kind: vllm, device: cpu}}
  b-w8a16: {model: {path: /b}, quantization: W8A16}
  api: {model: null, hardware: null, api_price: deepseek-reasoner, serving: {concurrency: [], request_rates: []},
        engine: {kind: external, base_url: 'https://api.example/v1', model: m}}
"""


def _two_models(tmp_path, reference: str | None = None):
    path = tmp_path / "matrix.yaml"
    path.write_text((f"reference: {reference}\n" if reference else "") + TWO_MODELS)
    return load_matrix(path, host=lambda: None)


@pytest.mark.parametrize(("reference", "expected"), [
    (None, {"a-bf16": {}, "a-vllm-bf16": {"reference": "a-bf16"}, "a-greedy": {}, "b-bf16": {},
            "b-w8a16": {"reference": "b-bf16"}, "api": {}}),
    ("a-vllm-bf16", {"a-bf16": {"reference": "a-vllm-bf16"}, "a-vllm-bf16": {}, "a-greedy": {}, "b-bf16": {},
                     "b-w8a16": {"reference": "b-bf16"}, "api": {}}),
])
def test_a_reference_is_of_its_own_model_and_protocol(tmp_path, reference, expected):
    matrix = _two_models(tmp_path, reference)
    assert {name: _names(matrix.baselines_of(variant)) for name, variant in matrix.variants.items()} == expected
    assert matrix.reference_of(matrix.variant("api")) is None


@pytest.mark.parametrize(("reference", "problem"), [
    ("nope", "reference 'nope' is not a variant of the matrix"),
    ("b-w8a16", r"reference 'b-w8a16' is quantized \(W8A16\); the reference is the unquantized weights"),
    ("api", "reference 'api' is an external endpoint, which serves weights of its own"),
    ("[a-bf16]", r"'reference' names one variant, got \['a-bf16'\]"),
])
def test_a_reference_that_cannot_be_one_is_refused_with_those_that_can(tmp_path, reference, problem):
    with pytest.raises(MatrixError, match=rf"matrix.yaml: {problem}[^;]*; name one of the unquantized variants "
                                          r"\(a-bf16, a-vllm-bf16, a-greedy, b-bf16\), or drop 'reference'"):
        _two_models(tmp_path, reference)
