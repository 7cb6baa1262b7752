"""The embedded Kafka-protocol broker (noida-db) for development, the demo and tests.

noida-db speaks the Kafka wire protocol with correct end offsets, idempotent and transactional
producers, and keeps data across restarts in its data directory (memory plus a JSON snapshot).
It is not Kafka: production points `KAFKA_BROKERS` at a real Kafka cluster.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from core.errors import ConfigError, RetriableError


def noida_binary() -> str:
    """Path of the noida-db server binary shipped inside the `noida-db` wheel."""
    try:
        import noida_db
    except ImportError:
        raise ConfigError("the embedded broker is a development tool and needs the noida-db package: "
                          "pip install 'logweave[dev]' (make install does)") from None
    binary = Path(noida_db.__file__).parent / "noida-db"
    if binary.exists():
        if not os.access(binary, os.X_OK):
            binary.chmod(0o755)
        return str(binary)
    found = shutil.which("noida-db") or str(Path(sys.executable).with_name("noida-db"))
    if not Path(found).exists():
        raise ConfigError("the noida-db package has no server binary for this platform")
    return found


def stop_process_group(process: subprocess.Popen[bytes], kill: bool = False, timeout: float = 30.0) -> None:
    """SIGTERM (or SIGKILL) a process started with `start_new_session`, and its children; wait for it."""
    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGKILL if kill else signal.SIGTERM)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


PORT_RANGE_ENV = "FREE_PORT_RANGE"  # not LOGWEAVE_*: that prefix is the settings model's
_DEFAULT_PORT_RANGE = (20000, 32000)  # below Linux's ephemeral range, where outgoing connections take ports
_handed_out: set[int] = set()


def free_port() -> int:
    """A loopback port free for TCP and UDP that this process has not handed out before.

    Taken from outside the kernel's ephemeral range: a port bound to 0 and released comes from that
    range, and any outgoing connection may take it again before the server binds it. FREE_PORT_RANGE
    (`low-high`) narrows the range, so parallel test processes can be given disjoint ones.
    """
    low, high = port_range()
    rng = random.Random()
    for _ in range(2000):
        port = rng.randint(low, high)
        if port in _handed_out:
            continue
        try:
            with socket.socket() as tcp, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                tcp.bind(("127.0.0.1", port))
                udp.bind(("127.0.0.1", port))
        except OSError:
            continue
        _handed_out.add(port)
        return port
    raise RuntimeError(f"no free port left in {low}-{high} ({PORT_RANGE_ENV})")


def port_range() -> tuple[int, int]:
    value = os.environ.get(PORT_RANGE_ENV, "")
    if not value:
        return _DEFAULT_PORT_RANGE
    try:
        low, high = (int(part) for part in value.split("-", 1))
    except ValueError:
        raise ConfigError(f"{PORT_RANGE_ENV}={value!r}: expected low-high, e.g. 20000-23999") from None
    return low, high


def wait_for_port(host: str, port: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RetriableError(f"nothing answered on {host}:{port} within {timeout:.0f}s")


@dataclass
class EmbeddedBroker:
    """A noida-db process serving Kafka (and optionally Elasticsearch) on loopback ports."""

    data_dir: Path
    kafka_port: int
    elasticsearch_port: int | None = None
    process: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.kafka_port}"

    def command(self) -> list[str]:
        services = "kafka" if self.elasticsearch_port is None else "kafka,elasticsearch"
        cmd = [noida_binary(), "start", "--data-dir", str(self.data_dir), "--only", services,
               "--kafka-port", str(self.kafka_port)]
        if self.elasticsearch_port is not None:
            cmd += ["--elasticsearch-port", str(self.elasticsearch_port)]
        return cmd

    def start(self, timeout: float = 30.0, log_path: Path | None = None) -> EmbeddedBroker:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        out = open(log_path, "ab") if log_path else subprocess.DEVNULL  # noqa: SIM115
        self.process = subprocess.Popen(self.command(), stdout=out, stderr=subprocess.STDOUT,
                                        start_new_session=True)
        wait_for_port("127.0.0.1", self.kafka_port, timeout)
        if self.elasticsearch_port is not None:
            wait_for_port("127.0.0.1", self.elasticsearch_port, timeout)
        return self

    def stop(self, kill: bool = False, timeout: float = 30.0) -> None:
        if self.process is not None:
            stop_process_group(self.process, kill, timeout)


def run_foreground(data_dir: Path, kafka_port: int, linger: float = 4.0) -> int:
    """`logweave broker`: run noida-db until Ctrl-C/SIGTERM, then linger before stopping it.

    Under a Procfile runner every process gets the signal at once; lingering lets workers and
    collectors flush, commit and leave their group before the broker goes away.
    """
    data_dir.mkdir(parents=True, exist_ok=True)
    broker = EmbeddedBroker(data_dir=data_dir, kafka_port=kafka_port)
    print(f"logweave broker: embedded Kafka-protocol broker (noida-db) on 127.0.0.1:{kafka_port}, "
          f"data in {data_dir}. For development and tests only; production sets KAFKA_BROKERS "
          "to a real Kafka cluster.", flush=True)
    process = subprocess.Popen(broker.command(), start_new_session=True)
    stopping: list[int] = []
    signal.signal(signal.SIGTERM, lambda signum, frame: stopping.append(signum))
    signal.signal(signal.SIGINT, lambda signum, frame: stopping.append(signum))
    while process.poll() is None and not stopping:
        time.sleep(0.2)
    if process.poll() is None:
        if linger > 0:
            print(f"logweave broker: stopping in {linger:.0f}s (clients are shutting down)", flush=True)
            time.sleep(linger)
        process.terminate()
    code = process.wait()
    return 0 if stopping else code
