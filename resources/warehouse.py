"""The warehouse as a Dagster resource: short transactions, writers that wait their turn, read-only readers.

Two kinds of warehouse, with the same tables, views and writes:
- a DuckDB file (the embedded default): one process writes at a time; writers wait for the file's lock;
- a DuckLake catalog (`ducklake:postgres:<libpq connection string>`, data as Parquet under `lake_data`): many
  processes and machines write at once; a commit that conflicts with another is retried (DuckLake's own retry).
"""

from __future__ import annotations

import os
import re
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from importlib.util import find_spec
from pathlib import Path

import dagster as dg
import duckdb
import pandas as pd
import psycopg2

from assets.secrets import redact_password
from resources.disk import MIB, require_free_space
from warehouse import apply_schema, has_tables, pending_migrations, table_keys

# Room for a step's writes to the warehouse (its rows, DuckDB's write-ahead log); checked before each write.
WAREHOUSE_MIN_FREE_BYTES = 64 * MIB

LAKE_PREFIX = "ducklake:"
LAKE_CATALOG_PREFIX = "ducklake:postgres:"
# DuckLake's extensions come as PyPI packages (duckdb-ext-*), placed where DuckDB looks for them; nothing is
# downloaded, and DuckDB is told never to try.
EXTENSION_PACKAGE = "duckdb_ext"
LAKE_COMMIT_RETRIES = 20   # 0.1 s growing by 1.5x: about 11 minutes of tries in all
# The key of the PostgreSQL advisory lock held while a process brings a lake's catalog to the current schema.
SCHEMA_LOCK_KEY = 0x5941524453   # "YARDS"

# (process, warehouse) pairs whose schema is already applied: once per process is enough, and two connections
# migrating or replacing the same view at once would conflict. Across processes, DuckDB's file lock lets one
# writer in at a time, so a file is migrated by whichever process opens it first; a lake, by whichever holds
# its advisory lock.
_SCHEMA_APPLIED: set[tuple[int, str]] = set()


class WarehouseResource(dg.ConfigurableResource):
    """Opens the warehouse for one short unit of work at a time.

    A connection is never held across model calls: callers open one, write a batch, and close it, so SQL
    users and the UI can read between writes.
    """

    # $YARDSTICK_WAREHOUSE: a DuckDB file (default warehouse.duckdb under $YARDSTICK_HOME), or a DuckLake catalog
    # `ducklake:postgres:<libpq connection string>`
    path: str
    # $YARDSTICK_LAKE_DATA: where a lake keeps its Parquet files (a folder, or object storage); needed when the
    # lake is created, recorded in its catalog after that
    lake_data: str = ""
    lock_timeout_s: float = 300.0

    @property
    def is_lake(self) -> bool:
        return self.path.startswith(LAKE_PREFIX)

    @property
    def resolved_path(self) -> Path:
        """The DuckDB file; a lake has none."""
        if self.is_lake:
            raise ValueError(f"the warehouse is a DuckLake catalog ({self.location}), not a file")
        return Path(self.path).expanduser().resolve()

    @property
    def location(self) -> str:
        """Where the warehouse is, for messages: the file, or the lake's catalog without its password."""
        if self.is_lake:
            return redact_password(self.path)
        return str(self.resolved_path)

    def exists(self) -> bool:
        """Whether there is a warehouse to read yet (a lake is created by its first writer)."""
        if not self.is_lake:
            return self.resolved_path.exists()
        with self.connect(read_only=True) as connection:
            return has_tables(connection)

    @contextmanager
    def connect(self, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
        if self.is_lake:
            connection = _open_lake(self.path, self.lake_data, read_only)
        else:
            path = self.resolved_path
            try:
                if read_only and not path.exists():
                    raise FileNotFoundError(f"warehouse {path} does not exist yet; run `make run` to create it")
                path.parent.mkdir(parents=True, exist_ok=True)
            except PermissionError as error:   # a folder on the way this user may not enter
                raise WarehouseUnavailableError(_why_unusable(path, f"Permission denied: {error}", read_only)) from None
            if not read_only:
                require_free_space(path.parent, WAREHOUSE_MIN_FREE_BYTES, f"writing to the warehouse {path}")
            connection = _open_when_free(path, read_only, self.lock_timeout_s)
        try:
            if not read_only and (os.getpid(), self.path) not in _SCHEMA_APPLIED:
                with _OPENING:   # one thread applies it; the others wait rather than conflict
                    if (os.getpid(), self.path) not in _SCHEMA_APPLIED:
                        if self.is_lake:
                            with _catalog_lock(self.path):
                                apply_schema(connection, lake=True)
                        else:
                            apply_schema(connection)
                        _SCHEMA_APPLIED.add((os.getpid(), self.path))
            yield connection
        finally:
            connection.close()

    def compact(self, keep_days: float) -> tuple[int, int]:
        """Merge a lake's small data files (each write adds one or more), forget its snapshots older than
        `keep_days` (time travel before then goes) and delete the files only those snapshots used; a file is
        checkpointed. Returns the lake's data files before and after (0, 0 for a file)."""
        if not self.is_lake:
            with self.connect() as connection:
                connection.execute("CHECKPOINT")
            return 0, 0
        with self.connect() as connection:
            before = _lake_data_files(connection)
        # Merging a table's files conflicts with a writer deleting from it meanwhile; the merge is tried again.
        self._commit(lambda connection: connection.execute("CALL ducklake_merge_adjacent_files('lake')"))
        with self.connect() as connection:
            connection.execute("CALL ducklake_expire_snapshots('lake', older_than => now() - to_days(?))",
                               [max(0, round(keep_days))])
            connection.execute("CALL ducklake_cleanup_old_files('lake', cleanup_all => true)")
            return before, _lake_data_files(connection)

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
        def replace(connection: duckdb.DuckDBPyConnection) -> None:
            connection.execute("BEGIN TRANSACTION")
            connection.execute(f"DELETE FROM {table} WHERE variant = ?", [variant])
            if len(frame):
                _insert(connection, table, frame)
            connection.execute("COMMIT")

        self._commit(replace)
        return len(frame)

    def _commit(self, write: Callable[[duckdb.DuckDBPyConnection], None]) -> None:
        """Run a transaction, again if its commit conflicted: DuckDB 1.4 refuses to commit a row deleted and
        inserted again under the same key while an older transaction (a reader) still sees the deleted one."""
        deadline = time.monotonic() + self.lock_timeout_s
        delay = 0.01
        while True:
            with self.connect() as connection:
                try:
                    write(connection)
                    return
                except duckdb.TransactionException as error:
                    if "conflict" not in str(error) or time.monotonic() > deadline:
                        raise
            time.sleep(delay)
            delay = min(delay * 2, 0.5)

    def insert_new(self, table: str, frame: pd.DataFrame) -> int:
        """Insert rows whose primary key is not there yet; existing rows are kept as they are."""
        if not len(frame):
            return 0
        with self.connect() as connection:
            before = connection.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
            if self.is_lake:   # no keys in a lake: leave out the rows whose key is there
                _insert(connection, table, frame, where=f"WHERE NOT EXISTS ({_same_key(table)})")
            else:
                _insert(connection, table, frame, suffix="ON CONFLICT DO NOTHING")
            after = connection.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
        return after - before

    def upsert(self, table: str, frame: pd.DataFrame) -> int:
        """Insert rows, replacing those with the same primary key."""
        if not len(frame):
            return 0
        def replace(connection: duckdb.DuckDBPyConnection) -> None:
            if self.is_lake:   # no keys in a lake: delete the rows with the incoming keys, then insert, at once
                connection.execute("BEGIN TRANSACTION")
                connection.register("incoming_rows", frame)
                try:
                    connection.execute(f"DELETE FROM {table} WHERE EXISTS ({_same_key(table, table)})")
                finally:
                    connection.unregister("incoming_rows")
                _insert(connection, table, frame)
                connection.execute("COMMIT")
            else:
                _insert(connection, table, frame, verb="INSERT OR REPLACE")

        self._commit(replace)
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
            if "lock" not in str(error).lower():
                raise WarehouseUnavailableError(_why_unusable(path, str(error), read_only)) from None
            if time.monotonic() > deadline:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 1.0)


class WarehouseUnavailableError(ConnectionError):
    """The warehouse file cannot be opened: damaged, not a DuckDB file, or not readable or writable here."""


_DAMAGED = ("not a valid DuckDB database file", "Could not read enough bytes", "Corrupt", "checksum")
_NOT_ALLOWED = ("Permission denied", "Read-only file system", "read-only")


def _why_unusable(path: Path, message: str, read_only: bool) -> str:
    """What is wrong with a warehouse file DuckDB would not open, and what to do, from DuckDB's own words."""
    if any(marker in message for marker in _DAMAGED):
        return (f"the warehouse {path} is damaged or not a DuckDB file ({message}); move it aside (the next run "
                "starts a new one) or restore a copy")
    if any(marker in message for marker in _NOT_ALLOWED):
        doing = "read" if read_only else "written (a run, or a reader bringing an older file up to this yardstick)"
        return (f"the warehouse {path} cannot be {doing} here ({message}); fix its permissions, or read a copy "
                "with --warehouse")
    return f"cannot open the warehouse {path}: {message}"


def _insert(connection: duckdb.DuckDBPyConnection, table: str, frame: pd.DataFrame, verb: str = "INSERT",
            where: str = "", suffix: str = "") -> None:
    columns = ", ".join(frame.columns)
    connection.register("incoming_rows", frame)
    try:
        connection.execute(f"{verb} INTO {table} ({columns}) SELECT {columns} FROM incoming_rows {where} {suffix}")
    finally:
        connection.unregister("incoming_rows")


def _same_key(table: str, incoming_in: str = "incoming_rows") -> str:
    """A subquery that finds, for the outer query's row, a row with the same key (schema.sql's primary key): in
    `table` for a row of incoming_rows, or in incoming_rows for a row of `table` (incoming_in=table)."""
    inner = "incoming_rows" if incoming_in == table else table
    matches = " AND ".join(f"k.{column} IS NOT DISTINCT FROM {incoming_in}.{column}" for column in table_keys()[table])
    return f"SELECT 1 FROM {inner} k WHERE {matches}"


def _extension_directory() -> str:
    spec = find_spec(EXTENSION_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("a DuckLake warehouse needs DuckDB's ducklake, postgres and parquet extensions, which come "
                           "with yardstick's Python environment (duckdb-ext-ducklake and friends); reinstall it with "
                           "`make .venv/bin/yardstick`")
    return str(Path(spec.submodule_search_locations[0]) / "extensions")


# Attaching a lake connects to its catalog and reads it (about 0.3 s), so each process attaches once and hands out
# cursors: connections of their own, with their own transactions, over that one attachment.
_LAKES: dict[tuple[int, str, str, bool], duckdb.DuckDBPyConnection] = {}


def _open_lake(path: str, data: str, read_only: bool) -> duckdb.DuckDBPyConnection:
    key = (os.getpid(), path, data, read_only)
    with _OPENING:
        if key not in _LAKES:
            if not path.startswith(LAKE_CATALOG_PREFIX):
                raise ValueError(f"warehouse {redact_password(path)}: a DuckLake warehouse is written "
                                 f"'{LAKE_CATALOG_PREFIX}<libpq connection string>', e.g. "
                                 f"'{LAKE_CATALOG_PREFIX}host=db.internal dbname=yardstick user=yardstick'")
            with _catalog_lock(path):   # the first attach makes the catalog's tables: one process at a time
                _LAKES[key] = _attach_lake(path, data, read_only)
        cursor = _LAKES[key].cursor()
    cursor.execute("USE lake")   # a cursor starts in the in-memory database
    return cursor


def _attach_lake(path: str, data: str, read_only: bool) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB with the lake attached as `lake` and in use, so queries name tables as in a file."""
    # Data in object storage (s3://, gs://, az://...) is reached through DuckDB's httpfs or azure extension, which
    # are not packaged: DuckDB installs them from its repository on first use, and credentials come from a
    # persistent DuckDB secret (CREATE PERSISTENT SECRET). A folder needs nothing downloaded, and nothing is.
    remote = re.match(r"^[a-z0-9]+://", data) is not None
    connection = duckdb.connect(config={"extension_directory": _extension_directory(),
                                        "autoinstall_known_extensions": remote, "autoload_known_extensions": remote})
    try:
        for extension in ("ducklake", "postgres", "parquet"):
            connection.execute(f"LOAD {extension}")
        # A commit that conflicts with another writer's is retried by DuckLake, with a growing wait; a matrix's
        # variants finishing a step at the same moment may need more than its default ten (about 11 s in all).
        connection.execute(f"SET ducklake_max_retry_count = {LAKE_COMMIT_RETRIES}")
        options = [f"DATA_PATH {_sql_string(data)}"] if data else []
        if read_only:
            options.append("READ_ONLY")
        attach_options = f" ({', '.join(options)})" if options else ""
        connection.execute(f"ATTACH {_sql_string(path)} AS lake{attach_options}")
        connection.execute("USE lake")
    except duckdb.Error as error:
        connection.close()
        hint = (" Set YARDSTICK_LAKE_DATA to the folder or object-store path for its Parquet files."
                if "DATA_PATH" in str(error) else "")
        raise type(error)(f"cannot attach the warehouse {redact_password(path)}: {error}.{hint}") from None
    return connection


@contextmanager
def _catalog_lock(path: str) -> Iterator[None]:
    """Hold the lake's advisory lock in its PostgreSQL catalog, so one process at a time creates or migrates it."""
    try:
        catalog = psycopg2.connect(path.removeprefix(LAKE_CATALOG_PREFIX))
    except psycopg2.Error as error:
        raise ConnectionError(f"cannot reach the warehouse's catalog {redact_password(path)}: "
                              f"{str(error).strip()}; check the connection string in YARDSTICK_WAREHOUSE and that the "
                              "database exists (createdb)") from None
    try:
        catalog.autocommit = True
        with catalog.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_lock(%s)", [SCHEMA_LOCK_KEY])
        yield
    finally:
        catalog.close()   # the lock goes with the session


def _lake_data_files(connection: duckdb.DuckDBPyConnection) -> int:
    """The Parquet files the lake's current snapshot reads, from its catalog."""
    return connection.execute("SELECT count(*) FROM __ducklake_metadata_lake.ducklake_data_file "
                              "WHERE end_snapshot IS NULL").fetchone()[0]


def _sql_string(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"
