"""arith: the synthetic arithmetic benchmark the offline tiny model is evaluated on (assets.benchmarks.synthetic)."""

from __future__ import annotations

from assets.benchmarks.benchmark import Benchmark, integer_gold
from assets.benchmarks.sources import Generated
from assets.benchmarks.synthetic import arithmetic_items
from assets.grading.formats import INTEGER

ARITH = Benchmark("arith", Generated(arithmetic_items), INTEGER, integer_gold, id_field="id")
