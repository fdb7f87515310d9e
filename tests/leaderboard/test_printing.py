"""The printed leaderboard (assets/leaderboard/printing.py): rounding, intervals, load levels, engine notes."""

import math

import pandas as pd
import pytest

from assets.leaderboard.printing import engine_notes, printed_leaderboard

pytestmark = pytest.mark.unit


# A row of the view with no paired difference against the common reference (its twin is the reference).
NO_REFERENCE = {"delta_vs_reference": math.nan, "delta_vs_reference_low": math.nan,
                "delta_vs_reference_high": math.nan}


def test_printed_leaderboard_rounds_and_combines_the_intervals_and_the_load_level():
    row = {"variant": "v", "pass_at_1": 0.123456, "delta_vs_baseline": -0.0123456,
           "delta_vs_baseline_low": -0.05, "delta_vs_baseline_high": 0.0212, "delta_significant": False,
           "delta_vs_reference": -0.0456789, "delta_vs_reference_low": -0.09, "delta_vs_reference_high": -0.0012,
           "priced_profile": "concurrency", "priced_load": 4.0, "usd_per_correct_answer": 0.0000123456}
    unpriced = {**row, **NO_REFERENCE, "variant": "w", "delta_vs_baseline_low": math.nan,
                "delta_vs_baseline_high": math.nan, "priced_profile": None, "priced_load": math.nan}
    printed = printed_leaderboard(pd.DataFrame([row, unpriced]))
    assert list(printed.columns) == ["variant", "pass_at_1", "delta_vs_baseline", "delta_interval",
                                     "delta_significant", "delta_vs_reference", "reference_interval",
                                     "priced_load", "usd_per_correct_answer"]
    assert printed.iloc[0].tolist() == ["v", 0.1235, -0.0123, "[-0.050, 0.021]", False, -0.0457, "[-0.090, -0.001]",
                                        "concurrency=4", 1.2e-05]
    assert printed.iloc[1][["delta_interval", "reference_interval", "priced_load"]].isna().all()


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
        delta_vs_baseline_low=None, delta_vs_baseline_high=None, **NO_REFERENCE, priced_profile=None,
        priced_load=None)).columns
