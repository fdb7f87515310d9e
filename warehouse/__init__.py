"""The DuckDB warehouse: schema and views as SQL files, applied idempotently."""

from __future__ import annotations

from pathlib import Path

import duckdb

SQL_DIR = Path(__file__).parent
SQL_FILES = ("schema.sql", "views.sql")


def apply_schema(connection: duckdb.DuckDBPyConnection) -> None:
    """Create every table and view that is missing; safe to run on every connection."""
    for name in SQL_FILES:
        connection.execute((SQL_DIR / name).read_text())
