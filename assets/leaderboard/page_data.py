"""What the HTML page (assets/leaderboard/page.py) shows, read from the published results only: one frame per
chart, each kept to the variants asked for."""

from __future__ import annotations

from dataclasses import dataclass

import duckdb
import pandas as pd

# What each variant's latest published run evaluated: the page's header.
RUNS_SQL = """
SELECT p.variant, p.run_id, p.published_at, r.run_trigger, m.repo, m.revision, m.source,
       coalesce(r.model_sha, m.commit_sha) AS model_sha, r.quantization, r.engine, r.engine_version, r.engine_note,
       r.grader_version, r.price_date, c.hardware, c.api_model, c.priced_host_condition, c.priced_host_contention
FROM latest_published_runs p
JOIN evaluation_runs r USING (variant, run_id)
LEFT JOIN model_snapshots m USING (variant)
LEFT JOIN published_cost_rollup c USING (variant, run_id)
ORDER BY p.variant
"""
LEADERBOARD_SQL = "SELECT * FROM leaderboard ORDER BY benchmark, pass_at_1 DESC, variant"
# Every load level of each variant's latest published run, with the engine and quantization that served it and
# the hour it is priced at.
LEVELS_SQL = """
SELECT l.variant, l.profile, l.load, l.output_throughput, l.tpot_ms_p50, l.ttft_ms_p99, l.tpot_ms_p99,
       l.slo_ttft_ms, l.slo_tpot_ms, l.goodput, l.request_throughput, l.host_condition, r.engine, r.quantization,
       c.usd_per_hour
FROM published_serving_load_levels l
JOIN latest_published_runs p USING (variant, run_id)
JOIN evaluation_runs r USING (variant, run_id)
LEFT JOIN published_cost_rollup c USING (variant, run_id)
ORDER BY l.variant, l.profile, l.load
"""
LOSS_SQL = """
SELECT q.variant, q.relation, q.baseline, q.benchmark, q.delta, q.delta_low, q.delta_high, q.n_items, r.engine,
       r.quantization
FROM published_quantization_loss q
JOIN latest_published_runs p USING (variant, run_id)
JOIN evaluation_runs r USING (variant, run_id)
ORDER BY q.benchmark, r.engine, q.variant, q.relation
"""
CURVE_SQL = "SELECT * FROM break_even_curve ORDER BY variant, option, tokens_per_month"
CROSSOVERS_SQL = "SELECT * FROM break_even ORDER BY variant, api_model"
OVERTHINKING_SQL = """
SELECT * FROM overthinking WHERE grouping = 'difficulty' ORDER BY variant, benchmark, bucket_order
"""
# Every published run of each variant, its mean pass@1 over its benchmarks and its priced throughput, and whether
# a regression check flagged it.
HISTORY_SQL = """
SELECT r.variant, r.run_id, r.evaluated_at, avg(s.pass_at_1) AS pass_at_1, any_value(c.output_tokens_per_s)
       AS output_tokens_per_s,
       (SELECT string_agg(f.kind || ' ' || f.subject, ', ') FROM regression_findings f
         WHERE f.run_id = r.run_id AND f.variant = r.variant AND f.regressed) AS regressions
FROM evaluation_runs r
LEFT JOIN published_benchmark_scores s USING (variant, run_id)
LEFT JOIN published_cost_rollup c USING (variant, run_id)
WHERE r.status = 'published'
GROUP BY r.variant, r.run_id, r.evaluated_at
ORDER BY r.variant, r.evaluated_at
"""
QUERIES = {"runs": RUNS_SQL, "leaderboard": LEADERBOARD_SQL, "levels": LEVELS_SQL, "loss": LOSS_SQL,
           "curve": CURVE_SQL, "crossovers": CROSSOVERS_SQL, "overthinking": OVERTHINKING_SQL,
           "history": HISTORY_SQL}


@dataclass(frozen=True)
class PageData:
    """The published results the page draws, one frame per query of QUERIES."""

    runs: pd.DataFrame
    leaderboard: pd.DataFrame
    levels: pd.DataFrame
    loss: pd.DataFrame
    curve: pd.DataFrame
    crossovers: pd.DataFrame
    overthinking: pd.DataFrame
    history: pd.DataFrame

    @property
    def variants(self) -> list[str]:
        return list(self.runs["variant"])


def read_page_data(connection: duckdb.DuckDBPyConnection, variants: list[str] | None = None) -> PageData:
    """The page's frames for `variants` (every variant with a published run when empty or None)."""
    frames = {name: connection.execute(sql).df() for name, sql in QUERIES.items()}
    if variants:
        frames = {name: frame[frame["variant"].isin(variants)].reset_index(drop=True)
                  for name, frame in frames.items()}
    return PageData(**frames)
