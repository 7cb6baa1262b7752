"""The compacted `config.rules` topic: publishing a rules version, and following it from its start.

One partition, one key (`rules`), cleanup.policy=compact: the topic keeps the latest version, a
worker that starts reads it before anything else, and a running worker sees each new one in order.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from aiokafka import AIOKafkaProducer, TopicPartition

from core.settings import Settings
from core.topics import RULES
from kafka_io.client_options import client_options
from kafka_io.connect import connect, started
from kafka_io.kafka_compat import pace_idle_fetches
from kafka_io.range_reader import range_consumer
from kafka_io.topic_admin import TopicMissing, ensure_single_partition_compacted

KEY = b"rules"
log = logging.getLogger(__name__)


async def ensure_rules_topic(settings: Settings, timeout: float | None = None, create: bool = True) -> str:
    """Create the compacted rules topic if missing (`logweave prepare` and `logweave rules publish`); return its
    name. Waits up to `timeout` (default `kafka.connect_timeout`) for a broker. With `create=False` (the
    workers and collectors, which create no topic) a missing topic raises RulesTopicMissing instead."""
    return await ensure_single_partition_compacted(settings, settings.topic(RULES), "the rules topic", timeout,
                                                   create=create)


RulesTopicMissing = TopicMissing  # the rules topic does not exist and this process does not create topics


async def publish_rules(settings: Settings, value: bytes) -> int:
    """Send one encoded rules version; return its offset once the broker acknowledged it."""
    name = await ensure_rules_topic(settings)
    kafka = settings.kafka
    producer = await connect(
        kafka, lambda: started(AIOKafkaProducer(**client_options(kafka), acks="all",
                                                max_request_size=max(1 << 20, kafka.max_message_bytes)), kafka),
        "publishing rules")
    try:
        sent = await producer.send_and_wait(name, value, key=KEY, partition=0)
        return int(sent.offset)
    finally:
        await producer.stop()


async def follow_rules(settings: Settings, apply: Callable[[bytes], object], stop: asyncio.Event,
                       poll: float = 1.0, caught_up: Callable[[], object] | None = None) -> None:
    """Hand every rules record to `apply`, from the topic's start, until `stop` is set; call `caught_up`
    once every record the topic held when reading began has been handed over (at once for an empty
    topic). The topic is not created here: `logweave prepare` does, like every other topic
    (RulesTopicMissing until then)."""
    name = await ensure_rules_topic(settings, create=False)
    consumer = await started(range_consumer(settings), settings.kafka)
    pace_idle_fetches(consumer, poll)  # rules switch seconds ahead (--switch-after): no need to poll 20 times a second
    try:
        partition = TopicPartition(name, 0)
        consumer.assign([partition])
        await consumer.seek_to_beginning(partition)
        held = (await consumer.end_offsets([partition]))[partition] if caught_up is not None else 0
        while not stop.is_set():
            if caught_up is not None and await consumer.position(partition) >= held:
                caught_up()
                caught_up = None
            batches = await consumer.getmany(partition, timeout_ms=int(poll * 1000))
            for record in batches.get(partition, []):
                if record.value is not None:
                    apply(record.value)
    finally:
        await consumer.stop()


class ReadAtStart:
    """Whether a follower has read the rules topic to where it ended when it started (`follow_rules`'
    `caught_up` calls `mark`), for what must not start before: a worker's stages, a collector's reads."""

    WARN_EVERY = 10.0  # seconds between warnings while something waits

    def __init__(self) -> None:
        self._read = asyncio.Event()

    @property
    def done(self) -> bool:
        return self._read.is_set()

    def mark(self) -> None:
        self._read.set()

    async def wait(self, waiter: str, bound: float | None = None, stop: asyncio.Event | None = None) -> bool:
        """Wait until the topic is read, warning every WARN_EVERY seconds that `waiter` still waits; give up
        after `bound` seconds (None: never) or once `stop` is set. Whether it was read."""
        waited = 0.0
        while not self._read.is_set() and not (stop is not None and stop.is_set()):
            step = self.WARN_EVERY if bound is None else min(self.WARN_EVERY, bound - waited)
            if step <= 0:
                log.warning("%s: the rules topic was not read within %g s; going on with the rules it has",
                            waiter, bound)
                return False
            waits = [asyncio.ensure_future(self._read.wait())] + ([asyncio.ensure_future(stop.wait())] if stop else [])
            try:
                await asyncio.wait(waits, timeout=step, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for pending in waits:
                    pending.cancel()
            waited += step
            if not self._read.is_set() and (bound is None or waited < bound):
                log.warning("%s: still reading the rules topic after %.0f s; nothing is handled before it is read",
                            waiter, waited)
        return self._read.is_set()


async def follow_rules_forever(settings: Settings, apply: Callable[[bytes], object], stop: asyncio.Event,
                               retry: float = 5.0, caught_up: Callable[[], object] | None = None) -> None:
    """`follow_rules`, reconnecting after broker errors (the running rules stay meanwhile); `caught_up` is
    called again after each reconnection that reads the topic to its end, so it must be idempotent."""
    while not stop.is_set():
        try:
            await follow_rules(settings, apply, stop, caught_up=caught_up)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the broker away or the topic not there yet: retry
            if isinstance(exc, RulesTopicMissing) and caught_up is not None:
                caught_up()  # no topic holds no version: nothing to catch up on
            log.warning("cannot follow the rules topic (%s); retrying in %.0f s", exc, retry)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), retry)
