"""A benchmark's items: its rows, read from its source, checked and turned into problems with normalised gold."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from assets.benchmarks.benchmark import Benchmark
from assets.benchmarks.registry import benchmark_named
from assets.benchmarks.sources import BenchmarkDataError, source_rows


def normalise_rows(benchmark: Benchmark, rows: Iterable[dict], source: str, limit: int | None) -> list[dict]:
    """Turn raw dataset rows into items, the first `limit` kept. Every row is checked, those past the limit too: a
    row lacking a field, a bad gold answer or an item id seen before is an error naming the source and the row."""
    needed = list(benchmark.fields) + ([benchmark.id_field] if benchmark.id_field else [])
    items, seen = [], {}
    for position, row in enumerate(rows):
        missing = [name for name in needed if row.get(name) is None]
        if missing:
            raise BenchmarkDataError(
                f"{source} row {position + 1} lacks field(s) {missing} needed by benchmark '{benchmark.name}'; "
                f"fields present: {sorted(row)}"
            )
        item_id = str(row[benchmark.id_field]) if benchmark.id_field else str(position)
        if item_id in seen:
            raise BenchmarkDataError(f"{source} row {position + 1}: item id {item_id!r} is also row {seen[item_id]}; "
                                     f"each item of benchmark '{benchmark.name}' needs an id of its own")
        seen[item_id] = position + 1
        problem, raw_gold = benchmark.item(row, position)
        try:
            gold = benchmark.normalise_gold(raw_gold)
        except ValueError as error:
            raise BenchmarkDataError(f"{source} row {position + 1}: bad gold answer: {error}") from error
        if limit is not None and position >= limit:
            continue
        items.append({
            "benchmark": benchmark.name,
            "item_id": item_id,
            "position": position,
            "problem": problem,
            "gold": gold,
            "gold_raw": str(raw_gold),
            "answer_format": benchmark.answer_format.name,
            "source": source,
        })
    return items


def load_items(name: str, mirror_dir: str | Path | None, limit: int | None, options: dict | None = None
               ) -> list[dict]:
    """The first `limit` items (all when None) of a benchmark: generated, from the mirror folder if given,
    else from the hub; `options` narrow a benchmark that takes them (LiveCodeBench's release and dates)."""
    benchmark = benchmark_named(name)
    try:
        options = benchmark.checked_options(options)
    except ValueError as error:
        raise BenchmarkDataError(str(error)) from None
    rows, source = source_rows(benchmark.source, name, mirror_dir, limit, options)
    kept = (row for row in rows if benchmark.keeps(row, options))
    return normalise_rows(benchmark, kept, source, limit)
