"""Loading the matrix (assets/matrix/load.py): each wrong or inconsistent variant is refused with what was wrong
and what to do, and no secret is written into it."""

import json

import pytest

from assets.matrix import MatrixError, load_matrix

pytestmark = pytest.mark.unit


def test_unknown_variant_names_the_known_ones():
    with pytest.raises(MatrixError,
                       match=r"variant 'nope' not in .*matrix.test.yaml; "
                             r"known: tiny-test, tiny-test-api, tiny-test-llamacpp, tiny-test-vllm, tiny-test-w8a16"):
        load_matrix().variant("nope")


def test_matrix_errors_name_the_variant_and_the_key(tmp_path):
    bad = tmp_path / "matrix.yaml"
    bad.write_text("variants:\n  v1:\n    model: {repo: org/model}\n    engine: {kind: transformers}\n"
                   "    hardware: cpu-2vcpu\n    benchmarks: [gsm8k]\n")
    with pytest.raises(MatrixError, match="variant 'v1' .* needs a pinned 'revision'"):
        load_matrix(bad)
    bad.write_text("variants:\n  v1:\n    model: {path: /x}\n    engine: {kind: tgi}\n    hardware: h\n"
                   "    benchmarks: [gsm8k]\n")
    with pytest.raises(MatrixError, match="engine kind 'tgi' unknown; known: transformers, vllm, llamacpp, external"):
        load_matrix(bad)
    with pytest.raises(MatrixError, match="does not exist"):
        load_matrix(tmp_path / "missing.yaml")


LOCAL = "model: {path: /x}\n    engine: {kind: transformers}\n    hardware: cpu-2vcpu\n"

API = "model: null\n    engine: {kind: external, base_url: 'https://api.example/v1', model: m}\n"


@pytest.mark.parametrize(("body", "message"), [
    (API.replace("model: null", "model: {path: /x}") + "    api_price: deepseek-reasoner\n",
     "external endpoint serves its own weights, so 'model' does not apply; set 'model: null'"),
    (API, "has neither 'hardware' .* nor 'api_price'"),
    (API + "    hardware: h100-1x\n    api_price: deepseek-reasoner\n", "set 'hardware: null'"),
    (LOCAL + "    api_price: deepseek-reasoner\n", "a variant that starts its own engine is priced by its 'hardware'"),
    (API.replace(", model: m", "") + "    api_price: x\n", "an external engine needs 'model'"),
    (LOCAL + "    quantization: {scheme: W4A16, method: gptq}\n", "method gptq needs a 'calibration' source"),
    (LOCAL + "    quantization: {scheme: W8A16, calibration: arith-train}\n", "method rtn takes no calibration"),
    (LOCAL + "    quantization: {scheme: W4A16, method: gptq, calibration: 'hf:openai/gsm8k:main@test'}\n",
     "the split the 'gsm8k' benchmark tests on"),
    (LOCAL + "    quantization: {scheme: FP8_DYNAMIC, method: gptq}\n", "FP8_DYNAMIC is made with dynamic"),
    (LOCAL + "    serving: {prompts: aime25}\n", "serving prompts 'aime25' must be 'synthetic' or one of"),
    (API + "    api_price: x\n    resample: hourly\n", "resample 'hourly' unknown; known: never, daily"),
    (LOCAL + "    resampel: daily\n", r"unknown keys \['resampel'\]; known: model, .*, resample"),
])
def test_matrix_refuses_inconsistent_variants_with_the_fix(tmp_path, body, message):
    matrix = tmp_path / "matrix.yaml"
    matrix.write_text(f"variants:\n  v1:\n    {body}    benchmarks: [gsm8k]\n")
    with pytest.raises(MatrixError, match=message):
        load_matrix(matrix)


@pytest.mark.parametrize("name", ["../../../../tmp/x", "$(id)", "a/b", "", ".hidden", "x" * 64, "tab\tname"])
def test_a_variant_name_that_could_leave_its_folder_is_refused(tmp_path, name):
    matrix = tmp_path / "matrix.yaml"
    matrix.write_text(json.dumps({"variants": {name: {"model": {"path": "/x"}, "engine": {"kind": "transformers"},
                                                      "hardware": "cpu-2vcpu", "benchmarks": ["gsm8k"]}}}))
    with pytest.raises(MatrixError, match="is not a name yardstick can use: it becomes a folder"):
        load_matrix(matrix)


def _matrix_with_engine(tmp_path, engine: str):
    path = tmp_path / "matrix.yaml"
    path.write_text("variants:\n  api:\n    model: null\n    engine: " + engine + "\n"
                    "    api_price: deepseek-reasoner\n    benchmarks: {gsm8k: 2}\n"
                    "    serving: {concurrency: [], request_rates: []}\n")
    return path


@pytest.mark.parametrize("engine", [
    "{kind: external, base_url: 'https://api.example.com/v1', model: m, api_key: sk-secret}",
    "{kind: external, base_url: 'https://api.example.com/v1', model: m, token: sk-secret}",
    "{kind: external, base_url: 'https://user:sk-secret@api.example.com/v1', model: m}",
])
def test_a_secret_written_into_the_matrix_is_refused_with_where_it_belongs(tmp_path, engine):
    with pytest.raises(MatrixError, match="environment variable") as refused:
        load_matrix(_matrix_with_engine(tmp_path, engine))
    assert "sk-secret" not in str(refused.value)


def test_a_matrix_with_its_key_in_an_environment_variable_loads(tmp_path):
    engine = "{kind: external, base_url: 'https://api.example.com/v1', model: m, api_key_env: SOME_KEY}"
    assert load_matrix(_matrix_with_engine(tmp_path, engine)).variant("api").engine.options["api_key_env"]


# What an operator gives the commands: each wrong thing refused with what, where and what to do, exit status 2, and
# nothing written.
def test_a_matrix_that_is_not_utf8_is_named_with_the_byte(tmp_path, capsys):
    from pipelines.cli import main as yardstick

    matrix = tmp_path / "matrix.yaml"
    matrix.write_bytes(b"variants:\n  caf\xe9: {}\n")
    assert yardstick(["variants", "--matrix", str(matrix)]) == 2
    assert f"matrix file {matrix} is not UTF-8 text (invalid continuation byte at byte 16" in capsys.readouterr().err
    assert yardstick(["variants", "--matrix", str(tmp_path)]) == 2
    assert "cannot be read (Is a directory); name a YAML file" in capsys.readouterr().err
