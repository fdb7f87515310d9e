"""The DuckDB warehouse: schema and views as SQL files, applied idempotently."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import duckdb

SQL_DIR = Path(__file__).parent
SQL_FILES = ("schema.sql", "views.sql")
# Derived tables whose shape changed: a file made before the change lacks the current shape's marker
# column; the table is dropped and the next run of its asset rebuilds it.
RESHAPED_DERIVED_TABLES = {"cost_rollup": "pricing"}


def apply_schema(connection: duckdb.DuckDBPyConnection) -> None:
    """Create every table and view that is missing; safe to run on every connection."""
    for table, marker in RESHAPED_DERIVED_TABLES.items():
        columns = {row[0] for row in connection.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = ?", [table]).fetchall()}
        if columns and marker not in columns:
            connection.execute("DROP VIEW IF EXISTS leaderboard")
            connection.execute(f"DROP TABLE {table}")
    for name in SQL_FILES:
        connection.execute((SQL_DIR / name).read_text())


def utc_now() -> datetime:
    """The warehouse stores timestamps as naive UTC (DuckDB TIMESTAMP)."""
    return datetime.now(UTC).replace(tzinfo=None)
