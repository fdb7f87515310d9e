"""MATH-500: OpenAI's PRM800K subset of the MATH test split; LaTeX answers."""

from __future__ import annotations

from assets.benchmarks.benchmark import Benchmark, latex_gold
from assets.benchmarks.sources import HubDataset
from assets.grading.formats import LATEX

MATH500 = Benchmark("math500", HubDataset("HuggingFaceH4/MATH-500", "math500.jsonl"), LATEX, latex_gold,
                    id_field="unique_id")
