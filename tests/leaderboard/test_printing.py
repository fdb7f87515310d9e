"""The printed leaderboard (assets/leaderboard/printing.py): rounding, intervals, load levels, engine notes."""

import math

import pandas as pd
import pytest

from assets.leaderboard.printing import engine_notes, printed_leaderboard

pytestmark = pytest.mark.unit


def test_printed_leaderboard_rounds_and_combines_the_interval_and_the_load_level():
    row = {"variant": "v", "pass_at_1": 0.123456, "delta_vs_baseline": -0.0123456,
           "delta_vs_baseline_low": -0.05, "delta_vs_baseline_high": 0.0212, "delta_significant": False,
           "priced_profile": "concurrency", "priced_load": 4.0, "usd_per_correct_answer": 0.0000123456}
    unpriced = {**row, "variant": "w", "delta_vs_baseline_low": math.nan, "delta_vs_baseline_high": math.nan,
                "priced_profile": None, "priced_load": math.nan}
    printed = printed_leaderboard(pd.DataFrame([row, unpriced]))
    assert list(printed.columns) == ["variant", "pass_at_1", "delta_vs_baseline", "delta_interval",
                                     "delta_significant", "priced_load", "usd_per_correct_answer"]
    assert printed.iloc[0].tolist() == ["v", 0.1235, -0.0123, "[-0.050, 0.021]", False, "concurrency=4", 1.2e-05]
    assert printed.iloc[1][["delta_interval", "priced_load"]].isna().all()


def test_why_a_fallback_engine_served_is_said_below_the_table_once_per_variant():
    rows = [{"variant": "q", "benchmark": "arith", "engine": "transformers", "engine_note": "served by transformers, "
             "its fallback: vllm cannot run it here: W4A16 needs cpu_gemm_wna16"},
            {"variant": "q", "benchmark": "gsm8k", "engine": "transformers", "engine_note": "served by transformers, "
             "its fallback: vllm cannot run it here: W4A16 needs cpu_gemm_wna16"},
            {"variant": "b", "benchmark": "arith", "engine": "vllm", "engine_note": None}]
    board = pd.DataFrame(rows)
    assert engine_notes(board) == ["q: served by transformers, its fallback: vllm cannot run it here: W4A16 needs "
                                   "cpu_gemm_wna16"]
    assert "engine_note" not in printed_leaderboard(board.assign(
        delta_vs_baseline_low=None, delta_vs_baseline_high=None, priced_profile=None, priced_load=None)).columns
