"""Run `logweave intake` in the test's process on a shared broker, each test on topics of its own.

Every test gets a fresh topic prefix, so one broker serves a whole module and each test reads back
only what its own intake published.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from collectors.intake.metrics import IntakeMetrics
from collectors.intake.service import run_intake
from commands.broker import EmbeddedBroker, free_port
from core.models import RawChunk, decode_raw_chunks
from core.settings import Settings, load_settings
from tests.support.kafka import read_topic
from tests.support.polling import wait_for

_PREFIXES = itertools.count()


@dataclass
class RunningIntake:
    settings: Settings
    metrics: IntakeMetrics
    broker: EmbeddedBroker

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.settings.intake.http_port}"

    @property
    def raw_topic(self) -> str:
        return self.settings.topic("logs.raw")

    async def chunks(self) -> list[RawChunk]:
        records = await read_topic(self.broker.bootstrap, self.raw_topic, timeout=30)
        return [chunk for _, _, _, value in records for chunk in decode_raw_chunks(value)]

    async def lines(self) -> list[tuple[RawChunk, list[Any]]]:
        """(chunk, line entry) of every line on the raw topic, in topic order."""
        return [(chunk, line) for chunk in await self.chunks() for line in chunk.lines]

    async def wait_lines(self, count: int, timeout: float = 30.0) -> list[tuple[RawChunk, list[Any]]]:
        seen: list[tuple[RawChunk, list[Any]]] = []

        async def enough() -> bool:
            nonlocal seen
            seen = await self.lines()
            return len(seen) >= count

        await wait_for(enough, timeout=timeout, what=f"{count} lines on {self.raw_topic}",
                       interval=0.2, last_seen=lambda: len(seen))
        return seen

    def metric(self, name: str, **labels: str) -> float:
        return self.metrics.value(name, **labels)


@contextlib.asynccontextmanager
async def running_intake(broker: EmbeddedBroker, heartbeat_interval: float = 5.0,
                         **intake: Any) -> AsyncIterator[RunningIntake]:
    """An intake on free ports (HTTP always; others when their port is given as `True`), beating to the
    heartbeat topic of its own prefix every `heartbeat_interval` seconds."""
    ports = {name: (free_port() if intake.pop(name, False) else 0)
             for name in ("forward_port", "otlp_grpc_port", "otlp_http_port", "syslog_port", "syslog_tls_port")}
    config = {"http_port": free_port(), "ack_timeout": 5, **ports, **intake}
    settings = load_settings(environ={}, kafka={"brokers": broker.bootstrap, "partitions": 1,
                                                "topic_prefix": f"t{next(_PREFIXES)}."}, intake=config,
                             heartbeats={"interval": heartbeat_interval})
    metrics = IntakeMetrics()
    stop = asyncio.Event()
    task = asyncio.create_task(run_intake(settings, stop, metrics))
    running = RunningIntake(settings, metrics, broker)
    try:
        import aiohttp

        async def ready() -> bool:
            if task.done():
                task.result()  # raise what stopped it
            try:
                async with aiohttp.ClientSession() as session, session.get(running.url + "/readyz") as r:
                    return r.status == 200
            except aiohttp.ClientError:
                return False

        await wait_for(ready, timeout=30, what="the intake's /readyz")
        yield running
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
