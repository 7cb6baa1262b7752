"""The Kafka sink's per-stream marks, kept in a compacted topic instead of the offset metadata.

Kafka caps a committed offset's metadata at `offset.metadata.max.bytes` (4 KiB by default), which
held the marks of only about 120 streams per sink-topic partition. Here each batch's transaction
also writes one record to `<sinks.kafka.topic>.marks` (one partition, cleanup.policy=compact), keyed
by the position group and the sink-topic partition, whose value is the marks of every stream
written (up to `sinks.kafka.marks_bytes`, about 30 bytes a stream). The committed offset's metadata
names that record's offset (`marks_at`), so the records, the marks and the position become visible
together or not at all, and a reader finds the marks of a position with one fetch. Compaction keeps
the latest committed record of each key, which is the one the position names.

A worker reads the marks record once when it starts writing a partition (after its producer has
fenced the previous writer) and then keeps them in memory: while its producer is not fenced nobody
else commits for that partition. Offset metadata written by an earlier version (marks inline as
`streams`) is still read.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition

from core.errors import RetriableError
from core.settings import KafkaSettings
from kafka_io.client_options import client_options

MARKS_PARTITION = 0


def marks_topic(sink_topic: str) -> str:
    return f"{sink_topic}.marks"


def marks_key(position_group: str, topic: str, partition: int) -> bytes:
    return f"{position_group}/{topic}/{partition}".encode()


def position_metadata(index: int, marks_at: int | None) -> str:
    """The committed offset's metadata: the index of the last line written and where its marks are."""
    return orjson.dumps({"index": index} if marks_at is None else {"index": index, "marks_at": marks_at}).decode()


@dataclass
class Position:
    """(offset, index) of the last line committed for a sink-topic partition, and its marks."""

    offset: int = -1
    index: int = -1
    marks: dict[str, int] = field(default_factory=dict)
    marks_at: int | None = None  # offset of the marks record, when the marks live in the marks topic


class MarksReader:
    """Fetches a marks record by offset (no consumer group).

    read_uncommitted on purpose: the record at the offset a committed position names was written in
    the transaction that committed that position, so it is committed by construction, and nothing
    else is read. (read_committed would also be right on Kafka, but noida-db lists every aborted
    transaction of the partition in each fetch, even those that ended before the fetch offset, and a
    consumer starting after one's abort marker then drops the same producer id's later, committed,
    records: the partition's next owner reuses that producer id with a new epoch.)"""

    def __init__(self, cluster: KafkaSettings, topic: str, timeout: float = 30.0) -> None:
        self.cluster = cluster
        self.topic = topic
        self.timeout = timeout
        self._consumer: AIOKafkaConsumer | None = None

    async def read(self, offset: int) -> dict[str, int]:
        if self._consumer is None:
            consumer = AIOKafkaConsumer(**client_options(self.cluster), isolation_level="read_uncommitted",
                                        enable_auto_commit=False, auto_offset_reset="earliest",
                                        fetch_max_bytes=64 * 1024 * 1024, max_partition_fetch_bytes=16 * 1024 * 1024)
            await consumer.start()
            consumer.assign([TopicPartition(self.topic, MARKS_PARTITION)])
            self._consumer = consumer
        tp = TopicPartition(self.topic, MARKS_PARTITION)
        self._consumer.seek(tp, offset)
        while True:
            found = await self._consumer.getmany(tp, timeout_ms=int(self.timeout * 1000))
            records = found.get(tp, [])
            if not records:
                raise RetriableError(f"Kafka sink: the marks record at {self.topic}[0]@{offset} named by the "
                                     f"committed position did not arrive within {self.timeout:.0f}s")
            for record in records:
                if record.offset >= offset:
                    if record.offset != offset or record.value is None:
                        raise RetriableError(f"Kafka sink: no marks record at {self.topic}[0]@{offset} "
                                             f"(found offset {record.offset})")
                    marks: dict[str, int] = orjson.loads(record.value)
                    return marks

    async def stop(self) -> None:
        consumer, self._consumer = self._consumer, None
        if consumer is not None:
            await consumer.stop()


def parse_position(offset: int, metadata: str | None) -> Position:
    """A committed offset and its metadata; the marks are filled in by the caller when `marks_at` is set."""
    if offset < 0:
        return Position()
    if not metadata:  # committed by something else: take the whole record as written
        return Position(offset, 1 << 62)
    kept: dict[str, Any] = orjson.loads(metadata)
    return Position(offset, kept["index"], dict(kept.get("streams", {})), kept.get("marks_at"))
