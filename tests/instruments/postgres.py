"""A private PostgreSQL server for the tests: the catalog database of a DuckLake warehouse, as in a deployment.

It is Debian's `postgresql` package (`make test` installs it as root, as on a fresh machine), started from a new
data folder, listening only on a Unix socket in that folder (no TCP port to collide with anything), with
trust authentication and no fsync. As root, the server runs as the `postgres` user, since PostgreSQL refuses
to run as root. It is a test instrument, not part of yardstick.

    with running_postgres() as server:
        server.create_database("lake")
        server.dsn("lake")   # a libpq connection string
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg2

SUPERUSER = "yardstick"
SERVER_USER = "postgres"   # the account Debian's package makes; the server runs as it when tests run as root


class PostgresUnavailableError(RuntimeError):
    pass


@dataclass(frozen=True)
class PostgresServer:
    socket_dir: Path

    def dsn(self, database: str) -> str:
        return f"host={self.socket_dir} user={SUPERUSER} dbname={database}"

    def url(self, database: str) -> str:
        """The same as a URL, as dagster-postgres takes it: with the psycopg2 driver named, since SQLAlchemy 2.1 reads
        a bare postgresql:// with psycopg 3, which dagster-postgres's SQL does not run on."""
        return f"postgresql+psycopg2://{SUPERUSER}@/{database}?host={self.socket_dir}"

    def create_database(self, name: str) -> str:
        """A new, empty database; returns its connection string."""
        connection = psycopg2.connect(self.dsn("postgres"))
        try:
            connection.autocommit = True
            with connection.cursor() as cursor:
                cursor.execute(f'CREATE DATABASE "{name}"')
        finally:
            connection.close()
        return self.dsn(name)


def server_binaries() -> Path:
    """The folder with initdb and pg_ctl: Debian keeps them out of PATH, under /usr/lib/postgresql/<major>/bin."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda path: int(path.parts[-3]))
    if found:
        return found[-1].parent
    initdb = shutil.which("initdb")
    if initdb:
        return Path(initdb).parent
    raise PostgresUnavailableError("PostgreSQL's server is not installed; the DuckLake tests start one for its "
                                   "catalog: `apt-get install postgresql` (`make test` does, as root)")


@contextmanager
def running_postgres() -> Iterator[PostgresServer]:
    binaries = server_binaries()
    folder = Path(tempfile.mkdtemp(prefix="yardstick-pg-"))
    as_server_user: list[str] = []
    if os.geteuid() == 0:
        account = pwd.getpwnam(SERVER_USER)
        os.chown(folder, account.pw_uid, account.pw_gid)
        as_server_user = ["runuser", "-u", SERVER_USER, "--"]
    data, log = folder / "data", folder / "server.log"

    def run(*argv: str) -> None:
        done = subprocess.run([*as_server_user, *argv], capture_output=True, text=True, timeout=120)
        if done.returncode:
            tail = log.read_text()[-2000:] if log.exists() else ""
            raise PostgresUnavailableError(f"{' '.join(argv[:2])} failed ({done.returncode}): "
                                           f"{done.stderr.strip()}\n{tail}")

    try:
        run(str(binaries / "initdb"), "-D", str(data), "-A", "trust", "-U", SUPERUSER, "--no-sync")
        options = f"-c listen_addresses='' -k {folder} -c fsync=off -c max_connections=200"
        run(str(binaries / "pg_ctl"), "start", "-w", "-D", str(data), "-l", str(log), "-o", options)
        try:
            yield PostgresServer(folder)
        finally:
            run(str(binaries / "pg_ctl"), "stop", "-D", str(data), "-m", "immediate")
    finally:
        shutil.rmtree(folder, ignore_errors=True)
