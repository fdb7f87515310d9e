"""The scoring stage's SQL (assets/scoring/defs.py): only the samples that count now are scored and costed."""


import pandas as pd
import pytest

from assets.cost.defs import USAGE_SQL
from assets.scoring.defs import GRADES_SQL, PER_ITEM_SQL
from assets.scoring.metrics import score_benchmark
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
