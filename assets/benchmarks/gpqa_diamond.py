"""GPQA Diamond: graduate-level science questions, stored as the right answer and three wrong ones."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from assets.benchmarks.benchmark import LETTERS, Benchmark, choice_gold, lettered
from assets.benchmarks.sources import HubDataset
from assets.grading.formats import CHOICE

OPTION_FIELDS = ("Correct Answer", "Incorrect Answer 1", "Incorrect Answer 2", "Incorrect Answer 3")


@dataclass(frozen=True)
class ShuffledOptions(Benchmark):
    def item(self, row: dict, position: int) -> tuple[str, Any]:
        """The options shuffled with a seed per row, so every run (and every engine) sees the same order."""
        options = [row[name] for name in OPTION_FIELDS]
        order = list(range(len(options)))
        random.Random(f"gpqa:{row.get('Record ID', position)}").shuffle(order)
        shuffled = [options[i].strip() for i in order]
        return f"{row['Question'].strip()}\n\n{lettered(shuffled)}", LETTERS[order.index(0)]


GPQA_DIAMOND = ShuffledOptions(
    "gpqa_diamond", HubDataset("Idavidrein/gpqa", "gpqa_diamond.jsonl", config="gpqa_diamond", split="train"),
    CHOICE, choice_gold, fields=("Question", *OPTION_FIELDS), id_field="Record ID")
