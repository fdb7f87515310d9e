"""Accuracy metrics over graded samples: pass@1 (mean over k) and unbiased pass@k with bootstrap intervals over
items, cons@k as the majority over equivalence classes of answers, and per-item difficulty."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from assets.grading.extraction import as_number

BOOTSTRAP_RESAMPLES = 2000
BOOTSTRAP_SEED = 0
MIN_ITEMS_FOR_SIGNIFICANCE = 10


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


def same_number_or_text(first: str, second: str) -> bool:
    return answer_class(first) == answer_class(second)


def consensus(
    extracted: Sequence[str | None], correct: Sequence[bool], same: Callable[[str, str], bool] = same_number_or_text
) -> tuple[str | None, bool]:
    """The majority answer over equivalence classes, and whether it is correct.

    Correct answers all equal the gold, so they form one class; wrong answers join a class when `same` says
    they are equal (so "\\frac{1}{2}" and "0.5" vote together). Ties go to the class seen first; no answers
    at all is a miss.
    """
    classes: list[list] = []  # [representative, votes, correct]
    for answer, is_correct in zip(extracted, correct, strict=True):
        if answer is None:
            continue
        for cls in classes:
            if cls[2] == is_correct and (is_correct or answer == cls[0] or same(cls[0], answer)):
                cls[1] += 1
                break
        else:
            classes.append([answer, 1, bool(is_correct)])
    if not classes:
        return None, False
    winner = max(classes, key=lambda cls: cls[1])  # max keeps the first of equals
    return winner[0], winner[2]


def pass_at_k(samples: int, correct: int, k: int) -> float:
    """Unbiased pass@k = 1 - C(n-c, k) / C(n, k): the chance that k of the n samples include a correct one."""
    if not 0 < k <= samples:
        raise ValueError(f"pass@{k} needs 1 <= k <= n samples, got n={samples}")
    if samples - correct < k:
        return 1.0
    return float(1.0 - np.prod(1.0 - k / np.arange(samples - correct + 1, samples + 1)))


def pass_at_k_levels(samples: int) -> list[int]:
    """The k's reported for n samples: powers of two up to n, and n itself."""
    levels = [2**i for i in range(int(np.log2(samples)) + 1)] if samples else []
    return sorted(set(levels + ([samples] if samples else [])))


def score_benchmark(
    grades: pd.DataFrame, same: Callable[[str, str], bool] = same_number_or_text
) -> tuple[BenchmarkScore, pd.DataFrame, pd.DataFrame]:
    """`grades`: one row per sample with item_id, sample_index, correct, extracted.

    Returns the headline score, pass@k per k (with intervals), and the per-item difficulty table.
    """
    ordered = grades.sort_values(["item_id", "sample_index"])
    items = []
    for item_id, group in ordered.groupby("item_id", sort=True):
        answers = [a if isinstance(a, str) else None for a in group["extracted"]]
        majority, majority_correct = consensus(answers, list(group["correct"]), same)
        items.append({"item_id": item_id, "samples": len(group), "correct": int(group["correct"].sum()),
                      "pass_rate": float(group["correct"].mean()), "majority_answer": majority,
                      "majority_correct": majority_correct})
    difficulty = pd.DataFrame(items)
    pass_rates = difficulty["pass_rate"].to_numpy(dtype=float)
    low, high = bootstrap_interval(pass_rates)
    fewest = int(difficulty["samples"].min())
    pass_k_rows = []
    for k in pass_at_k_levels(fewest):
        per_item = np.array([pass_at_k(n, c, k)
                             for n, c in zip(difficulty["samples"], difficulty["correct"], strict=True)])
        k_low, k_high = bootstrap_interval(per_item)
        pass_k_rows.append({"k": k, "estimate": float(per_item.mean()), "low": k_low, "high": k_high})
    score = BenchmarkScore(
        n_items=len(difficulty),
        n_samples=len(ordered),
        pass_at_1=float(pass_rates.mean()),
        pass_at_1_low=low,
        pass_at_1_high=high,
        cons_at_k=float(difficulty["majority_correct"].mean()),
        correct_samples=int(difficulty["correct"].sum()),
    )
    return score, pd.DataFrame(pass_k_rows), difficulty.sort_values("pass_rate", kind="stable")


@dataclass(frozen=True)
class PairedDifference:
    n_items: int
    score: float            # pass@1 of the variant on the shared items
    baseline_score: float   # pass@1 of the baseline on the same items
    delta: float            # score - baseline_score
    delta_low: float
    delta_high: float

    @property
    def significant(self) -> bool | None:
        """The interval excludes zero: the difference is unlikely to be resampling noise. None when there are
        too few shared items for a bootstrap to say anything."""
        if self.n_items < MIN_ITEMS_FOR_SIGNIFICANCE:
            return None
        return self.delta_low > 0 or self.delta_high < 0


def paired_difference(variant: pd.Series, baseline: pd.Series, confidence: float = 0.95,
                      resamples: int = BOOTSTRAP_RESAMPLES, seed: int = BOOTSTRAP_SEED) -> PairedDifference:
    """Difference in pass@1 on the items both were scored on, with a paired bootstrap interval: items are
    resampled together, so the item-to-item spread in difficulty that both share cancels out.

    `variant` and `baseline` map item ids to each item's mean correctness over its samples."""
    shared = variant.index.intersection(baseline.index)
    if len(shared) == 0:
        raise ValueError("the variant and its baseline share no items; they cannot be compared")
    ours, theirs = variant.loc[shared].to_numpy(float), baseline.loc[shared].to_numpy(float)
    differences = ours - theirs
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(shared), size=(resamples, len(shared)))
    means = differences[picks].mean(axis=1)
    tail = (1 - confidence) / 2
    low, high = np.quantile(means, [tail, 1 - tail])
    delta = float(differences.mean())
    return PairedDifference(len(shared), float(ours.mean()), float(theirs.mean()), delta,
                            min(float(low), delta), max(float(high), delta))


def quantization_loss_rows(ours: pd.DataFrame, theirs: pd.DataFrame) -> tuple[list[dict], list[str]]:
    """Per benchmark, the paired difference of per-item accuracy (`benchmark`, `item_id`, `accuracy` rows) between
    a variant and its baseline over the items both scored; also the benchmarks they share no item of."""
    rows, unshared = [], []
    for benchmark, group in ours.groupby("benchmark"):
        other = theirs[theirs["benchmark"] == benchmark]
        if not set(other["item_id"]) & set(group["item_id"]):
            unshared.append(str(benchmark))
            continue
        paired = paired_difference(group.set_index("item_id")["accuracy"], other.set_index("item_id")["accuracy"])
        rows.append({"benchmark": benchmark, "n_items": paired.n_items, "pass_at_1": paired.score,
                     "baseline_pass_at_1": paired.baseline_score, "delta": paired.delta,
                     "delta_low": paired.delta_low, "delta_high": paired.delta_high,
                     "significant": paired.significant})
    return rows, unshared
