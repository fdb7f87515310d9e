"""Ingest at scale: generation rows written into the warehouse as the engine step writes them (batches through
`WarehouseResource.insert_new`, which skips rows already there), into a DuckDB file and into a DuckLake catalog
(a private PostgreSQL, Parquet in a folder), against inserting the same rows one statement per row.

    .venv/bin/python -m tests.measure.ingest_scale --rows 1000000 --batch 10000 --row-by-row 2000

Prints rows/s for each; the row-by-row figure is measured on its own smaller count (one statement per row is
too slow to run a million times) and compared per row.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from datetime import datetime
from pathlib import Path

import pandas as pd

from resources.warehouse import WarehouseResource
from tests.instruments.postgres import running_postgres

COLUMNS = ("variant", "config_hash", "benchmark", "item_id", "sample_index", "response", "reasoning_content",
           "finish_reason", "prompt_tokens", "completion_tokens", "reasoning_tokens", "answer_tokens",
           "latency_seconds", "sampling", "seed", "attempts", "run_id", "created_at")


def generation_rows(start: int, count: int, variant: str = "scale") -> pd.DataFrame:
    """`count` generation rows shaped like the engine step's: a 300-character response and reasoning each."""
    index = pd.RangeIndex(start, start + count)
    return pd.DataFrame({
        "variant": variant, "config_hash": "c0ffee", "benchmark": "math500",
        "item_id": (index // 8).astype(str), "sample_index": index % 8,
        "response": "The answer is \\boxed{42}. " * 12, "reasoning_content": "Let me think step by step. " * 11,
        "finish_reason": "stop", "prompt_tokens": 120, "completion_tokens": 900, "reasoning_tokens": 700,
        "answer_tokens": 200, "latency_seconds": 3.5, "sampling": '{"temperature": 0.6, "top_p": 0.95}',
        "seed": index.astype("int64"), "attempts": 1, "run_id": "scale-run", "created_at": datetime(2026, 12, 2),
    }, columns=list(COLUMNS))


def batched(warehouse: WarehouseResource, rows: int, batch: int) -> float:
    started = time.perf_counter()
    for start in range(0, rows, batch):
        written = warehouse.insert_new("benchmark_generations", generation_rows(start, min(batch, rows - start)))
        assert written == min(batch, rows - start), "a batch of new rows was not written whole"
    return time.perf_counter() - started


def row_by_row(warehouse: WarehouseResource, rows: int) -> float:
    frame = generation_rows(0, rows, variant="row-by-row")
    statement = (f"INSERT INTO benchmark_generations ({', '.join(COLUMNS)}) "
                 f"VALUES ({', '.join('?' for _ in COLUMNS)})")
    started = time.perf_counter()
    with warehouse.connect() as connection:
        for row in frame.itertuples(index=False):
            connection.execute(statement, list(row))
    return time.perf_counter() - started


def measure(name: str, warehouse: WarehouseResource, rows: int, batch: int, single: int) -> None:
    warehouse.query("SELECT 1")   # the schema made before timing
    seconds = batched(warehouse, rows, batch)
    count = warehouse.query("SELECT count(*) AS n FROM benchmark_generations WHERE variant = 'scale'")["n"][0]
    assert count == rows, f"{count} rows landed, {rows} written"
    single_seconds = row_by_row(warehouse, single)
    batched_rate, single_rate = rows / seconds, single / single_seconds
    print(f"{name}: {rows} rows in batches of {batch}: {seconds:.1f} s, {batched_rate:,.0f} rows/s; "
          f"row by row ({single} rows, one INSERT each): {single_rate:,.0f} rows/s; "
          f"batched is {batched_rate / single_rate:,.0f}x faster")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=10_000)
    parser.add_argument("--row-by-row", type=int, default=2_000)
    parser.add_argument("--only", choices=("file", "lake"))
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="yardstick-ingest-"))
    if args.only != "lake":
        measure("DuckDB file", WarehouseResource(path=str(folder / "warehouse.duckdb")), args.rows, args.batch,
                args.row_by_row)
    if args.only != "file":
        with running_postgres() as server:
            lake = WarehouseResource(path=f"ducklake:postgres:{server.create_database('ingest')}",
                                     lake_data=str(folder / "lake-data"))
            measure("DuckLake (PostgreSQL catalog, Parquet folder)", lake, args.rows, args.batch, args.row_by_row)


if __name__ == "__main__":
    main()
