"""DrainRunner reports its sink's state and last error, and the age of the oldest record it holds.

The sink is a stand-in that fails on demand: the states depend on what the sink answers, which a
real server cannot be made to answer in order here (tests/integration/worker/test_sink_health.py
runs a real etcd that is down, then up)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from agents.drain_runner import DrainRunner, SinkRecord
from agents.sink_health import SinkState
from core.errors import PermanentError, RetriableError
from core.models import ParsedChunk
from core.settings import Settings
from sinks.base import Sink, SinkBatch, WriteResult


class FlakySink(Sink):
    name = "file"

    def __init__(self, start_failures: int, write_failures: int) -> None:
        self.start_failures, self.write_failures = start_failures, write_failures
        self.written = 0

    async def start(self) -> None:
        if self.start_failures:
            self.start_failures -= 1
            raise RetriableError("connection refused")

    async def stop(self) -> None:
        return None

    def batch_limits(self) -> tuple[int, int, float]:
        return 100, 1 << 20, 0.1

    async def write_batch(self, batch: SinkBatch) -> WriteResult:
        if self.write_failures:
            self.write_failures -= 1
            raise RetriableError("server busy")
        self.written += len(batch.lines)
        return WriteResult()


def record(offset: int, timestamp: float) -> SinkRecord:
    line = [0, "s1", offset, 1, "t", "info", "svc", '{"n":1}', "stdout"]
    return SinkRecord(0, offset, ParsedChunk([{"kind": "file"}], [line]).encode(), timestamp)


def runner(sink: Sink, breaker_failures: int = 5) -> DrainRunner:
    settings = Settings(sinks={"retry": {"initial_backoff": "1ms", "max_backoff": "2ms", "breaker_reset": "1ms",
                                         "breaker_failures": breaker_failures}})

    async def dead_letter(items: Any) -> None:
        raise AssertionError("nothing is dead-lettered here")

    return DrainRunner(sink, settings, "sink.file", dead_letter)


async def test_starting_then_ready_with_the_start_error_kept() -> None:
    drain = runner(FlakySink(start_failures=2, write_failures=0))
    assert drain.health.state is SinkState.STARTING
    assert await drain.deliver([record(0, time.time())]) == 1
    assert drain.health.state is SinkState.READY and drain.health.last_error == "connection refused"
    assert drain.health.oldest_unwritten_seconds() == 0.0 and drain.health.last_written is not None


async def test_failing_writes_open_the_breaker_and_are_reported() -> None:
    seen: list[SinkState] = []
    drain = runner(FlakySink(start_failures=0, write_failures=3), breaker_failures=2)
    original = drain.health.set
    drain.health.set = lambda state, error=None: (seen.append(state), original(state, error))[1]  # type: ignore[method-assign]
    await drain.deliver([record(0, time.time())])
    assert seen[:3] == [SinkState.READY, SinkState.FAILING, SinkState.OPEN] and seen[-1] is SinkState.READY
    assert drain.health.last_error == "server busy"


def test_the_oldest_unwritten_age_is_measured_from_the_record_timestamp() -> None:
    drain = runner(FlakySink(0, 0))
    drain.health.pending(100.0)
    assert drain.health.oldest_unwritten_seconds(now=160.0) == 60.0
    assert drain.health.as_dict()["state"] == "starting"


class RefusingSink(FlakySink):
    async def start(self) -> None:
        raise PermanentError("sinks.etcd.servers is empty")


async def test_a_sink_that_cannot_start_says_so_before_any_record() -> None:
    drain = runner(RefusingSink(0, 0))
    starting = drain.start_soon()
    await asyncio.wait([starting])
    assert drain.health.state is SinkState.FAILING and "servers is empty" in drain.health.last_error
    await drain.stop()
