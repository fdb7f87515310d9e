"""The grading stage's SQL (assets/grading/defs.py): only samples that count now are taken for grading."""


import pandas as pd
import pytest

from assets.grading.defs import UNGRADED_SQL
from assets.grading.version import GRADER_VERSION
from resources.warehouse import WarehouseResource
from tests.samples import count_k, generation_row, grade_row, item_row

pytestmark = pytest.mark.unit


def test_grading_takes_only_samples_that_count_now(tmp_path):
    warehouse = WarehouseResource(path=str(tmp_path / "w.duckdb"))
    keys = [(item, sample) for item in ("a0", "a1", "a2") for sample in range(3)]
    warehouse.insert_new("benchmark_generations", pd.DataFrame([generation_row(*key) for key in keys]))
    warehouse.insert_new("benchmark_items", pd.DataFrame([item_row("a0"), item_row("a1")]))
    warehouse.insert_new("graded_answers", pd.DataFrame([grade_row("a0", 0)]))
    count_k(warehouse, 2)
    todo = warehouse.query(UNGRADED_SQL, ["v", "h", GRADER_VERSION]).sort_values(["item_id", "sample_index"])
    assert todo[["item_id", "sample_index"]].values.tolist() == [["a0", 1], ["a1", 0], ["a1", 1]]
