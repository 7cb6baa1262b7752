"""A real worker process per test, against the test's own broker."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from app.broker import EmbeddedBroker
from tests.support.worker_harness import WorkerHarness


@pytest.fixture
async def make_worker(broker: EmbeddedBroker, tmp_path: Path) -> AsyncIterator[Callable[..., WorkerHarness]]:
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
