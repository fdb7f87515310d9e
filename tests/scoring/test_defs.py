"""The scoring stage (assets/scoring/defs.py): only the samples that count now are scored and costed; each variant's
quantization loss is measured against each of its baselines."""

import dagster as dg
import pandas as pd
import pytest

from assets.cost.defs import USAGE_SQL
from assets.matrix import matrix_path
from assets.scoring.defs import GRADES_SQL, PER_ITEM_SQL, quantization_loss
from assets.scoring.metrics import score_benchmark
from resources.matrix import MatrixResource
from resources.warehouse import WarehouseResource
from tests.samples import count_k, generation_row, grade_row, item_row

pytestmark = pytest.mark.unit


@pytest.fixture
def three_samples_drawn(tmp_path) -> WarehouseResource:
    """Variant v drew 3 samples of items a0, a1, a2, all graded; the matrix now names a0 and a1 only."""
    warehouse = WarehouseResource(path=str(tmp_path / "w.duckdb"))
    keys = [(item, sample) for item in ("a0", "a1", "a2") for sample in range(3)]
    warehouse.insert_new("benchmark_generations", pd.DataFrame([generation_row(*key) for key in keys]))
    warehouse.insert_new("graded_answers", pd.DataFrame([grade_row(*key) for key in keys]))
    warehouse.insert_new("benchmark_items", pd.DataFrame([item_row("a0"), item_row("a1")]))
    return warehouse


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


# Variants of the test matrix with the vLLM one as the common reference: tiny-test-w8a16 (transformers) is compared
# with its twin tiny-test and with the reference, tiny-test (bf16 on transformers) with the reference alone. Each
# answered items a0..a3 once, right where 1: pass@1 1.0, 0.75 and 0.5.
CORRECT = {"tiny-test-vllm": (1, 1, 1, 1), "tiny-test": (1, 1, 1, 0), "tiny-test-w8a16": (1, 1, 0, 0)}


@pytest.fixture
def scored(tmp_path) -> tuple[MatrixResource, WarehouseResource]:
    path = tmp_path / "matrix.yaml"
    path.write_text("reference: tiny-test-vllm\n" + matrix_path().read_text())   # the test matrix
    warehouse = WarehouseResource(path=str(tmp_path / "w.duckdb"))
    for variant, correct in CORRECT.items():
        items = [f"a{index}" for index in range(len(correct))]
        warehouse.query("INSERT INTO model_snapshots (variant, source, fingerprint, config_hash, recorded_at) "
                        "VALUES (?, 'generated', 'f', ?, now())", [variant, f"cfg-{variant}"])
        warehouse.replace_partition("benchmark_items", variant, pd.DataFrame(
            [{**item_row(item), "variant": variant} for item in items]))
        warehouse.upsert("benchmark_k", pd.DataFrame([{"variant": variant, "benchmark": "arith", "k": 1}]))
        keys = {"variant": variant, "config_hash": f"cfg-{variant}"}
        warehouse.insert_new("benchmark_generations", pd.DataFrame(
            [{**generation_row(item, 0), **keys} for item in items]))
        warehouse.insert_new("graded_answers", pd.DataFrame(
            [{**grade_row(item, 0), **keys, "correct": bool(right), "reason": "correct" if right else "wrong"}
             for item, right in zip(items, correct, strict=True)]))
    return MatrixResource(path=str(path)), warehouse


def _loss(scored, variant: str) -> tuple[dg.ExecuteInProcessResult, dict[str, tuple]]:
    matrix, warehouse = scored
    result = dg.materialize([quantization_loss], partition_key=variant,
                            resources={"matrix": matrix, "warehouse": warehouse})
    rows = warehouse.query("SELECT * FROM quantization_loss WHERE variant = ?", [variant])
    return result, {row["relation"]: (row["baseline"], row["benchmark"], row["n_items"], row["delta"])
                    for row in rows.to_dict("records")}


def test_quantization_loss_has_a_row_per_baseline_twin_and_common_reference(scored):
    _, rows = _loss(scored, "tiny-test-w8a16")
    assert rows == {"twin": ("tiny-test", "arith", 4, pytest.approx(-0.25)),
                    "reference": ("tiny-test-vllm", "arith", 4, pytest.approx(-0.5))}
    _, rows = _loss(scored, "tiny-test")   # unquantized on another engine than the reference: the engine's effect
    assert rows == {"reference": ("tiny-test-vllm", "arith", 4, pytest.approx(-0.25))}
    result, rows = _loss(scored, "tiny-test-vllm")   # the reference itself
    assert rows == {}
    assert "no baseline" in result.asset_materializations_for_node("quantization_loss")[0].metadata["skipped"].value


def test_a_baseline_not_scored_yet_is_left_out_and_the_other_compared(scored):
    _, warehouse = scored
    warehouse.query("DELETE FROM model_snapshots WHERE variant = 'tiny-test'")
    result, rows = _loss(scored, "tiny-test-w8a16")
    assert rows == {"reference": ("tiny-test-vllm", "arith", 4, pytest.approx(-0.5))}
    metadata = result.asset_materializations_for_node("quantization_loss")[0].metadata
    assert "twin 'tiny-test' has no graded answers yet" in metadata["skipped"].value
