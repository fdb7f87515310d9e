"""Every benchmark by name. Adding one: its own module (a `Benchmark` instance) and one entry here."""

from __future__ import annotations

from assets.benchmarks.aime import AIME24, AIME25
from assets.benchmarks.amc23 import AMC23
from assets.benchmarks.aqua_rat import AQUA_RAT
from assets.benchmarks.arith import ARITH
from assets.benchmarks.benchmark import Benchmark
from assets.benchmarks.gpqa_diamond import GPQA_DIAMOND
from assets.benchmarks.gsm8k import GSM8K
from assets.benchmarks.humaneval import HUMANEVAL
from assets.benchmarks.livecodebench import LIVECODEBENCH
from assets.benchmarks.math500 import MATH500
from assets.benchmarks.mmlu_stem import MMLU_STEM
from assets.benchmarks.sources import BenchmarkDataError

BENCHMARKS: dict[str, Benchmark] = {
    benchmark.name: benchmark
    for benchmark in (GSM8K, MATH500, AIME24, AIME25, AMC23, MMLU_STEM, AQUA_RAT, GPQA_DIAMOND, HUMANEVAL,
                      LIVECODEBENCH, ARITH)
}


def benchmark_named(name: str) -> Benchmark:
    if name not in BENCHMARKS:
        raise BenchmarkDataError(f"benchmark '{name}' unknown; known: {', '.join(sorted(BENCHMARKS))}")
    return BENCHMARKS[name]
