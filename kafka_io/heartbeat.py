"""Heartbeats over Kafka: a publisher task per component, and readers that fold the topic.

The topic (`stats.heartbeats`) is compacted with one partition, keyed by component id: it keeps
each component's latest beat, and a reader gets the whole pipeline by reading it from the start.
A publisher never stops its component: an unreachable broker costs a warning and the beat is
tried again at the next interval. On a clean stop it sends one last beat, state `stopped`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from prometheus_client import CollectorRegistry

from core.heartbeat import Heartbeat, PipelineView
from core.heartbeat_figures import FigureReader, Recipe, host_name
from core.settings import Settings
from core.topics import HEARTBEATS
from kafka_io.client_options import client_options
from kafka_io.connect import started
from kafka_io.kafka_compat import pace_idle_fetches
from kafka_io.range_reader import range_consumer
from kafka_io.topic_admin import ensure_single_partition_compacted

log = logging.getLogger(__name__)
FOLLOW_PAUSE = 0.5  # seconds a follower's empty fetches pause at most: beats come every few seconds
WARN_AFTER_FAILURES = 3
_running: set[asyncio.Task[None]] = set()  # publisher tasks, referenced so they are not collected


# Compacted and deleted after a day: the topic stays small even on a broker that does not compact, and a
# component gone for a day drops out of the view.
TOPIC_CONFIGS = {"cleanup.policy": "compact,delete", "retention.ms": str(86400 * 1000),
                 "segment.ms": str(3600 * 1000)}


async def ensure_heartbeat_topic(settings: Settings, timeout: float | None = None) -> str:
    return await ensure_single_partition_compacted(settings, settings.topic(HEARTBEATS), "the heartbeat topic",
                                                   timeout, TOPIC_CONFIGS)


class HeartbeatPublisher:
    """Sends `beat(now, state)` every `heartbeats.interval` seconds until cancelled."""

    def __init__(self, settings: Settings, beat: Callable[[float, str], Heartbeat]) -> None:
        self.settings, self.beat = settings, beat
        self.sent = 0
        self._producer: AIOKafkaProducer | None = None
        self._failures = 0

    async def _send(self, state: str) -> None:
        heartbeat = self.beat(time.time(), state)
        if self._producer is None:  # the producer first: once it started, the broker answers (no retry lines)
            self._producer = await started(AIOKafkaProducer(**client_options(self.settings.kafka), acks=1,
                                                            request_timeout_ms=10_000), self.settings.kafka)
            await ensure_heartbeat_topic(self.settings, timeout=10.0)
        await self._producer.send_and_wait(self.settings.topic(HEARTBEATS), heartbeat.encode(),
                                           key=heartbeat.id.encode(), partition=0)
        self.sent += 1
        self._failures = 0

    async def _try(self, state: str) -> None:
        try:
            await self._send(state)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the broker away: figures are best effort, the component goes on
            # The component's own Kafka clients report a broker that is away; a heartbeat says so only when
            # the outage lasts (and once), so a start-up with no broker yet stays one line.
            self._failures += 1
            if self._failures == WARN_AFTER_FAILURES:
                log.warning("heartbeats not sent for %d intervals (%s); still trying every %.0f s",
                            self._failures, exc, self.settings.heartbeats.interval)
            await self._close()

    async def _close(self) -> None:
        if self._producer is not None:
            with contextlib.suppress(Exception):
                await self._producer.stop()
            self._producer = None

    async def run(self, stop: asyncio.Event | None = None) -> None:
        """Beat until `stop` is set (or the task is cancelled), then send the `stopped` beat."""
        stop = stop or asyncio.Event()
        try:
            while not stop.is_set():
                await self._try("running")
                _end_if_cancelled()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self.settings.heartbeats.interval)
                _end_if_cancelled()
        finally:
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await asyncio.wait_for(asyncio.shield(self._try("stopped")), 3.0)
            await self._close()


def _end_if_cancelled() -> None:
    """Raise CancelledError when this task was asked to stop. Python 3.11's `asyncio.wait_for` returns
    the result, dropping the cancel, when its awaitable finishes in the same turn as the cancel (CPython
    gh-86296); aiokafka's connect and our TLS check use it. A heartbeat that lost the cancel asyncio.run
    sends at exit beat on forever, and the process never ended (a collector refused by TLS hung)."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


def start_heartbeat(settings: Settings, recipe: Recipe, registry: CollectorRegistry, component_id: str,
                    stop: asyncio.Event | None = None) -> asyncio.Task[None] | None:
    """Publish this component's heartbeats in the background until `stop` is set (the one-line hook of a
    service)."""
    if not settings.heartbeats.enabled:
        return None
    reader = FigureReader(recipe, registry, component_id, settings.heartbeats.interval)
    task = asyncio.get_running_loop().create_task(HeartbeatPublisher(settings, reader.beat).run(stop),
                                                  name=f"heartbeat {component_id}")
    _running.add(task)
    task.add_done_callback(_running.discard)
    return task


def component_id(kind: str, port: int, host: str | None = None) -> str:
    """Stable across restarts (the compaction key): kind, host (or node), and the port that sets it apart there."""
    return f"{kind}-{host or host_name()}-{port}"


class PipelineFollower:
    """Keeps a PipelineView current: reads the heartbeat topic from its start, then each new beat."""

    def __init__(self, settings: Settings, view: PipelineView | None = None) -> None:
        self.settings = settings
        self.view = view if view is not None else PipelineView(forget_after=settings.heartbeats.forget_after)
        self._consumer: AIOKafkaConsumer | None = None
        self._partition: TopicPartition | None = None

    async def start(self, timeout: float = 10.0) -> None:
        name = await ensure_heartbeat_topic(self.settings, timeout=timeout)
        self._consumer = await started(range_consumer(self.settings), self.settings.kafka)
        pace_idle_fetches(self._consumer, FOLLOW_PAUSE)
        self._partition = TopicPartition(name, 0)
        self._consumer.assign([self._partition])
        await self._consumer.seek_to_beginning(self._partition)

    async def catch_up(self, timeout: float = 10.0) -> PipelineView:
        """Fold every beat up to the topic's end as of now (or until `timeout`)."""
        assert self._consumer is not None and self._partition is not None, "start() first"
        partition = self._partition
        end = (await self._consumer.end_offsets([partition]))[partition]
        deadline = time.monotonic() + timeout
        while await self._consumer.position(partition) < end and time.monotonic() < deadline:
            batches = await self._consumer.getmany(partition, timeout_ms=500)
            for record in batches.get(partition, []):
                self.view.fold(record.key, record.value)
        return self.view

    async def stop(self) -> None:
        if self._consumer is not None:
            await self._consumer.stop()
            self._consumer = None


async def read_pipeline(settings: Settings, timeout: float = 10.0) -> PipelineView:
    """The whole pipeline as of now: the heartbeat topic folded from its start to its end."""
    follower = PipelineFollower(settings)
    try:
        await follower.start(timeout)
        return await follower.catch_up(timeout)
    finally:
        await follower.stop()
