"""A real PostgreSQL 15 for the store and query tests: one server per test session, one fresh
database per test (CREATE DATABASE takes a fraction of a second, a server start seconds).

The server is commands.local_postgres.LocalPostgres (Debian postgresql-15, initdb in a temporary
directory, run as the `postgres` user when the tests run as root), with fsync off: test data need
not survive a machine crash, and a clean or immediate stop still keeps every committed row.
"""

from __future__ import annotations

import itertools
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from commands.broker import free_port
from commands.local_postgres import LocalPostgres, pg_bin

_names = itertools.count()


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[LocalPostgres]:
    root = Path(tempfile.mkdtemp(prefix="logweave-pg-"))
    root.chmod(0o755)  # the server runs as the postgres user, which must reach its data directory
    server = LocalPostgres(root / "pg", free_port(), fsync=False).start()
    try:
        yield server
    finally:
        server.stop("immediate")
        shutil.rmtree(root, ignore_errors=True)


def fresh_database(server: LocalPostgres, prefix: str = "t") -> str:
    """Create an empty database on `server`; return its DSN."""
    name = f"{prefix}_{next(_names)}"
    subprocess.run([pg_bin("psql"), "-h", "127.0.0.1", "-p", str(server.port), "-U", "postgres", "-q",
                    "-c", f"DROP DATABASE IF EXISTS {name}", "-c", f"CREATE DATABASE {name}"],
                   check=True, capture_output=True)
    return f"postgresql://postgres@127.0.0.1:{server.port}/{name}"


@pytest.fixture
def postgres_dsn(postgres_server: LocalPostgres) -> str:
    """DSN of a new, empty database for this test."""
    return fresh_database(postgres_server)
