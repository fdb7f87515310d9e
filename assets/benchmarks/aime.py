"""AIME 2024 and 2025: integer answers 0-999 (the 2024 set writes them zero-padded, '025')."""

from __future__ import annotations

from assets.benchmarks.benchmark import Benchmark, integer_gold
from assets.benchmarks.sources import HubDataset
from assets.grading.formats import INTEGER

AIME24 = Benchmark("aime24", HubDataset("HuggingFaceH4/aime_2024", "aime24.jsonl", split="train"), INTEGER,
                   integer_gold, id_field="id")
AIME25 = Benchmark("aime25", HubDataset("math-ai/aime25", "aime25.jsonl"), INTEGER, integer_gold, id_field="id")
