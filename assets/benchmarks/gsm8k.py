"""GSM8K: grade-school word problems; the gold ends its worked solution as '#### n'."""

from __future__ import annotations

from typing import Any

from assets.benchmarks.benchmark import Benchmark, refuse_non_finite
from assets.benchmarks.sources import HubDataset
from assets.grading.formats import NUMBER


def gsm8k_gold(raw: Any) -> str:
    """GSM8K answers end in '#### n', sometimes with thousands separators; a bare number is taken as is."""
    text = str(raw)
    if "####" in text:
        text = text.rsplit("####", 1)[1]
    number = text.strip().replace(",", "")
    try:
        float(number)
    except ValueError:
        raise ValueError(f"GSM8K answer has no '####' marker nor is a number: {str(raw)[-80:]!r}") from None
    refuse_non_finite(number)
    return number


GSM8K = Benchmark("gsm8k", HubDataset("openai/gsm8k", "gsm8k_test.jsonl", config="main"), NUMBER, gsm8k_gold,
                  fields=("question", "answer"))
