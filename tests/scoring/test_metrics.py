"""Scores: pass@1 as the mean over k, a bootstrap interval that brackets it, and cons@k."""

from itertools import combinations

import numpy as np
import pandas as pd
import pytest

from assets.grading.equivalence import Grader, answer_equivalence
from assets.scoring.metrics import (
    bootstrap_interval,
    consensus,
    paired_difference,
    pass_at_k,
    pass_at_k_levels,
    quantization_loss_rows,
    score_benchmark,
)

pytestmark = pytest.mark.unit


def test_pass_at_1_is_the_mean_over_items_of_the_mean_over_samples():
    grades = pd.DataFrame({
        "item_id": ["a", "a", "b", "b", "c", "c"],
        "sample_index": [0, 1, 0, 1, 0, 1],
        "correct": [True, True, True, False, False, False],
        "extracted": ["1", "1", "2", "3", None, "9"],
    })
    score, by_k, items = score_benchmark(grades)
    assert score.pass_at_1 == pytest.approx(0.5)
    assert by_k["k"].tolist() == [1, 2]
    assert by_k.set_index("k")["estimate"][1] == pytest.approx(0.5)
    assert by_k.set_index("k")["estimate"][2] == pytest.approx(2 / 3)  # a and b have a correct one in 2 draws
    assert items.iloc[0]["item_id"] == "c" and items.iloc[0]["pass_rate"] == 0
    assert score.n_items == 3 and score.n_samples == 6 and score.correct_samples == 3
    assert score.pass_at_1_low <= 0.5 <= score.pass_at_1_high
    assert score.cons_at_k == pytest.approx(2 / 3)  # a: 1 wins; b: tie, first seen (2, correct) wins; c: 9 wrong


def test_bootstrap_interval_is_seeded_and_brackets_the_mean():
    values = np.array([1, 0, 1, 1, 0, 0.5, 1, 0])
    first, second = bootstrap_interval(values), bootstrap_interval(values)
    assert first == second
    assert first[0] <= values.mean() <= first[1]
    assert bootstrap_interval(np.ones(5)) == (1.0, 1.0)


def test_bootstrap_interval_covers_the_truth_about_95_percent_of_the_time():
    rng = np.random.default_rng(1)
    truth, hits, trials = 0.3, 0, 300
    for _ in range(trials):
        low, high = bootstrap_interval(rng.binomial(1, truth, size=200).astype(float), resamples=500,
                                       seed=int(rng.integers(1 << 30)))
        hits += low <= truth <= high
    assert 0.90 <= hits / trials <= 0.99


def test_consensus_groups_equal_numbers_and_ignores_missing_answers():
    assert consensus(["27", "27.0", "5", None, None], [True, True, False, False, False]) == ("27", True)
    assert consensus([None, None], [False, False]) == (None, False)
    assert consensus(["4", "5", "5", "4.0", "4"], [False, True, True, False, False]) == ("4", False)


def test_consensus_groups_equivalent_wrong_answers_through_the_grader():
    answers = ["\\frac{1}{2}", "0.5", "\\dfrac12", "3", "3", "7"]
    correct = [False, False, False, True, True, False]
    assert consensus(answers, correct) == ("3", True)  # as strings, the three halves split the vote
    with Grader(workers=1) as grader:
        same = answer_equivalence(grader, [[a for a, ok in zip(answers, correct, strict=True) if not ok]], "latex")
    assert consensus(answers, correct, same) == ("\\frac{1}{2}", False)


@pytest.mark.parametrize(("n", "c"), [(1, 0), (1, 1), (4, 1), (5, 2), (6, 3), (8, 0), (8, 8), (7, 6)])
def test_pass_at_k_matches_brute_force_enumeration(n, c):
    outcomes = [True] * c + [False] * (n - c)
    for k in range(1, n + 1):
        draws = list(combinations(range(n), k))
        brute = sum(any(outcomes[i] for i in draw) for draw in draws) / len(draws)
        assert pass_at_k(n, c, k) == pytest.approx(brute)
    with pytest.raises(ValueError):
        pass_at_k(n, c, n + 1)


def test_pass_at_k_levels():
    assert pass_at_k_levels(64) == [1, 2, 4, 8, 16, 32, 64]
    assert pass_at_k_levels(6) == [1, 2, 4, 6]


def test_paired_difference_by_hand_and_against_unpaired_noise():
    ours = pd.Series({"a": 1.0, "b": 0.5, "c": 0.0, "d": 1.0})
    theirs = pd.Series({"a": 1.0, "b": 1.0, "c": 0.5, "d": 1.0, "e": 0.0})   # e: not in both, left out
    paired = paired_difference(ours, theirs)
    assert paired.n_items == 4
    assert (paired.score, paired.baseline_score, paired.delta) == pytest.approx((0.625, 0.875, -0.25))
    assert paired.delta_low <= -0.25 <= paired.delta_high <= 0
    # Items range from always right to always wrong; a variant one notch worse on every item is a clear,
    # significant loss when paired, although the two scores' own intervals overlap.
    rng = np.random.default_rng(3)
    difficulty = pd.Series(rng.uniform(0, 1, 200), index=[f"i{n}" for n in range(200)])
    worse = (difficulty - 0.05).clip(lower=0)
    loss = paired_difference(worse, difficulty)
    assert loss.significant and loss.delta_high < 0
    assert bootstrap_interval(worse.to_numpy())[1] > bootstrap_interval(difficulty.to_numpy())[0]
    same = paired_difference(difficulty, difficulty)
    assert same.delta == 0 and not same.significant
    with pytest.raises(ValueError, match="share no items"):
        paired_difference(ours, pd.Series({"z": 1.0}))


def test_paired_difference_flags_about_5_percent_of_comparisons_between_equals():
    """Two variants with the same per-item accuracy, each sampled k = 2 times per item on 100 items (the offline
    default's arith set: a third of the items never solved, the rest solved up to half the time): the 95%
    paired interval excludes zero, a false 'significant', in about 5% of comparisons."""
    rng = np.random.default_rng(7)
    items = [f"i{n}" for n in range(100)]
    accuracy = np.where(rng.uniform(size=100) < 0.3, 0.0, rng.uniform(0, 0.5, size=100))
    flagged, trials = 0, 400
    for trial in range(trials):
        ours = pd.Series(rng.binomial(2, accuracy) / 2, index=items)
        theirs = pd.Series(rng.binomial(2, accuracy) / 2, index=items)
        flagged += paired_difference(ours, theirs, resamples=1000, seed=trial).significant
    assert 0.02 <= flagged / trials <= 0.09, flagged / trials


def test_quantization_loss_pairs_the_items_both_scored_per_benchmark():
    ours = pd.DataFrame([{"benchmark": "arith", "item_id": i, "accuracy": a} for i, a in (("1", 1.0), ("2", 0.5),
                                                                                          ("3", 0.0))]
                        + [{"benchmark": "gsm8k", "item_id": "g1", "accuracy": 1.0}])
    theirs = pd.DataFrame([{"benchmark": "arith", "item_id": i, "accuracy": a} for i, a in (("1", 0.5), ("2", 0.5),
                                                                                            ("9", 1.0))]
                          + [{"benchmark": "gsm8k", "item_id": "g2", "accuracy": 0.0}])
    rows, unshared = quantization_loss_rows(ours, theirs)
    assert unshared == ["gsm8k"]   # no item in common: no difference is claimed
    (arith,) = rows
    # items 1 and 2 only: ours 0.75, theirs 0.5
    assert arith["benchmark"] == "arith" and arith["n_items"] == 2
    assert arith["pass_at_1"] == pytest.approx(0.75) and arith["baseline_pass_at_1"] == pytest.approx(0.5)
    assert arith["delta"] == pytest.approx(0.25) and arith["delta_low"] <= 0.25 <= arith["delta_high"]
