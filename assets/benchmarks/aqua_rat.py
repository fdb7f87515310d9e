"""AQuA-RAT: algebra word problems whose options already carry their letter ('A)5', 'B)6')."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from assets.benchmarks.benchmark import Benchmark, choice_gold
from assets.benchmarks.sources import HubDataset
from assets.grading.formats import CHOICE


@dataclass(frozen=True)
class PrefixedOptions(Benchmark):
    def item(self, row: dict, position: int) -> tuple[str, Any]:
        return f"{row['question']}\n\n" + "\n".join(row["options"]), row["correct"]


AQUA_RAT = PrefixedOptions("aqua_rat", HubDataset("deepmind/aqua_rat", "aqua_rat_test.jsonl", config="raw"),
                           CHOICE, choice_gold, fields=("question", "options", "correct"))
