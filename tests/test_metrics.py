"""Scores: pass@1 as the mean over k, a bootstrap interval that brackets it, and cons@k."""

import numpy as np
import pandas as pd
import pytest

from assets.cost.pricing import best_level, usd_per_correct_answer, usd_per_million_tokens
from assets.scoring.metrics import bootstrap_interval, consensus_correct, score_benchmark


def test_pass_at_1_is_the_mean_over_items_of_the_mean_over_samples():
    grades = pd.DataFrame({
        "item_id": ["a", "a", "b", "b", "c", "c"],
        "sample_index": [0, 1, 0, 1, 0, 1],
        "correct": [True, True, True, False, False, False],
        "extracted": ["1", "1", "2", "3", None, "9"],
    })
    score = score_benchmark(grades)
    assert score.pass_at_1 == pytest.approx(0.5)
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
    assert consensus_correct(["27", "27.0", "5", None, None], [True, True, False, False, False])
    assert not consensus_correct([None, None], [False, False])


def test_cost_formulas_match_hand_calculations():
    assert usd_per_million_tokens(40.0, 300.0) == pytest.approx(37.037, abs=1e-3)  # $40/h at 300 tok/s
    assert usd_per_correct_answer(2_000_000, 37.037, 10) == pytest.approx(7.4074, abs=1e-4)
    assert usd_per_correct_answer(1000, 1.0, 0) is None
    with pytest.raises(ValueError):
        usd_per_million_tokens(1.0, 0)
    levels = [{"concurrency": 1, "failed": 0, "output_throughput": 10.0},
              {"concurrency": 8, "failed": 2, "output_throughput": 90.0},
              {"concurrency": 4, "failed": 0, "output_throughput": 40.0}]
    assert best_level(levels)["concurrency"] == 4
