"""Read one topic partition from a start offset up to (not including) an end offset.

Replays (sink and dead letters) and the close read-back all need exactly [start, end) of one
partition with a group-less consumer, in batches, whatever the broker returns past `end`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from core.settings import Settings
from kafka_io.client_options import client_options


def range_consumer(settings: Settings) -> AIOKafkaConsumer:
    """A consumer without a group (nothing committed) that fetches records up to the message limit."""
    kafka = settings.kafka
    return AIOKafkaConsumer(**client_options(kafka), group_id=None, enable_auto_commit=False,
                            auto_offset_reset="earliest",
                            max_partition_fetch_bytes=max(8 << 20, kafka.max_message_bytes))


async def read_range(consumer: AIOKafkaConsumer, topic: str, partition: int, start: int, end: int,
                     max_records: int | None = None) -> AsyncIterator[list[Any]]:
    """Batches of the records with a value at offsets [start, end), in order."""
    if start >= end:
        return
    tp = TopicPartition(topic, partition)
    consumer.assign([tp])
    consumer.seek(tp, start)
    position = start
    while position < end:
        fetched = (await consumer.getmany(tp, timeout_ms=1000, max_records=max_records)).get(tp, [])
        if fetched:
            position = fetched[-1].offset + 1
        batch = [m for m in fetched if m.offset < end and m.value is not None]
        if batch:
            yield batch


async def follow_topic(consumer: AIOKafkaConsumer, topic: str, poll_ms: int = 500) -> AsyncIterator[list[Any]]:
    """Batches of the records appended to every partition of `topic` from now on (live tail).

    The first batch is empty and comes once the end offsets are known; an empty batch also follows
    each idle poll, so a caller can notice a gone client in time."""
    await consumer.topics()  # refreshes the cluster metadata
    partitions = consumer.partitions_for_topic(topic)
    if not partitions:
        raise LookupError(f"topic {topic} does not exist (run `logweave prepare` with this sink enabled)")
    tps = [TopicPartition(topic, p) for p in sorted(partitions)]
    consumer.assign(tps)
    await consumer.seek_to_end(*tps)
    for tp in tps:  # resolve the end offsets now: records sent after the first (empty) batch are all seen
        await consumer.position(tp)
    yield []
    while True:
        fetched = await consumer.getmany(*tps, timeout_ms=poll_ms)
        yield [m for tp in tps for m in fetched.get(tp, []) if m.value is not None]
