"""`yardstick report`: what a user reads first after `make run`, one screen per handful of variants.

Per variant, from its latest published run: accuracy with its interval per benchmark and the tokens spent per
correct answer; its pass@1 difference from its unquantized twin and from the matrix's common reference, with
paired intervals; the priced serving level (throughput, p99 latency, $/M output tokens rented and owned); and,
against each API it is compared with, the monthly volume above which renting (or owning) beats it. The full
tables stay in SQL (the leaderboard, overthinking and break_even views) and the UI.
"""

from __future__ import annotations

import itertools
import json
import math

import duckdb
import pandas as pd

RUNS_SQL = """
SELECT p.variant, p.run_id, p.published_at, r.engine, r.engine_version, r.quantization, r.engine_note
FROM latest_published_runs p JOIN evaluation_runs r USING (variant, run_id) ORDER BY p.variant
"""
# Each variant's latest run, where it was not run (nothing on the host can serve it) or failed, after what it shows.
UNSERVED_SQL = """
SELECT r.variant, r.status, r.evaluated_at, r.evidence, p.run_id AS shown_run_id
FROM evaluation_runs r
LEFT JOIN latest_published_runs p USING (variant)
WHERE r.status IN ('not_run', 'failed_run') AND (p.published_at IS NULL OR r.evaluated_at > p.published_at)
QUALIFY row_number() OVER (PARTITION BY r.variant ORDER BY r.evaluated_at DESC) = 1
ORDER BY r.variant
"""
SCORES_SQL = """
SELECT s.variant, s.benchmark, s.k, s.n_items, s.pass_at_1, s.pass_at_1_low, s.pass_at_1_high, s.runnable_rate,
       c.output_tokens, c.correct_answers, o.reasoning_tokens_per_correct
FROM published_benchmark_scores s
JOIN latest_published_runs p USING (variant, run_id)
LEFT JOIN published_benchmark_costs c USING (variant, run_id, benchmark)
LEFT JOIN overthinking o ON o.variant = s.variant AND o.benchmark = s.benchmark AND o.grouping = 'all'
ORDER BY s.variant, s.benchmark
"""
COSTS_SQL = """
SELECT c.*, l.ttft_ms_p99, l.tpot_ms_p99, l.gpu_kwh_per_million_output_tokens, l.gpu_power_w_mean
FROM published_cost_rollup c
JOIN latest_published_runs p USING (variant, run_id)
LEFT JOIN published_serving_load_levels l
       ON l.variant = c.variant AND l.run_id = c.run_id AND l.profile = c.best_profile AND l.load = c.best_load
"""
BREAK_EVEN_SQL = "SELECT * FROM break_even ORDER BY variant, api_usd_per_million_output_tokens"
# Each variant's paired differences from its baselines: its twin first, then the common reference.
LOSS_SQL = """
SELECT q.variant, q.relation, q.baseline, q.benchmark, q.delta, q.delta_low, q.delta_high
FROM published_quantization_loss q
JOIN latest_published_runs p USING (variant, run_id)
ORDER BY q.variant, q.relation = 'reference', q.baseline, q.benchmark
"""
RELATION_LABELS = {"twin": "vs twin", "reference": "vs ref"}
WIDTH = 100   # the report's lines fit a terminal this wide


def tokens(count: float | None) -> str:
    """A token count as people say it: 950, 12.3k, 4.5M, 2.1B."""
    if count is None or pd.isna(count):
        return "-"
    for size, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if abs(count) >= size:
            return f"{count / size:.3g}{suffix}"
    return f"{count:.0f}"


def money(usd: float | None) -> str:
    if usd is None or pd.isna(usd):
        return "-"
    return f"${usd:.3g}" if abs(usd) < 100 else f"${usd:,.0f}"


def _score_line(row: dict) -> str:
    per_correct = (row["output_tokens"] / row["correct_answers"]
                   if row.get("correct_answers") and not pd.isna(row["correct_answers"]) else math.nan)
    reasoning = row.get("reasoning_tokens_per_correct")
    runnable = row.get("runnable_rate")
    return (f"  {row['benchmark']:<10} pass@1 {row['pass_at_1']:.3f} [{row['pass_at_1_low']:.3f}, "
            f"{row['pass_at_1_high']:.3f}]  n={row['n_items']} k={row['k']}  "
            + ("" if runnable is None or pd.isna(runnable) else f"runnable {runnable:.2f}  ")
            + f"{tokens(per_correct)} tokens/correct"
            + ("" if reasoning is None or pd.isna(reasoning) else f" ({tokens(reasoning)} reasoning)"))


def _cost_lines(cost: dict) -> list[str]:
    if cost["pricing"] == "api":
        return [f"  cost       API {cost['api_model']}: {money(cost['usd_per_million_output_tokens'])}/M out, "
                f"{money(cost['usd_spent'])} for these samples, {money(cost['usd_per_correct_answer'])}/correct"]
    level = f"{cost['best_profile']} {cost['best_load']:g}"
    latency = (f", p99 TTFT {cost['ttft_ms_p99']:.0f} ms, TPOT {cost['tpot_ms_p99']:.1f} ms"
               if not pd.isna(cost.get("ttft_ms_p99")) else "")
    owned = (f", owned {money(cost['owned_usd_per_million_output_tokens'])}/M"
             if not pd.isna(cost.get("owned_usd_per_million_output_tokens")) else "")
    slo = "" if cost.get("meets_slo") else " (no level met the SLOs)"
    energy = cost.get("gpu_kwh_per_million_output_tokens")
    if energy is not None and not pd.isna(energy):
        latency += f", {energy:.3g} kWh/M ({cost['gpu_power_w_mean']:.0f} W)"
    lines = [f"  serving    {cost['output_tokens_per_s']:.1f} out tok/s at {level}{latency}{slo}",
             f"  cost       {cost['hardware']} {money(cost['usd_per_hour'])}/h: "
             f"{money(cost['usd_per_million_output_tokens'])}/M out rented{owned}; "
             f"{money(cost['usd_per_correct_answer'])}/correct"]
    if cost.get("priced_host_condition") == "contended":
        lines.append(f"  BUSY HOST  every level was measured on a busy host, so these figures are not to be trusted: "
                     f"{cost['priced_host_contention']}")
    return lines


def _loss_lines(rows: list[dict]) -> list[str]:
    """Per baseline, the benchmarks' pass@1 minus the baseline's on the same items with its 95% paired interval."""
    lines = []
    for (relation, baseline), group in itertools.groupby(rows, key=lambda row: (row["relation"], row["baseline"])):
        line = f"  {RELATION_LABELS.get(relation, relation):<11}{baseline}: "
        for index, row in enumerate(group):
            item = f"{row['benchmark']} {row['delta']:+.3f} [{row['delta_low']:+.3f}, {row['delta_high']:+.3f}]"
            if index and len(line) + 2 + len(item) > WIDTH:
                lines.append(line)
                line = " " * 13 + item
            else:
                line += ("  " if index else "") + item
        lines.append(line)
    return lines


def _break_even_lines(rows: list[dict]) -> list[str]:
    lines = []
    for index, row in enumerate(rows):
        head = "  vs APIs    " if index == 0 else " " * 13
        rented = row["rented_beats_api_above"]
        verdict = (f"renting wins above {tokens(rented)} tok/month" if not pd.isna(rented)
                   else f"the API is cheaper up to full load ({tokens(row['capacity_tokens_per_month'])} tok/month)")
        owned = row["owned_beats_api_above"]
        if not pd.isna(owned):
            verdict += f", owning above {tokens(owned)}"
        lines.append(f"{head}{row['api_model']} {money(row['api_usd_per_million_output_tokens'])}/M: {verdict}")
    return lines


def report(connection: duckdb.DuckDBPyConnection, variants: list[str] | None = None) -> list[str]:
    """The report's lines for `variants` (every variant with a published run when empty)."""
    runs = connection.execute(RUNS_SQL).df()
    if variants:
        runs = runs[runs["variant"].isin(variants)]
    scores = connection.execute(SCORES_SQL).df()
    costs = {row["variant"]: row for row in connection.execute(COSTS_SQL).df().to_dict("records")}
    break_even = connection.execute(BREAK_EVEN_SQL).df()
    losses = connection.execute(LOSS_SQL).df()
    lines: list[str] = []
    for run in runs.to_dict("records"):
        variant = run["variant"]
        engine = " ".join(str(part) for part in (run["engine"], run["engine_version"]) if part and not pd.isna(part))
        lines.append(f"{variant}  ({engine or 'engine ?'}, {run['quantization'] or 'no quantization'}; run "
                     f"{run['run_id'][:8]}, published {run['published_at']:%Y-%m-%d %H:%M} UTC)")
        if isinstance(run["engine_note"], str):
            lines.append(f"  engine: {run['engine_note']}")
        lines += [_score_line(row) for row in scores[scores["variant"] == variant].to_dict("records")]
        lines += _loss_lines(losses[losses["variant"] == variant].to_dict("records"))
        if variant in costs:
            lines += _cost_lines(costs[variant])
        lines += _break_even_lines(break_even[break_even["variant"] == variant].to_dict("records"))
        lines.append("")
    return lines + unserved_lines(connection, variants)


def unserved_lines(connection: duckdb.DuckDBPyConnection, variants: list[str] | None = None) -> list[str]:
    """A line per variant whose latest run was not run or failed, after the results it shows (if any), with why."""
    unserved = connection.execute(UNSERVED_SQL).df()
    if variants:
        unserved = unserved[unserved["variant"].isin(variants)]
    lines = []
    for row in unserved.to_dict("records"):
        evidence = json.loads(row["evidence"]) if isinstance(row["evidence"], str) else {}
        why = evidence.get("not_run") or evidence.get("failure") or "no reason recorded"
        shown = (f"; the results above are from run {row['shown_run_id'][:8]}" if isinstance(row["shown_run_id"], str)
                 else "")
        what = "not run" if row["status"] == "not_run" else "its latest run failed"
        lines.append(f"{row['variant']}: {what} ({row['evaluated_at']:%Y-%m-%d %H:%M} UTC){shown}: {why}")
    return lines
