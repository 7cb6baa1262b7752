"""Shared fixtures: a real Kafka-protocol broker (noida-db), real worker processes on it, and the Kubernetes
API test server the pod collector reads."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest

from commands.broker import PORT_RANGE_ENV, EmbeddedBroker, port_range
from kafka_io.fetcher_close import close_fetchers_reliably
from tests.support.kafka import start_broker
from tests.support.kube_api import FakeKubeApi
from tests.support.postgres import postgres_dsn, postgres_server
from tests.support.worker_harness import WorkerHarness


def _disjoint_port_range() -> None:
    """Each pytest-xdist worker takes its servers' ports from its own slice of the run's range
    (FREE_PORT_RANGE, else commands.broker.free_port's default), so two workers never race for the same
    port between choosing it and binding it. Only workers set it: the controller imports this file too,
    and a range it set was inherited by every worker (each then used the whole range, and a worker's
    web port was once taken by another worker's server before it bound it)."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    if not (worker.startswith("gw") and worker[2:].isdigit()):
        return  # the controller, or a run without xdist: the whole range
    index = int(worker[2:])
    workers = max(1, int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1") or 1))
    low, high = port_range()
    size = max(100, (high - low + 1) // workers)
    start = low + (index % max(1, (high - low + 1) // size)) * size
    os.environ[PORT_RANGE_ENV] = f"{start}-{start + size - 1}"


_disjoint_port_range()
# the tests' own aiokafka consumers stop as the product's do, not hang when a rebalance precedes the stop
close_fetchers_reliably()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests marked `starts_first` go to the front, the rest stay in collection order. pytest-xdist
    hands its first quarter of tests out round robin, so each of these starts at once on its own worker
    and runs beside the short tests instead of starting late and leaving the suite waiting on it alone
    (the 50,000-line delivery test ran 140 s, its last 90 s or so alone). Only two are marked: a dozen long
    tests started together made group members miss heartbeats on two cores (docs/testing.md)."""
    items.sort(key=lambda item: item.get_closest_marker("starts_first") is None)  # stable: the rest keep their order


__all__ = ["postgres_dsn", "postgres_server"]  # one PostgreSQL per session, a fresh database per test


@pytest.fixture
async def kube() -> AsyncIterator[FakeKubeApi]:
    """The Kubernetes API test server (tests/support/kube_api.py), on a free port of its own."""
    api = await FakeKubeApi().start()
    try:
        yield api
    finally:
        await api.stop()


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[EmbeddedBroker]:
    """A fresh noida-db broker on a free port; SIGKILLed at teardown (docs/testing.md)."""
    embedded = start_broker(tmp_path / "broker")
    try:
        yield embedded
    finally:
        embedded.stop(kill=True)


@pytest.fixture
async def make_worker(broker: EmbeddedBroker, tmp_path: Path) -> AsyncIterator[Callable[..., WorkerHarness]]:
    """Factory of `faust -A app worker` processes on the test's broker; stopped at teardown."""
    made: list[WorkerHarness] = []

    def factory(overrides: dict[str, str] | None = None, sinks: tuple[str, ...] = ("file",)) -> WorkerHarness:
        harness = WorkerHarness(broker, tmp_path, overrides or {}, sinks)
        made.append(harness)
        return harness

    yield factory
    for harness in made:
        await harness.close()
        if harness.process is not None and harness.process.log_path.exists():
            print(f"--- {harness.process.name} log tail ---\n{harness.process.log_tail(40)}")
