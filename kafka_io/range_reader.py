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
