"""Which Kafka a benchmark runs against: `KAFKA_BROKERS` when set (an external Kafka), else a fresh
embedded noida-db. The benchmark prints `label` beside its figures, and the broker's CPU only when it
runs here (`pids`); against an external Kafka each run gets its own topic prefix and consumer group
(`run_prefix`) so runs never read each other's records.
"""

from __future__ import annotations

import itertools
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from commands.broker import EmbeddedBroker, free_port
from tests.bench.measure import cpu_seconds, peak_rss_mib, tree_pids

EMBEDDED_LABEL = "noida-db (embedded Kafka-protocol broker, fresh per run)"
_RUNS = itertools.count()  # run prefixes stay distinct within one second too


@dataclass
class BenchBroker:
    bootstrap: str
    label: str
    root_pid: int | None = None
    run_prefix: str = ""

    @property
    def external(self) -> bool:
        return self.root_pid is None

    def cpu_seconds(self) -> float | None:
        """CPU of the broker's process tree (None for an external broker, which runs elsewhere)."""
        if self.root_pid is None:
            return None
        return sum(cpu_seconds(p) for p in tree_pids(self.root_pid))

    def peak_rss_mib(self) -> float | None:
        """Peak RSS of the broker's largest process (None for an external broker)."""
        if self.root_pid is None:
            return None
        return max(peak_rss_mib(p) for p in tree_pids(self.root_pid))


def logweave_env(bootstrap: str, prefix: str = "", app: str = "") -> dict[str, str]:
    """The Kafka settings of the Logweave processes of one run: its broker and, on an external Kafka
    (`prefix` set), its own topics and consumer group `logweave-<prefix><app>`; `app` names a second
    consumer group of the same run (e.g. a drain-only worker)."""
    env = {"LOGWEAVE_KAFKA__BROKERS": bootstrap}
    if prefix:
        env["LOGWEAVE_KAFKA__TOPIC_PREFIX"] = prefix
    if prefix or app:
        env["LOGWEAVE_WORKER__APP_ID"] = f"logweave-{prefix.rstrip('.')}{app}"
    return env


def external_brokers() -> str:
    """KAFKA_BROKERS, or "" when the benchmarks start their own broker."""
    return os.environ.get("KAFKA_BROKERS", "").strip()


def broker_label() -> str:
    """What `bench_broker` runs on, for a benchmark's printout and results."""
    external = external_brokers()
    return f"external Kafka at {external} (KAFKA_BROKERS)" if external else EMBEDDED_LABEL


@contextmanager
def bench_broker(workdir: Path, name: str) -> Iterator[BenchBroker]:
    """An external broker named by KAFKA_BROKERS, or a fresh noida-db killed at the end."""
    external = external_brokers()
    if external:
        yield BenchBroker(external, broker_label(), run_prefix=f"bench{int(time.time())}r{next(_RUNS)}{name}.")
        return
    broker = EmbeddedBroker(workdir / f"broker-{name}", free_port()).start(log_path=workdir / f"broker-{name}.log")
    try:
        assert broker.process is not None
        yield BenchBroker(broker.bootstrap, EMBEDDED_LABEL, broker.process.pid)
    finally:
        broker.stop(kill=True)
