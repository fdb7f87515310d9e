"""The leaderboard as people read it: the view keeps numbers numeric and unrounded; this rounds and joins them."""

import pandas as pd

LEADERBOARD_SQL = "SELECT * FROM leaderboard ORDER BY benchmark, pass_at_1 DESC, variant"
# The decimals each of the view's numbers is printed with; the view keeps them unrounded.
PRINTED_DECIMALS = {"pass_at_1": 4, "pass_at_1_low": 4, "pass_at_1_high": 4, "cons_at_k": 4, "runnable_rate": 4,
                    "delta_vs_baseline": 4, "delta_vs_reference": 4, "output_tokens_per_s": 2, "ttft_ms_p99": 1,
                    "tpot_ms_p99": 2, "usd_per_million_output_tokens": 4, "owned_usd_per_million_output_tokens": 4,
                    "usd_per_correct_answer": 6}


# Each paired difference's interval, printed in one column `[low, high]` in place of its bounds.
INTERVALS = {"delta_interval": "delta_vs_baseline", "reference_interval": "delta_vs_reference"}


def printed_leaderboard(board: pd.DataFrame) -> pd.DataFrame:
    """The leaderboard view as people read it: numbers rounded, each paired difference's interval in one
    column as `[low, high]`, and the priced load level as `profile=load`."""
    shown = board.round(PRINTED_DECIMALS)
    for interval, delta in INTERVALS.items():
        shown[interval] = [None if pd.isna(low) else f"[{low:.3f}, {high:.3f}]"
                           for low, high in zip(board[f"{delta}_low"], board[f"{delta}_high"], strict=True)]
    shown["priced_load"] = [None if pd.isna(profile) else f"{profile}={load:g}"
                            for profile, load in zip(board["priced_profile"], board["priced_load"], strict=True)]
    left_out = {"priced_profile", "run_id", "published_at", "superseded_by_failed_run", "engine_note",
                *(f"{delta}_high" for delta in INTERVALS.values())}
    columns = [name for name in board.columns if name not in left_out]
    for interval, delta in INTERVALS.items():
        columns[columns.index(f"{delta}_low")] = interval
    return shown[columns]


def engine_notes(board: pd.DataFrame) -> list[str]:
    """Below the table: each variant a fallback engine served, and why (the table's engine column says which)."""
    notes = board.dropna(subset=["engine_note"]).drop_duplicates("variant")
    return [f"{row.variant}: {row.engine_note}" for row in notes.itertuples()]


FAILED_SQL = "SELECT * FROM failed_evaluations ORDER BY variant, evaluated_at"


def failure_lines(failed: pd.DataFrame) -> list[str]:
    """One line per evaluation whose scores failed the check after the results shown for its variant."""
    lines = []
    for row in failed.itertuples():
        shown = (f"the results shown are from run {row.shown_run_id[:8]}, published "
                 f"{row.shown_published_at:%Y-%m-%d %H:%M}" if isinstance(row.shown_run_id, str)
                 else "nothing of this variant is published")
        lines.append(f"{row.variant}: evaluation run {row.run_id[:8]} of {row.evaluated_at:%Y-%m-%d %H:%M} failed "
                     f"the scores check and was not published ({shown}); failed expectations: {row.evidence}")
    return lines
