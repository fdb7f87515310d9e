"""Evaluation runs: what a run evaluated, publishing what passed the check, recording what failed it, and reading
a variant's history back (see the write-audit-publish comment in warehouse/schema.sql)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime

import duckdb
import pandas as pd

from warehouse import copy_published

# What a variant's current results were made from, read from the tables the chain wrote.
EVALUATED_SQL = """
SELECT
    (SELECT coalesce(commit_sha, fingerprint) FROM model_snapshots WHERE variant = $1) AS model_sha,
    (SELECT CASE WHEN scheme = 'none' THEN 'none' ELSE scheme || ' ' || method END
       FROM quantized_models WHERE variant = $1) AS quantization,
    (SELECT arg_max(engine, started_at) FROM engine_deployments WHERE variant = $1) AS engine,
    (SELECT arg_max(engine_version, started_at) FROM engine_deployments WHERE variant = $1) AS engine_version,
    (SELECT engine_note FROM engine_deployments WHERE variant = $1 AND status <> 'failed'
       ORDER BY started_at DESC LIMIT 1) AS engine_note,   -- the latest's, NULL included (arg_max skips NULLs)
    (SELECT string_agg(DISTINCT grader_version, '; ') FROM graded_answers
       WHERE variant = $1 AND config_hash = $2) AS grader_version,
    (SELECT bool_and(seed IS NOT NULL) FROM benchmark_generations WHERE variant = $1 AND config_hash = $2) AS seeded,
    (SELECT price_date FROM cost_rollup WHERE variant = $1) AS price_date
"""
# The fields that say what a run evaluated; a difference between two runs is "what changed".
EVALUATED_FIELDS = ("model_sha", "quantization", "engine", "engine_version", "grader_version", "config_hash",
                    "seeded", "price_date", "engine_note")


def run_trigger(tags: Mapping[str, str]) -> str:
    """What started a Dagster run, from its tags: a schedule, a sensor, a backfill, else a person (UI or shell)."""
    if tags.get("dagster/schedule_name"):
        return f"schedule {tags['dagster/schedule_name']}"
    if tags.get("dagster/sensor_name"):
        return f"sensor {tags['dagster/sensor_name']}"
    if tags.get("dagster/backfill"):
        return "backfill"
    return "manual"


def evaluated(connection: duckdb.DuckDBPyConnection, variant: str, config_hash: str) -> dict:
    row = connection.execute(EVALUATED_SQL, [variant, config_hash]).df().iloc[0].to_dict()
    return {**{key: (None if pd.isna(value) else value) for key, value in row.items()}, "config_hash": config_hash}


def _scored_config(connection: duckdb.DuckDBPyConnection, variant: str) -> str | None:
    """The config hash of the samples the variant's staged scores were computed from."""
    row = connection.execute("SELECT config_hash FROM benchmark_scores WHERE variant = ? LIMIT 1", [variant]).fetchone()
    return row[0] if row else None


def _record_run(connection: duckdb.DuckDBPyConnection, run_id: str, variant: str, status: str, trigger: str,
                what: dict, at: datetime, evidence: str | None) -> None:
    connection.execute("DELETE FROM evaluation_runs WHERE run_id = ? AND variant = ?", [run_id, variant])
    connection.execute(
        "INSERT INTO evaluation_runs (run_id, variant, evaluated_at, status, run_trigger, model_sha, quantization, "
        "engine, engine_version, grader_version, config_hash, seeded, price_date, engine_note, evidence) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [run_id, variant, at, status, trigger, *(what.get(name) for name in EVALUATED_FIELDS), evidence])


def publish(connection: duckdb.DuckDBPyConnection, run_id: str, variant: str, trigger: str, at: datetime) -> dict:
    """In one transaction: record the run as published and copy its rows into the published tables (a run
    published again, say after a retry, replaces its own copy and nothing else). Returns what it evaluated."""
    config = _scored_config(connection, variant)
    if config is None:
        raise LookupError(f"no scores for variant '{variant}' to publish")
    what = evaluated(connection, variant, config)
    connection.begin()
    try:
        _record_run(connection, run_id, variant, "published", trigger, what, at, None)
        copy_published(connection, run_id, variant, config)
        connection.commit()
    except BaseException:
        connection.rollback()
        raise
    return what


def record_failed_check(connection: duckdb.DuckDBPyConnection, run_id: str, variant: str, trigger: str,
                        at: datetime, failures: object) -> None:
    """A run whose scores failed the blocking check: recorded with the evidence, its rows never published."""
    config = _scored_config(connection, variant)
    what = evaluated(connection, variant, config) if config else {}
    _record_run(connection, run_id, variant, "failed_check", trigger, what, at, json.dumps(failures, default=str))


HISTORY_SQL = """
SELECT r.run_id, r.evaluated_at, r.status, r.run_trigger, r.model_sha, r.quantization, r.engine, r.engine_version,
       r.grader_version, r.config_hash, r.seeded, r.price_date, r.engine_note, r.evidence,
       c.output_tokens_per_s, c.usd_per_million_output_tokens
FROM evaluation_runs r
LEFT JOIN published_cost_rollup c USING (run_id, variant)
WHERE r.variant = ?
ORDER BY r.evaluated_at
"""
HISTORY_SCORES_SQL = """
SELECT run_id, benchmark, pass_at_1 FROM published_benchmark_scores WHERE variant = ? ORDER BY run_id, benchmark
"""


def what_changed(previous: Mapping | None, current: Mapping) -> list[str]:
    """The evaluated fields that differ from the previous run's ('first run' for the first)."""
    if previous is None:
        return ["first run"]
    changed = []
    for name in EVALUATED_FIELDS:
        before, now = previous.get(name), current.get(name)
        if not (pd.isna(before) and pd.isna(now)) and before != now:
            changed.append(f"{name}: {before} → {now}")
    return changed


def history_table(runs: pd.DataFrame, scores: pd.DataFrame) -> pd.DataFrame:
    """One row per evaluation run, oldest first: when, status, what changed since the published run before (for a
    run not published, why), pass@1 per benchmark, throughput and $/M output tokens."""
    pass_at_1 = scores.pivot(index="run_id", columns="benchmark", values="pass_at_1") if len(scores) else None
    rows, previous = [], None
    for run in runs.to_dict("records"):
        published = run["status"] == "published"
        row = {"evaluated_at": f"{run['evaluated_at']:%Y-%m-%d %H:%M:%S}", "run": run["run_id"][:8],
               "status": run["status"], "trigger": run["run_trigger"],
               "changed": ("; ".join(what_changed(previous, run)) or "nothing") if published
               else f"not published: {str(run['evidence'])[:100]}"}
        if pass_at_1 is not None and run["run_id"] in pass_at_1.index:
            row.update({f"pass@1 {name}": value for name, value in pass_at_1.loc[run["run_id"]].items()})
        row["output tok/s"] = run["output_tokens_per_s"]
        row["$/M out"] = run["usd_per_million_output_tokens"]
        rows.append(row)
        previous = run if published else previous
    return pd.DataFrame(rows)


PREVIOUS_RUN_SQL = """
SELECT run_id FROM evaluation_runs
WHERE variant = $1 AND status = 'published'
  AND evaluated_at < (SELECT evaluated_at FROM evaluation_runs WHERE run_id = $2 AND variant = $1)
ORDER BY evaluated_at DESC LIMIT 1
"""
SAMPLES_SQL = "SELECT benchmark, item_id, sample_index, correct FROM published_samples WHERE run_id = ? AND variant = ?"
PRICED_LEVEL_SQL = """
SELECT c.best_profile, c.best_load, c.output_tokens_per_s, c.usd_per_million_output_tokens,
       l.ttft_ms_p99, l.tpot_ms_p99, c.priced_host_condition, c.priced_host_contention
FROM published_cost_rollup c
LEFT JOIN published_serving_load_levels l
       ON l.run_id = c.run_id AND l.variant = c.variant AND l.profile = c.best_profile AND l.load = c.best_load
WHERE c.run_id = ? AND c.variant = ?
"""


def previous_run(connection: duckdb.DuckDBPyConnection, variant: str, run_id: str) -> str | None:
    row = connection.execute(PREVIOUS_RUN_SQL, [variant, run_id]).fetchone()
    return row[0] if row else None


def record_findings(connection: duckdb.DuckDBPyConnection, run_id: str, variant: str, previous: str,
                    findings: list, at: datetime) -> None:
    """Store a check's findings (replacing what the same check stored for this run before)."""
    kinds = sorted({finding.kind for finding in findings})
    connection.begin()
    try:
        for kind in kinds:
            connection.execute("DELETE FROM regression_findings WHERE run_id = ? AND variant = ? AND kind = ?",
                               [run_id, variant, kind])
        for finding in findings:
            connection.execute(
                "INSERT INTO regression_findings VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [run_id, variant, previous, finding.kind, finding.subject, finding.regressed, finding.before,
                 finding.after, json.dumps(finding.evidence, default=str), at])
        connection.commit()
    except BaseException:
        connection.rollback()
        raise


def record_not_run(connection: duckdb.DuckDBPyConnection, run_id: str, variant: str, trigger: str, at: datetime,
                   reason: str) -> None:
    """A variant nothing on this host can serve, reported as not run with why (no Dagster run was started)."""
    _record_run(connection, run_id, variant, "not_run", trigger, {}, at, json.dumps({"not_run": reason}))


def record_failed_run(connection: duckdb.DuckDBPyConnection, run_id: str, variant: str, trigger: str, at: datetime,
                      message: str) -> bool:
    """A run that failed (a step's error, a dead run recovery failed) recorded as an evaluation run of its variant
    with the failure, unless the run is recorded already (a failed check says more); whether it was recorded now."""
    if connection.execute("SELECT 1 FROM evaluation_runs WHERE run_id = ? AND variant = ?",
                          [run_id, variant]).fetchone():
        return False
    _record_run(connection, run_id, variant, "failed_run", trigger, {}, at, json.dumps({"failure": message}))
    return True
