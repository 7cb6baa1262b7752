"""A private PostgreSQL server for development (`logweave postgres`, `make run`) and the tests.

It runs Debian's postgresql-15 binaries on a data directory of its own, bound to 127.0.0.1 with a
private socket directory; the system service is never touched. PostgreSQL refuses to run as root,
so when started as root the server runs as the `postgres` user (the data directory is handed to it).
Authentication is `trust` on loopback: this is a development store, never a production one.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from core.errors import ConfigError

PG_VERSIONS = ("15", "16", "17")


def pg_bin(program: str) -> str:
    for version in PG_VERSIONS:
        candidate = Path(f"/usr/lib/postgresql/{version}/bin/{program}")
        if candidate.exists():
            return str(candidate)
    found = shutil.which(program)
    if found is None:
        raise ConfigError(f"PostgreSQL's {program} is not installed: apt-get install postgresql-15 (make system-deps)")
    return found


def _as_server_user(argv: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *argv] if os.geteuid() == 0 else argv


def _hand_over(path: Path) -> None:
    """Make `path` the server user's when running as root, and its parents traversable."""
    if os.geteuid() != 0:
        return
    shutil.chown(path, "postgres", "postgres")
    for parent in path.resolve().parents:
        mode = parent.stat().st_mode
        if not mode & 0o001:
            raise ConfigError(f"{parent} is not traversable by the postgres user (mode {oct(mode & 0o777)}); "
                              "put the PostgreSQL data directory elsewhere")


@dataclass
class LocalPostgres:
    """One server on `data_dir` (created by initdb on first start) listening on 127.0.0.1:`port`."""

    data_dir: Path
    port: int
    database: str = "logweave"
    fsync: bool = True  # tests turn it off: their data need not survive a machine crash

    def __post_init__(self) -> None:
        self.data_dir = self.data_dir.resolve()  # the server changes into its data directory

    @property
    def dsn(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{self.database}"

    @property
    def socket_dir(self) -> Path:
        return self.data_dir / "socket"

    @property
    def log_path(self) -> Path:
        return self.data_dir / "server.log"

    def init(self) -> None:
        """initdb unless the directory already holds a cluster."""
        pgdata = self.data_dir / "pgdata"
        if (pgdata / "PG_VERSION").exists():
            return
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.data_dir.chmod(0o755)
        _hand_over(self.data_dir)
        subprocess.run(_as_server_user([pg_bin("initdb"), "-D", str(pgdata), "-U", "postgres", "--auth=trust",
                                        "-E", "UTF8", "--no-sync"]), check=True, capture_output=True)
        self.socket_dir.mkdir(exist_ok=True)
        _hand_over(self.socket_dir)

    def start(self, timeout: float = 60.0) -> LocalPostgres:
        """Start in the background (pg_ctl -w) and create the database if it is missing."""
        self.init()
        options = f"-p {self.port} -k {self.socket_dir} -c listen_addresses=127.0.0.1"
        if not self.fsync:
            options += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        started = subprocess.run(_as_server_user([pg_bin("pg_ctl"), "-D", str(self.data_dir / "pgdata"), "-l",
                                                  str(self.log_path), "-o", options, "-w", "-t", str(int(timeout)),
                                                  "start"]), capture_output=True, text=True)
        if started.returncode != 0:
            log_tail = self.log_path.read_text()[-600:] if self.log_path.exists() else ""
            raise ConfigError(f"PostgreSQL on 127.0.0.1:{self.port} did not start: {started.stderr.strip()} "
                              f"{log_tail.strip()}")
        self.create_database()
        return self

    def create_database(self) -> None:
        psql = [pg_bin("psql"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "-tA"]
        exists = subprocess.run([*psql, "-c", f"SELECT 1 FROM pg_database WHERE datname = '{self.database}'"],
                                check=True, capture_output=True, text=True).stdout.strip()
        if exists != "1":
            subprocess.run([*psql, "-c", f'CREATE DATABASE "{self.database}"'], check=True, capture_output=True)

    def stop(self, mode: str = "fast") -> None:
        """pg_ctl stop (`immediate` is a crash: no shutdown checkpoint)."""
        subprocess.run(_as_server_user([pg_bin("pg_ctl"), "-D", str(self.data_dir / "pgdata"), "-m", mode, "-w",
                                        "stop"]), capture_output=True)

    def run_foreground(self) -> int:
        """Start, then wait until SIGTERM/SIGINT and stop cleanly (for Procfile and containers)."""
        self.start()
        print(f"logweave postgres: serving {self.dsn} (data in {self.data_dir})", flush=True)
        stopping = False

        def on_signal(signum: int, frame: object) -> None:
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        pid_file = self.data_dir / "pgdata" / "postmaster.pid"
        try:
            while not stopping and pid_file.exists():
                time.sleep(0.5)
        finally:
            self.stop()
        return 0
