"""MMLU's STEM subjects: four options listed 'A. …' under the question; the gold is the right option's index.

The hub has all of MMLU in one config: its rows are narrowed to the STEM subjects (the mirror file holds only
those)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from assets.benchmarks.benchmark import Benchmark, choice_gold, lettered
from assets.benchmarks.sources import HubDataset
from assets.grading.formats import CHOICE

STEM_SUBJECTS = frozenset({
    "abstract_algebra", "astronomy", "college_biology", "college_chemistry", "college_computer_science",
    "college_mathematics", "college_physics", "computer_security", "conceptual_physics",
    "electrical_engineering", "elementary_mathematics", "high_school_biology", "high_school_chemistry",
    "high_school_computer_science", "high_school_mathematics", "high_school_physics", "high_school_statistics",
    "machine_learning",
})


def is_stem(row: dict) -> bool:
    return row["type"] in STEM_SUBJECTS


@dataclass(frozen=True)
class MultipleChoice(Benchmark):
    """The question, then its options lettered; the gold is the index or letter in `answer`."""

    def item(self, row: dict, position: int) -> tuple[str, Any]:
        return f"{row['question']}\n\n{lettered(list(row['choices']))}", row["answer"]


MMLU_STEM = MultipleChoice(
    "mmlu_stem",
    HubDataset("cais/mmlu", "mmlu_stem.jsonl", config="all", renames={"subject": "type"}, keep=is_stem),
    CHOICE, choice_gold, fields=("question", "choices", "answer"))
