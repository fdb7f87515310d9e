"""AMC 2023: integer answers, stored as floats ('27.0'); the hub calls the problem `question`."""

from __future__ import annotations

from assets.benchmarks.benchmark import Benchmark, integer_gold
from assets.benchmarks.sources import HubDataset
from assets.grading.formats import INTEGER

AMC23 = Benchmark("amc23", HubDataset("math-ai/amc23", "amc23.jsonl", renames={"question": "problem"}), INTEGER,
                  integer_gold, id_field="id")
