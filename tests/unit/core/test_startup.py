"""Every process refuses a bad setting, and gives up on a silent broker, with one line and no traceback.

Real processes as an operator starts them (the faust CLI for the worker, `logweave ...`, the
collectors' `python -m` entry points), started side by side to keep the test short. The broker is
"unreachable" because nothing listens on the port given: a closed port, not a mock.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
BIN = Path(sys.executable).parent
# `logweave collect files|pods` share the `logweave` entry point with prepare and replay
PROGRAMS: dict[str, list[str]] = {
    "worker": [str(BIN / "faust"), "-A", "app", "worker", "-l", "info", "--web-port", "0"],
    "python -m collectors.files": [sys.executable, "-m", "collectors.files"],
    "python -m collectors.pods": [sys.executable, "-m", "collectors.pods"],
    "logweave prepare": [str(BIN / "logweave"), "prepare", "--timeout", "1"],
    "logweave replay": [str(BIN / "logweave"), "replay", "--sink", "file", "--from", "earliest"],
}


def clean_env(tmp_path: Path, extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOGWEAVE_")
           and k not in ("BATCH_SIZE", "KAFKA_BROKERS", "TTL", "ETCD_SERVERS")}
    kubeconfig = tmp_path / "kubeconfig"  # loading it connects to nothing
    kubeconfig.write_text("apiVersion: v1\nkind: Config\ncurrent-context: c\nclusters: [{name: k, cluster: "
                          "{server: 'http://127.0.0.1:1'}}]\ncontexts: [{name: c, context: {cluster: k, user: u}}]\n"
                          "users: [{name: u, user: {token: t}}]\n")
    env.update({"LOGWEAVE_PODS__KUBECONFIG": str(kubeconfig), "LOGWEAVE_PODS__METRICS_PORT": "0",
                "LOGWEAVE_COLLECTOR__METRICS_PORT": "0", "LOGWEAVE_COLLECTOR__PATHS": str(tmp_path / "none/*.log"),
                "LOGWEAVE_COLLECTOR__CHECKPOINT_DIR": str(tmp_path / "ckpt"),
                "LOGWEAVE_WORKER__DATA_DIR": str(tmp_path / "worker"), "PYTHONPATH": str(ROOT), **extra})
    return env


def run_all(tmp_path: Path, extra: dict[str, str], timeout: float = 120) -> dict[str, tuple[int, str]]:
    """Start every program at once with the same environment; their exit status and stderr."""
    env = clean_env(tmp_path, extra)
    running = {name: subprocess.Popen(argv, env=env, cwd=tmp_path, stdout=subprocess.DEVNULL,
                                      stderr=subprocess.PIPE, text=True) for name, argv in PROGRAMS.items()}
    out: dict[str, tuple[int, str]] = {}
    for name, proc in running.items():
        try:
            _, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            _, err = proc.communicate()
            pytest.fail(f"{name} was still running after {timeout}s: {err[-2000:]}")
        out[name] = (proc.returncode, err)
    return out


def test_a_bad_setting_ends_every_process_with_the_check_config_line(tmp_path: Path) -> None:
    env = clean_env(tmp_path, {"BATCH_SIZE": "0"})
    check = subprocess.run([str(BIN / "logweave"), "check-config"], env=env, cwd=tmp_path, capture_output=True,
                           text=True)
    assert check.returncode == 2
    line = check.stderr.strip()
    assert line.startswith("logweave: invalid setting sinks.batch_size (BATCH_SIZE) = '0'"), line
    for name, (status, err) in run_all(tmp_path, {"BATCH_SIZE": "0"}).items():
        assert (status, err.strip()) == (2, line), f"{name}: {status} {err[-3000:]}"


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_an_unreachable_broker_ends_every_process_with_one_line_naming_it(tmp_path: Path) -> None:
    address = f"127.0.0.1:{closed_port()}"
    results = run_all(tmp_path, {"LOGWEAVE_KAFKA__BROKERS": address, "LOGWEAVE_KAFKA__CONNECT_TIMEOUT": "1s"})
    for name, (status, err) in results.items():
        last = err.strip().splitlines()[-1] if err.strip() else ""
        assert status == 3, f"{name}: {status} {err[-3000:]}"
        assert "Traceback" not in err, f"{name}: {err[-3000:]}"
        assert last.startswith(f"logweave: Kafka at {address} did not answer within"), f"{name}: {last}"
        assert "1s" in last and "LOGWEAVE_KAFKA__BROKERS" in last
