"""Samples are keyed by what shapes one sample, not by how many are drawn nor which items are chosen: a change of
k or of a benchmark's items keeps every stored sample, raising k draws only the new sample indices, and every
reader (grading, scores, the baseline comparison, costs) counts only the first k samples of the items the
variant names now."""

import hashlib
import json
from dataclasses import asdict, replace

import pandas as pd
import pytest

from assets.cost.defs import USAGE_SQL
from assets.engine.requests import pending_requests
from assets.grading.defs import UNGRADED_SQL
from assets.grading.version import GRADER_VERSION
from assets.matrix import ModelSpec, load_matrix
from assets.models.defs import record_snapshot, sample_key_of
from assets.scoring.defs import GRADES_SQL, PER_ITEM_SQL
from assets.scoring.metrics import score_benchmark
from assets.variants import counted_samples
from pipelines.definitions import defs
from resources.matrix import MatrixResource
from resources.warehouse import WarehouseResource
from tests.conftest import needs_shared

# Unit tests but the last, which runs the chain three times through the real engine.
unit = pytest.mark.unit

BASE = load_matrix().variant("tiny-test")   # k 2, aime24 3


def with_protocol(**changes):
    return replace(BASE, protocol=replace(BASE.protocol, **changes))


@unit
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


ITEMS = pd.DataFrame([{"benchmark": "arith", "item_id": f"a{n}", "problem": f"What is {n} + 1?"} for n in range(3)]
                     + [{"benchmark": "aime24", "item_id": "x1", "problem": "Find x."}])
SAMPLE_KEY = ["benchmark", "item_id", "sample_index"]


def drawn(variant, items=ITEMS, finished=None) -> pd.DataFrame:
    """The samples the engine step would ask for, as the rows it would store."""
    finished = pd.DataFrame(columns=SAMPLE_KEY) if finished is None else finished
    requests = pending_requests(variant, items, finished)
    return pd.DataFrame([(r.benchmark, r.item_id, r.sample_index) for r in requests], columns=SAMPLE_KEY)


@unit
def test_raising_k_of_one_benchmark_draws_only_its_new_sample_indices():
    stored = drawn(BASE)
    raised = with_protocol(k_by_benchmark={**BASE.protocol.k_by_benchmark, "arith": 3})
    assert raised.settings_hash == BASE.settings_hash   # so the stored samples are found under the same key
    new = drawn(raised, finished=stored)
    assert new.values.tolist() == [["arith", f"a{n}", 2] for n in range(3)]   # indices 0 and 1 are reused
    assert drawn(with_protocol(k=1), finished=stored).empty                   # lowering k draws nothing


@unit
def test_more_items_draw_only_the_new_items():
    stored = drawn(BASE)
    more = pd.concat([ITEMS, pd.DataFrame([{"benchmark": "arith", "item_id": "a9", "problem": "What is 9 + 1?"}])])
    assert drawn(BASE, items=more, finished=stored).values.tolist() == [["arith", "a9", 0], ["arith", "a9", 1]]


def _item(item_id: str) -> dict:
    return {"variant": "v", "benchmark": "arith", "item_id": item_id, "position": int(item_id[1:]),
            "problem": "?", "gold": "1", "gold_raw": "1", "answer_format": "integer", "source": "test",
            "loaded_at": pd.Timestamp("2026-01-01")}


def _key(item_id: str, sample: int, config: str = "h") -> dict:
    return {"variant": "v", "config_hash": config, "benchmark": "arith", "item_id": item_id, "sample_index": sample}


def _generation(item_id: str, sample: int, config: str = "h") -> dict:
    return {**_key(item_id, sample, config), "response": "\\boxed{1}", "completion_tokens": 10, "prompt_tokens": 5,
            "latency_seconds": 0.1, "sampling": "{}", "run_id": "r", "created_at": pd.Timestamp("2026-01-01")}


def _grade(item_id: str, sample: int, config: str = "h") -> dict:
    # only the third sample of each item is right: a score that counts it is told apart from one that does not
    correct = sample == 2
    return {**_key(item_id, sample, config), "extracted": "1" if correct else "0", "correct": correct,
            "reason": "correct" if correct else "wrong", "graded_at": pd.Timestamp("2026-01-01"),
            "grader_version": GRADER_VERSION}


@pytest.fixture
def three_samples_drawn(tmp_path) -> WarehouseResource:
    """Variant v drew 3 samples of items a0, a1, a2, all graded; the matrix now names a0 and a1 only."""
    warehouse = WarehouseResource(path=str(tmp_path / "w.duckdb"))
    keys = [(item, sample) for item in ("a0", "a1", "a2") for sample in range(3)]
    warehouse.insert_new("benchmark_generations", pd.DataFrame([_generation(*key) for key in keys]))
    warehouse.insert_new("graded_answers", pd.DataFrame([_grade(*key) for key in keys]))
    warehouse.insert_new("benchmark_items", pd.DataFrame([_item("a0"), _item("a1")]))
    return warehouse


def count_k(warehouse: WarehouseResource, k: int) -> None:
    """Record the k the matrix has now, as graded_answers does."""
    variant = replace(BASE, name="v", benchmarks={"arith": 2}, protocol=replace(BASE.protocol, k=k,
                                                                                 k_by_benchmark={}))
    warehouse.replace_partition("benchmark_k", "v", counted_samples(variant))


@unit
def test_lowering_k_scores_only_the_first_k_samples_of_the_items_named_now(three_samples_drawn):
    warehouse = three_samples_drawn
    count_k(warehouse, 3)
    score, _, _ = score_benchmark(warehouse.query(GRADES_SQL, ["v", "h"]))
    assert (score.n_items, score.n_samples, score.correct_samples) == (2, 6, 2)
    count_k(warehouse, 2)
    grades = warehouse.query(GRADES_SQL, ["v", "h"])
    assert sorted(set(grades["sample_index"])) == [0, 1] and sorted(set(grades["item_id"])) == ["a0", "a1"]
    score, by_k, difficulty = score_benchmark(grades)
    assert (score.n_items, score.n_samples, score.correct_samples, score.pass_at_1) == (2, 4, 0, 0.0)
    assert by_k["k"].max() == 2 and (difficulty["samples"] == 2).all()
    per_item = warehouse.query(PER_ITEM_SQL, ["v", "h"])   # the paired comparison with a baseline
    assert per_item["samples"].tolist() == [2, 2] and (per_item["accuracy"] == 0).all()
    usage = warehouse.query(USAGE_SQL, ["v", "h"]).iloc[0]   # what the costs are summed over
    assert (usage["samples"], usage["output_tokens"], usage["correct_answers"]) == (4, 40, 0)


@unit
def test_grading_takes_only_samples_that_count_now(tmp_path):
    warehouse = WarehouseResource(path=str(tmp_path / "w.duckdb"))
    keys = [(item, sample) for item in ("a0", "a1", "a2") for sample in range(3)]
    warehouse.insert_new("benchmark_generations", pd.DataFrame([_generation(*key) for key in keys]))
    warehouse.insert_new("benchmark_items", pd.DataFrame([_item("a0"), _item("a1")]))
    warehouse.insert_new("graded_answers", pd.DataFrame([_grade("a0", 0)]))
    count_k(warehouse, 2)
    todo = warehouse.query(UNGRADED_SQL, ["v", "h", GRADER_VERSION]).sort_values(["item_id", "sample_index"])
    assert todo[["item_id", "sample_index"]].values.tolist() == [["a0", 1], ["a1", 0], ["a1", 1]]


def hash_with_k(variant) -> str:
    """The config hash an older yardstick stored the variant's samples under (on weights "weights-1"), written out
    as it made it: that history is fixed, whatever the current hash becomes."""
    runtime_only = {"concurrency", "startup_timeout_s", "port", "cpu_kvcache_space_gib", "retry"}
    identity = {"model": asdict(variant.model), "quantization": variant.quantization.identity(),
                "engine": {"kind": variant.engine.kind,
                           "options": {k: v for k, v in variant.engine.options.items() if k not in runtime_only}},
                "protocol": asdict(variant.protocol)}
    settings = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:16]
    return hashlib.sha256(f"{settings}:weights-1".encode()).hexdigest()[:16]


def _snapshot(warehouse: WarehouseResource, variant) -> str:
    """The variant's snapshot recorded as model_snapshot records it; the key of its samples."""
    record_snapshot(warehouse, variant, {"variant": variant.name, "source": "local", "fingerprint": "weights-1"})
    return sample_key_of(warehouse, variant.name)


@unit
def test_samples_an_older_yardstick_keyed_with_k_are_adopted_not_drawn_again(tmp_path):
    """An older yardstick keyed samples by a hash that covered k; under the same k, they are the current hash's."""
    warehouse = WarehouseResource(path=str(tmp_path / "w.duckdb"))
    variant = replace(BASE, name="v")
    with_k = hash_with_k(variant)
    keys = [("a0", 0), ("a0", 1), ("a1", 0)]
    warehouse.insert_new("benchmark_generations", pd.DataFrame([_generation(*key, with_k) for key in keys]))
    warehouse.insert_new("graded_answers", pd.DataFrame([_grade(*key, with_k) for key in keys]))
    other_k = pd.DataFrame([_generation("a0", 0, "drawn-under-another-k")])   # not this matrix's: left alone
    warehouse.insert_new("benchmark_generations", other_k)

    current = _snapshot(warehouse, variant)
    assert current != with_k and _snapshot(warehouse, variant) == current   # the same on every snapshot
    for table in ("benchmark_generations", "graded_answers"):
        rows = warehouse.query(f"SELECT config_hash, item_id, sample_index FROM {table} ORDER BY ALL")
        expected = [[current, *key] for key in keys]
        if table == "benchmark_generations":
            expected = [*expected, ["drawn-under-another-k", "a0", 0]]
        assert sorted(rows.values.tolist()) == sorted(expected)


@unit
def test_an_adopted_grade_always_comes_with_its_generation(tmp_path):
    """Where the current hash already has a sample, the older one stays where it is, grade included."""
    warehouse = WarehouseResource(path=str(tmp_path / "w.duckdb"))
    variant = replace(BASE, name="v")
    current = _snapshot(warehouse, variant)
    with_k = hash_with_k(variant)
    warehouse.insert_new("benchmark_generations", pd.DataFrame([_generation("a0", 0, current),
                                                                _generation("a0", 0, with_k)]))
    warehouse.insert_new("graded_answers", pd.DataFrame([_grade("a0", 0, with_k)]))   # current's is ungraded
    _snapshot(warehouse, variant)
    assert warehouse.query("SELECT config_hash FROM graded_answers")["config_hash"].tolist() == [with_k]
    assert sorted(warehouse.query("SELECT config_hash FROM benchmark_generations")["config_hash"]) == sorted(
        [current, with_k])


# The test matrix's tiny-test, smaller: two benchmarks, one load level.
SMALL_MATRIX = """
variants:
  tiny-test:
    model: {{generate: tiny-r1-qwen2}}
    engine: {{kind: transformers, device: cpu, concurrency: 4, startup_timeout_s: 120,
             cb_num_blocks: 128, cb_block_size: 32, cb_max_batch_tokens: 512}}
    hardware: cpu-2vcpu
    protocol: {{preset: deepseek-r1, k: {k}, k_by_benchmark: {k_by_benchmark}, max_tokens: 16}}
    benchmarks: {{arith: 2, gsm8k: 1}}
    serving: {{concurrency: [1], requests_per_level: 1, input_len: 8, output_len: 4}}
"""


@pytest.mark.integration
@needs_shared
def test_changing_k_through_the_pipeline_keeps_every_sample_and_counts_the_first_k(tiny_model, tmp_path):
    warehouse = WarehouseResource(path=str(tmp_path / "warehouse.duckdb"))
    job = defs.resolve_implicit_global_asset_job_def()
    mirror = defs.resources["matrix"].benchmark_mirror

    def run_with(k: int, k_by_benchmark: str) -> dict:
        matrix = tmp_path / f"matrix-{k}-{len(k_by_benchmark)}.yaml"
        matrix.write_text(SMALL_MATRIX.format(k=k, k_by_benchmark=k_by_benchmark))
        result = job.execute_in_process(partition_key="tiny-test", resources={
            **defs.resources, "warehouse": warehouse,
            "matrix": MatrixResource(path=str(matrix), benchmark_mirror=mirror)})
        # the blocking check passes; the regression checks (WARN) compare serving figures, which vary run to run
        assert result.success and all(check.passed for check in result.get_asset_check_evaluations()
                                      if check.check_name == "benchmark_scores_are_valid")
        return {m.asset_key.to_user_string(): m.metadata
                for m in result.asset_materializations_for_node("engine_step")}["benchmark_generations"]

    def stored() -> pd.DataFrame:
        return warehouse.query("SELECT benchmark, item_id, sample_index, run_id FROM benchmark_generations "
                               "ORDER BY ALL")

    def scored() -> dict:
        scores = warehouse.query("SELECT benchmark, k, n_samples FROM benchmark_scores ORDER BY ALL")
        return {row.benchmark: (row.k, row.n_samples) for row in scores.itertuples()}

    first = run_with(2, "{}")
    drawn_first = stored()
    assert first["generated_this_run"].value == 6 and scored() == {"arith": (2, 4), "gsm8k": (2, 2)}

    raised = run_with(2, "{arith: 3}")   # k 3 after k 2 for arith alone: one new sample per arith item
    assert (raised["generated_this_run"].value, raised["reused"].value) == (2, 6)
    after = stored()
    assert len(after.merge(drawn_first)) == len(drawn_first)   # the first run's samples, kept as drawn
    new = after[~after["run_id"].isin(drawn_first["run_id"])]
    assert new[["benchmark", "sample_index"]].values.tolist() == [["arith", 2], ["arith", 2]]
    assert scored() == {"arith": (3, 6), "gsm8k": (2, 2)}

    lowered = run_with(1, "{}")   # nothing drawn, nothing deleted; only the first sample of each item counts
    assert lowered["generated_this_run"].value == 0 and len(stored()) == 8
    assert scored() == {"arith": (1, 2), "gsm8k": (1, 1)}
    difficulty = warehouse.query("SELECT samples FROM item_difficulty")
    assert (difficulty["samples"] == 1).all()
    assert warehouse.query("SELECT sum(samples) AS n FROM benchmark_costs").iloc[0]["n"] == 3
