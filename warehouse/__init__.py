"""The DuckDB warehouse: schema, migrations and views as SQL files, and the runner that applies them."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from pathlib import Path

import duckdb

SQL_DIR = Path(__file__).parent
SCHEMA_FILE = SQL_DIR / "schema.sql"
VIEWS_FILE = SQL_DIR / "views.sql"
MIGRATIONS_DIR = SQL_DIR / "migrations"
MIGRATION_FILE_NAME = re.compile(r"(?P<version>\d{3})_(?P<name>[a-z0-9_]+)\.sql")
# The tables a run writes and publishes: each has a published_<table> copy with run_id first (see schema.sql).
PUBLISHED_TABLES = ("benchmark_scores", "benchmark_pass_at_k", "item_difficulty", "quantization_loss", "cost_rollup",
                    "benchmark_costs", "serving_load_levels", "api_alternatives")


# A DuckLake catalog has no primary keys (nor indexes); its tables are made from schema.sql without them, and the
# writes that rely on a key (skip or replace a row with the same key) match rows by `table_keys()` instead.
_TABLE = re.compile(r"CREATE TABLE IF NOT EXISTS (?P<name>\w+) \((?P<body>.*?)\n\);", re.S)
# The key clause, with the comma that ends the column before it (comment lines may follow that comma).
_KEY_CLAUSE = re.compile(
    r",(?P<comment>[ \t]*(--[^\n]*)?(\n[ \t]*--[^\n]*)*)\n\s*PRIMARY KEY\s*\((?P<columns>[^)]*)\)")
_KEY_COLUMN = re.compile(r"^\s*(?P<column>\w+)\s+\w+\s+PRIMARY KEY", re.M)


@cache
def table_keys() -> dict[str, tuple[str, ...]]:
    """Each table of schema.sql and the columns of its primary key (its natural key)."""
    keys = {}
    for table in _TABLE.finditer(SCHEMA_FILE.read_text()):
        clause = _KEY_CLAUSE.search(table["body"])
        column = _KEY_COLUMN.search(table["body"])
        if clause:
            keys[table["name"]] = tuple(name.strip() for name in clause["columns"].split(","))
        elif column:
            keys[table["name"]] = (column["column"],)
        else:
            raise ValueError(f"table {table['name']} in {SCHEMA_FILE.name} has no primary key; every table needs one "
                             "so that a re-run replaces or skips its rows")
    return keys


def lake_schema() -> str:
    """schema.sql as a DuckLake catalog takes it: the same tables and columns, without the primary keys."""
    return keyless(SCHEMA_FILE.read_text())


def keyless(sql: str) -> str:
    """SQL with its tables' primary keys taken out (a DuckLake catalog has none)."""
    return re.sub(r"\s+PRIMARY KEY\b", "", _KEY_CLAUSE.sub(r"\g<comment>", sql))


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    path: Path


def migrations() -> list[Migration]:
    """The files of warehouse/migrations in the order they apply."""
    found: dict[int, Migration] = {}
    for path in sorted(MIGRATIONS_DIR.glob("*.sql")):
        match = MIGRATION_FILE_NAME.fullmatch(path.name)
        if match is None:
            raise ValueError(f"migration file {path.name} is not named NNN_lowercase_words.sql")
        version = int(match["version"])
        if version in found:
            raise ValueError(f"migrations {found[version].path.name} and {path.name} share version {version}")
        found[version] = Migration(version, match["name"], path)
    return [found[version] for version in sorted(found)]


def apply_schema(connection: duckdb.DuckDBPyConnection, lake: bool = False) -> None:
    """Bring the file to the current schema and (re)create the views; safe to run on every connection.

    A file without tables is made from schema.sql and recorded as having had every migration. An older file
    gets the tables it lacks from schema.sql, then each migration it has not had, once, each in a transaction
    with its row in schema_migrations. One connection at a time: WarehouseResource serialises this in a
    process, and DuckDB's file lock across processes (a lake: an advisory lock in its catalog database).
    """
    known = migrations()
    fresh = not has_tables(connection)
    with _transaction(connection):
        connection.execute(lake_schema() if lake else SCHEMA_FILE.read_text())
        if fresh:
            for migration in known:
                _record(connection, migration)
    applied = {row[0] for row in connection.execute("SELECT version FROM schema_migrations").fetchall()}
    missing = [migration for migration in known if migration.version not in applied]
    for migration in missing:
        with _transaction(connection):
            _migrate(connection, migration, lake)
    with _transaction(connection):
        _published_copies(connection)
    views = VIEWS_FILE.read_text()
    digest = hashlib.sha256(views.encode()).hexdigest()
    current = connection.execute("SELECT count(*) FROM schema_views WHERE digest = ?", [digest]).fetchone()[0]
    if missing or not current:
        with _transaction(connection):
            connection.execute(views)
            connection.execute("DELETE FROM schema_views")
            connection.execute("INSERT INTO schema_views VALUES (?, ?)", [digest, utc_now()])
    with _transaction(connection):
        _publish_migrated(connection)


def _publish_migrated(connection: duckdb.DuckDBPyConnection) -> None:
    """Copy into the published tables the results of the evaluation runs migration 013 made for what an older file
    held, once: a run already copied is left alone."""
    runs = connection.execute(
        "SELECT run_id, variant FROM evaluation_runs r WHERE run_trigger = 'migrated' AND NOT EXISTS "
        "(SELECT 1 FROM published_benchmark_scores p WHERE p.run_id = r.run_id)").fetchall()
    for run_id, variant in runs:
        config = connection.execute("SELECT config_hash FROM evaluation_runs WHERE run_id = ?", [run_id]).fetchone()
        copy_published(connection, run_id, variant, config[0])


def copy_published(connection: duckdb.DuckDBPyConnection, run_id: str, variant: str, config_hash: str) -> None:
    """Copy a variant's rows of PUBLISHED_TABLES, and the graded samples that count now, into the published tables
    under `run_id`, replacing what that run published before (a run published again, say after a retry)."""
    for table in PUBLISHED_TABLES:
        connection.execute(f"DELETE FROM published_{table} WHERE run_id = ? AND variant = ?", [run_id, variant])
        connection.execute(f"INSERT INTO published_{table} BY NAME SELECT ? AS run_id, * FROM {table} "
                           "WHERE variant = ?", [run_id, variant])
    connection.execute("DELETE FROM published_samples WHERE run_id = ? AND variant = ?", [run_id, variant])
    connection.execute(
        "INSERT INTO published_samples SELECT ?, variant, benchmark, item_id, sample_index, correct, extracted "
        "FROM current_graded_answers WHERE variant = ? AND config_hash = ?", [run_id, variant, config_hash])


def _published_copies(connection: duckdb.DuckDBPyConnection) -> None:
    """published_<table> for each of PUBLISHED_TABLES: run_id, then the table's columns; a column a migration
    added to the table since is added to its copy (NULL in rows published before)."""
    for table in PUBLISHED_TABLES:
        copy = f"published_{table}"
        connection.execute(f"CREATE TABLE IF NOT EXISTS {copy} AS "
                           f"SELECT CAST(NULL AS VARCHAR) AS run_id, * FROM {table} LIMIT 0")
        have = {row[0] for row in connection.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = ?", [copy]).fetchall()}
        for name, kind in connection.execute(
                "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = ? "
                "ORDER BY ordinal_position", [table]).fetchall():
            if name not in have:
                connection.execute(f'ALTER TABLE {copy} ADD COLUMN "{name}" {kind}')


def pending_migrations(connection: duckdb.DuckDBPyConnection) -> list[Migration]:
    """The migrations a file has not had yet; works on a read-only connection. A file with no tables has none
    pending: it is made whole from schema.sql when first written."""
    if not has_tables(connection):
        return []
    try:
        applied = {row[0] for row in connection.execute("SELECT version FROM schema_migrations").fetchall()}
    except duckdb.CatalogException:   # made before migrations were recorded
        applied = set()
    return [migration for migration in migrations() if migration.version not in applied]


def utc_now() -> datetime:
    """The warehouse stores timestamps as naive UTC (DuckDB TIMESTAMP)."""
    return datetime.now(UTC).replace(tzinfo=None)


def _migrate(connection: duckdb.DuckDBPyConnection, migration: Migration, lake: bool = False) -> None:
    sql = migration.path.read_text()
    try:
        connection.execute(keyless(sql) if lake else sql)
    except duckdb.Error as error:
        raise type(error)(f"warehouse migration {migration.path.name} failed: {error}") from error
    _record(connection, migration)


def _record(connection: duckdb.DuckDBPyConnection, migration: Migration) -> None:
    """The version is the primary key: a migration recorded twice fails its transaction instead."""
    connection.execute("INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
                       [migration.version, migration.name, utc_now()])


@contextmanager
def _transaction(connection: duckdb.DuckDBPyConnection) -> Iterator[None]:
    connection.begin()
    try:
        yield
    except BaseException:
        connection.rollback()
        raise
    connection.commit()


def has_tables(connection: duckdb.DuckDBPyConnection) -> bool:
    return connection.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE database_name = current_database() AND NOT temporary"
    ).fetchone()[0] > 0

