"""Runs Logweave's own processes (worker, collectors) as a user would: real subprocesses.

Each process gets its environment from a Settings-shaped dict of LOGWEAVE_* variables and logs
to a file under the test's tmp dir, printed on failure by the fixture that owns it.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from commands.broker import stop_process_group

VENV_BIN = Path(sys.executable).parent


@dataclass
class ManagedProcess:
    """A child process with its log file; stopped with SIGTERM (or SIGKILL) at teardown."""

    name: str
    argv: list[str]
    env: dict[str, str]
    log_path: Path
    cwd: Path
    process: subprocess.Popen[bytes] | None = field(default=None)

    def start(self) -> ManagedProcess:
        handle = open(self.log_path, "ab")  # noqa: SIM115 - closed with the process
        self.process = subprocess.Popen(self.argv, env=self.env, stdout=handle, stderr=subprocess.STDOUT,
                                        cwd=self.cwd, start_new_session=True)
        return self

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, kill: bool = False, timeout: float = 30.0) -> int | None:
        """SIGTERM (or SIGKILL) the process group and wait; the exit status (None if never started)."""
        if self.process is None:
            return None
        stop_process_group(self.process, kill, timeout)
        return self.process.returncode

    def kill(self) -> None:
        self.stop(kill=True)

    def proc_status(self, field: str) -> int:
        """A /proc/<pid>/status figure in KiB (VmRSS, VmHWM)."""
        for row in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if row.startswith(field + ":"):
                return int(row.split()[1])
        raise KeyError(field)

    def open_files(self) -> int:
        return len(os.listdir(f"/proc/{self.pid}/fd"))

    def log_tail(self, lines: int = 60) -> str:
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


def base_env(extra: dict[str, str]) -> dict[str, str]:
    # the test's own settings only; LOGWEAVE_PURE=1 (core/native.py) carries over, so a pure-path run
    # of the tests runs its processes on the Python paths too
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOGWEAVE_") or k == "LOGWEAVE_PURE"}
    env["PATH"] = f"{VENV_BIN}:{env.get('PATH', '/usr/bin:/bin')}"
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


def worker(workdir: Path, env: dict[str, str], web_port: int, name: str = "worker") -> ManagedProcess:
    argv = [str(VENV_BIN / "faust"), "-A", "app", "worker", "-l", "info", "--web-port", str(web_port)]
    return ManagedProcess(name, argv, base_env({**env, "LOGWEAVE_WORKER__WEB_PORT": str(web_port)}),
                          workdir / f"{name}.log", workdir)


def file_collector(workdir: Path, env: dict[str, str], globs: list[str], name: str = "collector") -> ManagedProcess:
    argv = [str(VENV_BIN / "logweave"), "collect", "files"]
    for pattern in globs:
        argv += ["--path", pattern]
    return ManagedProcess(name, argv, base_env(env), workdir / f"{name}.log", workdir)


# an intake with HTTP only: the other protocols' default ports (24224, 4317, 4318, 5514) are fixed, so a
# test never binds them (another test, or a `make run` on the machine, may hold them)
INTAKE_HTTP_ONLY = {f"LOGWEAVE_INTAKE__{name}_PORT": "0" for name in ("FORWARD", "OTLP_GRPC", "OTLP_HTTP", "SYSLOG")}


def intake(workdir: Path, env: dict[str, str], name: str = "intake") -> ManagedProcess:
    return ManagedProcess(name, [str(VENV_BIN / "logweave"), "intake"], base_env(env), workdir / f"{name}.log", workdir)


def pod_collector(workdir: Path, env: dict[str, str], name: str = "pod-collector") -> ManagedProcess:
    argv = [str(VENV_BIN / "logweave"), "collect", "pods"]
    return ManagedProcess(name, argv, base_env(env), workdir / f"{name}.log", workdir)


def wait_http_ok(url: str, timeout: float, proc: ManagedProcess | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and not proc.alive():
            raise RuntimeError(f"{proc.name} exited early:\n{proc.log_tail()}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.3)
    raise TimeoutError(f"{url} not ready in {timeout}s" + (f":\n{proc.log_tail()}" if proc else ""))


async def wait_http_ok_in_thread(url: str, timeout: float, proc: ManagedProcess | None = None) -> None:
    """`wait_http_ok` for async tests: it polls in a thread, so the test's other tasks (a feed, a reader)
    keep running however long the wait takes (docs/testing.md)."""
    await asyncio.to_thread(wait_http_ok, url, timeout, proc)


def listening_address(port: int) -> str | None:
    """The IPv4 address a TCP socket listens on for `port` (from /proc/net/tcp), or None."""
    for row in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = row.split()
        address, port_hex = fields[1].split(":")
        if fields[3] == "0A" and int(port_hex, 16) == port:  # 0A: LISTEN
            return ".".join(str(int(address[i:i + 2], 16)) for i in (6, 4, 2, 0))
    return None
