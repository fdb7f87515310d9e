"""Bad input gets an error that says what was wrong and what to do."""

import json
from dataclasses import replace

import pytest

from assets.benchmarks.items import load_items
from assets.benchmarks.sources import BenchmarkDataError
from assets.matrix import EngineSpec, MatrixError, ModelSpec, VllmSettings, load_matrix
from assets.models.checkpoint import CheckpointError
from pipelines.cli import main as yardstick
from resources.engines import EngineError, EngineResource
from resources.hub import ModelHubResource
from tests.conftest import SHARED_BENCHMARKS, needs_shared

pytestmark = pytest.mark.unit


def test_unknown_variant_names_the_known_ones():
    with pytest.raises(MatrixError,
                       match=r"variant 'nope' not in .*matrix.test.yaml; "
                             r"known: tiny-test, tiny-test-api, tiny-test-vllm, tiny-test-w8a16"):
        load_matrix().variant("nope")


def test_matrix_errors_name_the_variant_and_the_key(tmp_path):
    bad = tmp_path / "matrix.yaml"
    bad.write_text("variants:\n  v1:\n    model: {repo: org/model}\n    engine: {kind: transformers}\n"
                   "    hardware: cpu-2vcpu\n    benchmarks: [gsm8k]\n")
    with pytest.raises(MatrixError, match="variant 'v1' .* needs a pinned 'revision'"):
        load_matrix(bad)
    bad.write_text("variants:\n  v1:\n    model: {path: /x}\n    engine: {kind: tgi}\n    hardware: h\n"
                   "    benchmarks: [gsm8k]\n")
    with pytest.raises(MatrixError, match="engine kind 'tgi' unknown; known: transformers, vllm, external"):
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


def test_model_path_that_does_not_exist(tmp_path):
    with pytest.raises(CheckpointError, match=f"model path {tmp_path / 'nowhere'} does not exist"):
        ModelHubResource(models_dir=str(tmp_path)).fetch(ModelSpec(path=str(tmp_path / "nowhere")))


@needs_shared
def test_benchmark_file_missing_a_field(tmp_path):
    rows = [json.loads(line) for line in (SHARED_BENCHMARKS / "gsm8k_test.jsonl").open()][:3]
    del rows[1]["answer"]
    (tmp_path / "gsm8k_test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(BenchmarkDataError,
                       match=r"gsm8k_test.jsonl row 2 lacks field\(s\) \['answer'\] .*present: \['question'\]"):
        load_items("gsm8k", tmp_path, None)


@needs_shared
def test_every_row_of_a_mirror_file_is_checked_whatever_the_item_limit(tmp_path):
    rows = [json.loads(line) for line in (SHARED_BENCHMARKS / "aime24.jsonl").open()][:6]
    del rows[4]["answer"]   # beyond the 2 items asked for
    (tmp_path / "aime24.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(BenchmarkDataError, match=r"aime24.jsonl row 5 lacks field\(s\) \['answer'\]"):
        load_items("aime24", tmp_path, 2)
    rows[4]["answer"] = rows[3]["answer"]
    rows[5]["id"] = rows[1]["id"]   # a duplicate id, which the warehouse's key would refuse without a word of where
    (tmp_path / "aime24.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(BenchmarkDataError, match=rf"aime24.jsonl row 6: item id '{rows[1]['id']}' is also row 2"):
        load_items("aime24", tmp_path, 2)


def test_benchmark_missing_from_the_mirror_and_unknown_benchmark(tmp_path):
    with pytest.raises(BenchmarkDataError, match="expects math500.jsonl in the mirror folder"):
        load_items("math500", tmp_path, 3)
    with pytest.raises(BenchmarkDataError, match="benchmark 'mathxl' unknown; known: aime24"):
        load_items("mathxl", tmp_path, 3)


@needs_shared
@pytest.mark.parametrize(("name", "count", "first_gold"), [
    ("gsm8k", 1319, "18"), ("math500", 500, "\\left( 3, \\frac{\\pi}{2} \\right)"), ("aime24", 30, None),
    ("aime25", 30, "70"), ("amc23", 40, "27"),
])
def test_every_mirror_file_loads_with_normalised_gold(name, count, first_gold):
    items = load_items(name, SHARED_BENCHMARKS, None)
    assert len(items) == count
    assert len({item["item_id"] for item in items}) == count
    if first_gold is not None:
        assert items[0]["gold"] == first_gold
    if name in ("aime24", "aime25", "amc23"):
        assert all(item["gold"].lstrip("-").isdigit() and not item["gold"].startswith("0") or item["gold"] == "0"
                   for item in items)


def test_engine_with_missing_model_path(tmp_path):
    engine = EngineResource(log_dir=str(tmp_path))
    with pytest.raises(EngineError, match="does not exist"), engine.deploy(
            EngineSpec(kind="transformers"), str(tmp_path / "absent"), "x", "x"):
        pass


def test_external_engine_needs_its_key(monkeypatch, tmp_path):
    monkeypatch.delenv("YARDSTICK_TEST_KEY", raising=False)
    spec = EngineSpec(kind="external", options={"base_url": "http://127.0.0.1:9/v1", "model": "m",
                                                "api_key_env": "YARDSTICK_TEST_KEY"})
    with pytest.raises(EngineError, match="YARDSTICK_TEST_KEY"):
        with EngineResource(log_dir=str(tmp_path)).deploy(spec, "", "x", "x"):
            pass


def test_an_endpoint_with_credentials_in_its_url_and_a_key_is_refused_naming_both(monkeypatch, tmp_path):
    """The OpenAI client sends the URL's credentials and drops the key: one of them would silently not reach the
    endpoint, so the combination is refused before any request, with the password hidden."""
    monkeypatch.setenv("YARDSTICK_TEST_URL", "https://user:hunter2@api.example/v1")
    monkeypatch.setenv("YARDSTICK_TEST_KEY", "sk-test")
    spec = EngineSpec(kind="external", options={"base_url_env": "YARDSTICK_TEST_URL", "model": "m",
                                                "api_key_env": "YARDSTICK_TEST_KEY"})
    with pytest.raises(EngineError, match="carries credentials in its URL and the engine settings name a key too") as \
            refused, EngineResource(log_dir=str(tmp_path)).deploy(spec, "", "x", "x"):
        pass
    assert "hunter2" not in str(refused.value) and "api_key_env: YARDSTICK_TEST_KEY" in str(refused.value)


def test_cli_reports_a_missing_warehouse(tmp_path, capsys):
    assert yardstick(["leaderboard", "--warehouse", str(tmp_path / "none.duckdb")]) == 2
    assert "does not exist yet; run `make run`" in capsys.readouterr().err
    assert not (tmp_path / "none.duckdb").exists()   # reading the leaderboard never creates a warehouse
    assert yardstick(["variants"]) == 0
    assert capsys.readouterr().out.split() == ["tiny-test", "tiny-test-w8a16", "tiny-test-api", "tiny-test-vllm"]


def test_gpqa_rows_get_a_seeded_shuffle_and_a_letter(tmp_path):
    row = {"Record ID": "rec1", "Question": "Which is heaviest?", "Correct Answer": "lead",
           "Incorrect Answer 1": "air", "Incorrect Answer 2": "water", "Incorrect Answer 3": "wood"}
    (tmp_path / "gpqa_diamond.jsonl").write_text(json.dumps(row) + "\n" + json.dumps({**row, "Record ID": "rec2"}))
    first, _ = load_items("gpqa_diamond", tmp_path, None)
    assert first == load_items("gpqa_diamond", tmp_path, None)[0]
    assert first["answer_format"] == "choice" and first["item_id"] == "rec1"
    options = dict(line.split(". ", 1) for line in first["problem"].split("\n\n")[1].splitlines())
    assert options[first["gold"]] == "lead" and sorted(options.values()) == ["air", "lead", "water", "wood"]


def test_synthetic_arithmetic_is_fixed_and_held_out_from_training():
    from assets.benchmarks.synthetic import training_examples

    items = load_items("arith", None, None)
    assert items == load_items("arith", None, None) and len(items) == 200
    assert len({item["problem"] for item in items}) == 200
    assert not {item["problem"] for item in items} & {problem for problem, _ in training_examples(5000)}


@needs_shared
def test_multiple_choice_golds_are_letters():
    mmlu = load_items("mmlu_stem", SHARED_BENCHMARKS, 50)
    aqua = load_items("aqua_rat", SHARED_BENCHMARKS, 50)
    assert {item["gold"] for item in mmlu} <= set("ABCD") and {item["gold"] for item in aqua} <= set("ABCDE")
    assert "\nA. " in mmlu[0]["problem"] and "\nA)" in aqua[0]["problem"]


def test_reasoning_apis_get_the_parameters_they_accept(tmp_path):
    from assets.engine.requests import request_sampling

    matrix = load_matrix("pipelines/matrix.gpu.yaml")
    sampling = {"temperature": 0.6, "top_p": 0.95, "max_tokens": 32768}
    assert request_sampling(matrix.variant("o4-mini-api"), sampling) == {"max_completion_tokens": 32768}
    assert request_sampling(matrix.variant("deepseek-reasoner-api"), sampling) == sampling
    bad = tmp_path / "matrix.yaml"
    bad.write_text("variants:\n  v1:\n    model: null\n    engine: {kind: external, base_url: 'http://x/v1', "
                   "model: m, token_limit_param: max_new_tokens}\n    api_price: o4-mini\n    benchmarks: [gsm8k]\n")
    with pytest.raises(MatrixError, match="token_limit_param is max_tokens or max_completion_tokens"):
        load_matrix(bad)


def test_variants_command_checks_names_against_the_matrix(capsys):
    assert yardstick(["variants", "tiny-test", "nope", "tiny-test"]) == 2
    error = capsys.readouterr().err
    assert "unknown variant nope; the matrix" in error and "has: tiny-test, tiny-test-w8a16, tiny-test-api" in error
    assert yardstick(["variants", "tiny-test-api", "tiny-test", "tiny-test-api"]) == 0
    assert capsys.readouterr().out.split() == ["tiny-test-api", "tiny-test"]
