"""Warehouse writes are idempotent on their natural keys, and the schema can be applied any number of times."""

import threading

import duckdb
import pandas as pd

from resources.warehouse import WarehouseResource
from warehouse import apply_schema


def _generation(sample: int, response: str) -> dict:
    return {"variant": "v", "config_hash": "h", "benchmark": "b", "item_id": "1", "sample_index": sample,
            "response": response, "latency_seconds": 0.1, "sampling": "{}", "run_id": "r",
            "created_at": pd.Timestamp("2026-01-01")}


def test_insert_new_keeps_existing_rows_and_skips_duplicates(tmp_path):
    warehouse = WarehouseResource(path=str(tmp_path / "w.duckdb"))
    assert warehouse.insert_new("benchmark_generations", pd.DataFrame([_generation(0, "first")])) == 1
    added = warehouse.insert_new("benchmark_generations",
                                 pd.DataFrame([_generation(0, "second"), _generation(1, "other")]))
    assert added == 1
    rows = warehouse.query("SELECT sample_index, response FROM benchmark_generations ORDER BY 1")
    assert rows.values.tolist() == [[0, "first"], [1, "other"]]


def test_replace_partition_touches_only_its_variant(tmp_path):
    warehouse = WarehouseResource(path=str(tmp_path / "w.duckdb"))
    timing = {"profile": "concurrency", "load": 1.0, "request_index": 0, "ok": True}
    warehouse.replace_partition("serving_request_timings", "a", pd.DataFrame([{**timing, "variant": "a"}]))
    warehouse.replace_partition("serving_request_timings", "b", pd.DataFrame([{**timing, "variant": "b"}]))
    warehouse.replace_partition("serving_request_timings", "a",
                                pd.DataFrame([{**timing, "variant": "a", "load": 2.0}]))
    rows = warehouse.query("SELECT variant, load FROM serving_request_timings ORDER BY 1")
    assert rows.values.tolist() == [["a", 2.0], ["b", 1.0]]


def test_schema_applies_twice_and_readers_open_read_only(tmp_path):
    path = tmp_path / "w.duckdb"
    with duckdb.connect(str(path)) as connection:
        apply_schema(connection)
        apply_schema(connection)
    with WarehouseResource(path=str(path)).connect(read_only=True) as reader:
        assert reader.execute("SELECT count(*) FROM leaderboard").fetchone() == (0,)


def test_threads_reading_while_a_step_writes_never_collide(tmp_path):
    """A sensor or a test polling the file while a step writes: every open, schema and write succeeds."""
    warehouse = WarehouseResource(path=str(tmp_path / "w.duckdb"))
    row = {"variant": "a", "profile": "concurrency", "load": 1.0, "request_index": 0, "ok": True}
    errors, done = [], threading.Event()

    def poll() -> None:
        while not done.is_set():
            try:
                warehouse.query("SELECT count(*) FROM serving_request_timings")
            except duckdb.Error as error:
                errors.append(error)

    readers = [threading.Thread(target=poll) for _ in range(2)]
    for reader in readers:
        reader.start()
    try:
        for _ in range(150):
            warehouse.replace_partition("serving_request_timings", "a", pd.DataFrame([row]))
    finally:
        done.set()
        for reader in readers:
            reader.join()
    assert errors == []
