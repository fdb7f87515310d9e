"""Accuracy metrics over graded samples: pass@1 (mean over k) with a bootstrap interval, and cons@k."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np
import pandas as pd

from assets.grading.extraction import as_number

BOOTSTRAP_RESAMPLES = 2000
BOOTSTRAP_SEED = 0


@dataclass(frozen=True)
class BenchmarkScore:
    n_items: int
    n_samples: int
    pass_at_1: float
    pass_at_1_low: float
    pass_at_1_high: float
    cons_at_k: float
    correct_samples: int


def bootstrap_interval(
    per_item: np.ndarray, confidence: float = 0.95, resamples: int = BOOTSTRAP_RESAMPLES, seed: int = BOOTSTRAP_SEED
) -> tuple[float, float]:
    """Percentile interval of the mean, resampling items (not samples: samples of one item are correlated)."""
    if len(per_item) == 0:
        raise ValueError("no items to score")
    rng = np.random.default_rng(seed)
    means = rng.choice(per_item, size=(resamples, len(per_item)), replace=True).mean(axis=1)
    tail = (1 - confidence) / 2
    low, high = np.quantile(means, [tail, 1 - tail])
    point = float(per_item.mean())
    return min(float(low), point), max(float(high), point)


def answer_class(extracted: str) -> str:
    """Answers that are the same number vote together ('27', '27.0', '27.00')."""
    number = as_number(extracted)
    return repr(number) if number is not None else extracted.strip()


def consensus_correct(extracted: list[str | None], correct: list[bool]) -> bool:
    """Is the most common answer (first seen wins a tie) a correct one? No answers at all is a miss."""
    votes = Counter()
    first_seen: dict[str, int] = {}
    verdict: dict[str, bool] = {}
    for index, (answer, is_correct) in enumerate(zip(extracted, correct)):
        if answer is None:
            continue
        cls = answer_class(answer)
        votes[cls] += 1
        first_seen.setdefault(cls, index)
        verdict[cls] = verdict.get(cls, False) or is_correct
    if not votes:
        return False
    winner = max(votes, key=lambda cls: (votes[cls], -first_seen[cls]))
    return verdict[winner]


def score_benchmark(grades: pd.DataFrame) -> BenchmarkScore:
    """`grades` has one row per sample: item_id, sample_index, correct, extracted."""
    ordered = grades.sort_values(["item_id", "sample_index"])
    per_item = ordered.groupby("item_id", sort=True)
    pass_rates = per_item["correct"].mean().to_numpy(dtype=float)
    low, high = bootstrap_interval(pass_rates)
    consensus = [
        consensus_correct([a if isinstance(a, str) else None for a in group["extracted"]], list(group["correct"]))
        for _, group in per_item
    ]
    return BenchmarkScore(
        n_items=len(pass_rates),
        n_samples=len(ordered),
        pass_at_1=float(pass_rates.mean()),
        pass_at_1_low=low,
        pass_at_1_high=high,
        cons_at_k=float(np.mean(consensus)),
        correct_samples=int(ordered["correct"].sum()),
    )
