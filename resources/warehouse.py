"""The DuckDB warehouse as a Dagster resource: short transactions, one writer, read-only readers."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
import duckdb
import pandas as pd

from resources.disk import MIB, require_free_space
from warehouse import apply_schema, pending_migrations

# Room for a step's writes to the warehouse (its rows, DuckDB's write-ahead log); checked before each write.
WAREHOUSE_MIN_FREE_BYTES = 64 * MIB

# (process, file) pairs whose schema is already applied: once per process is enough, and two connections
# migrating or replacing the same view at once would conflict. Across processes, DuckDB's file lock lets one
# writer in at a time, so a file is migrated by whichever process opens it first.
_SCHEMA_APPLIED: set[tuple[int, Path]] = set()


class WarehouseResource(dg.ConfigurableResource):
    """Opens the DuckDB file for one short unit of work at a time.

    A connection is never held across model calls: callers open one, write a batch, and close it, so SQL
    users and the UI can read the file between writes.
    """

    path: str   # the DuckDB file ($YARDSTICK_WAREHOUSE, else warehouse.duckdb under $YARDSTICK_HOME)
    lock_timeout_s: float = 300.0

    @property
    def resolved_path(self) -> Path:
        return Path(self.path).expanduser().resolve()

    @contextmanager
    def connect(self, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
        path = self.resolved_path
        if read_only and not path.exists():
            raise FileNotFoundError(f"warehouse {path} does not exist yet; run `make run` to create it")
        path.parent.mkdir(parents=True, exist_ok=True)
        if not read_only:
            require_free_space(path.parent, WAREHOUSE_MIN_FREE_BYTES, f"writing to the warehouse {path}")
        connection = _open_when_free(path, read_only, self.lock_timeout_s)
        try:
            if not read_only and (os.getpid(), path) not in _SCHEMA_APPLIED:
                with _OPENING:   # one thread applies it; the others wait rather than conflict
                    if (os.getpid(), path) not in _SCHEMA_APPLIED:
                        apply_schema(connection)
                        _SCHEMA_APPLIED.add((os.getpid(), path))
            yield connection
        finally:
            connection.close()

    def upgrade(self) -> int:
        """Bring a file an older yardstick made to the current schema before reading it (readers connect
        read-only and never migrate); a brief write, only when a migration is pending. Returns how many ran."""
        with self.connect(read_only=True) as reader:
            pending = len(pending_migrations(reader))
        if pending:
            with self.connect():
                pass
        return pending

    def query(self, sql: str, params: Sequence[object] = ()) -> pd.DataFrame:
        with self.connect() as connection:
            return connection.execute(sql, list(params)).df()

    def replace_partition(self, table: str, variant: str, frame: pd.DataFrame) -> int:
        """Replace every row of `variant` in `table` with `frame`, in one transaction."""
        with self.connect() as connection:
            connection.execute("BEGIN TRANSACTION")
            connection.execute(f"DELETE FROM {table} WHERE variant = ?", [variant])
            if len(frame):
                _insert(connection, table, frame, on_conflict="")
            connection.execute("COMMIT")
        return len(frame)

    def insert_new(self, table: str, frame: pd.DataFrame) -> int:
        """Insert rows whose primary key is not there yet; existing rows are kept as they are."""
        if not len(frame):
            return 0
        with self.connect() as connection:
            before = connection.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
            _insert(connection, table, frame, on_conflict="ON CONFLICT DO NOTHING")
            after = connection.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
        return after - before

    def upsert(self, table: str, frame: pd.DataFrame) -> int:
        """Insert rows, replacing those with the same primary key."""
        if not len(frame):
            return 0
        with self.connect() as connection:
            _insert(connection, table, frame, on_conflict="OR REPLACE")
        return len(frame)


# Connections to one file in one process share a database instance that the first of them creates. Two threads
# opening at once (a step writing while a sensor or a test reads) could get the instance before the Python
# client had registered its DataFrame scan in it ("pandas_scan does not exist"), so opening is serialised.
_OPENING = threading.Lock()


def _open_when_free(path: Path, read_only: bool, timeout_s: float) -> duckdb.DuckDBPyConnection:
    """DuckDB lets one process write a file at a time; steps running side by side take turns.

    Writers hold the file only for a short transaction, so waiting for the lock is brief.
    """
    deadline = time.monotonic() + timeout_s
    delay = 0.05
    while True:
        try:
            with _OPENING:
                return duckdb.connect(str(path), read_only=read_only)
        except duckdb.IOException as error:
            if "lock" not in str(error).lower() or time.monotonic() > deadline:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 1.0)


def _insert(connection: duckdb.DuckDBPyConnection, table: str, frame: pd.DataFrame, on_conflict: str) -> None:
    columns = ", ".join(frame.columns)
    connection.register("incoming_rows", frame)
    try:
        if on_conflict == "OR REPLACE":
            connection.execute(f"INSERT OR REPLACE INTO {table} ({columns}) SELECT {columns} FROM incoming_rows")
        else:
            connection.execute(
                f"INSERT INTO {table} ({columns}) SELECT {columns} FROM incoming_rows {on_conflict}"
            )
    finally:
        connection.unregister("incoming_rows")
