"""Summaries already in `traces.closed` whose closes the trace table never stored.

A close sends its summaries, and only once they are acked stores the trace's delete (and how far
the summaries reached, CLOSED_UPTO_KEY). A crash in between leaves the trace in the table, so the
next owner of the partition would close it again. Before its first close of a partition after a
rebalance the group agent reads `traces.closed` of that partition from the stored offset to the end
and skips the close ids it finds there. That tail is short: it holds only the summaries of closes in
flight at the crash. Summaries go to the partition of the trace table they came from.
"""

from __future__ import annotations

from aiokafka import TopicPartition

from core.models import decode_closed_traces
from core.settings import Settings
from kafka_io.range_reader import range_consumer, read_range


async def close_ids_after(settings: Settings, topic: str, partition: int, start: int | None) -> set[str]:
    """Close ids in `topic`[partition] from offset `start` (None: the beginning) to its current end."""
    consumer = range_consumer(settings)
    await consumer.start()
    found: set[str] = set()
    try:
        tp = TopicPartition(topic, partition)
        first = (await consumer.beginning_offsets([tp]))[tp]
        end = (await consumer.end_offsets([tp]))[tp]
        async for batch in read_range(consumer, topic, partition, first if start is None else max(first, start), end):
            for message in batch:
                found.update(item["close_id"] for item in decode_closed_traces(message.value))
    finally:
        await consumer.stop()
    return found
