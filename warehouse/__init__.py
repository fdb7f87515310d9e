"""The DuckDB warehouse: schema, migrations and views as SQL files, and the runner that applies them."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import duckdb

SQL_DIR = Path(__file__).parent
SCHEMA_FILE = SQL_DIR / "schema.sql"
VIEWS_FILE = SQL_DIR / "views.sql"
MIGRATIONS_DIR = SQL_DIR / "migrations"
MIGRATION_FILE_NAME = re.compile(r"(?P<version>\d{3})_(?P<name>[a-z0-9_]+)\.sql")


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


def apply_schema(connection: duckdb.DuckDBPyConnection) -> None:
    """Bring the file to the current schema and (re)create the views; safe to run on every connection.

    A file without tables is made from schema.sql and recorded as having had every migration. An older file
    gets the tables it lacks from schema.sql, then each migration it has not had, once, each in a transaction
    with its row in schema_migrations. One connection at a time: WarehouseResource serialises this in a
    process, and DuckDB's file lock across processes.
    """
    known = migrations()
    fresh = not _has_tables(connection)
    with _transaction(connection):
        connection.execute(SCHEMA_FILE.read_text())
        if fresh:
            for migration in known:
                _record(connection, migration)
    applied = {row[0] for row in connection.execute("SELECT version FROM schema_migrations").fetchall()}
    for migration in known:
        if migration.version not in applied:
            with _transaction(connection):
                _migrate(connection, migration)
    connection.execute(VIEWS_FILE.read_text())


def pending_migrations(connection: duckdb.DuckDBPyConnection) -> list[Migration]:
    """The migrations a file has not had yet; works on a read-only connection. A file with no tables has none
    pending: it is made whole from schema.sql when first written."""
    if not _has_tables(connection):
        return []
    try:
        applied = {row[0] for row in connection.execute("SELECT version FROM schema_migrations").fetchall()}
    except duckdb.CatalogException:   # made before migrations were recorded
        applied = set()
    return [migration for migration in migrations() if migration.version not in applied]


def utc_now() -> datetime:
    """The warehouse stores timestamps as naive UTC (DuckDB TIMESTAMP)."""
    return datetime.now(UTC).replace(tzinfo=None)


def _migrate(connection: duckdb.DuckDBPyConnection, migration: Migration) -> None:
    try:
        connection.execute(migration.path.read_text())
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


def _has_tables(connection: duckdb.DuckDBPyConnection) -> bool:
    return connection.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE database_name = current_database() AND NOT temporary"
    ).fetchone()[0] > 0

