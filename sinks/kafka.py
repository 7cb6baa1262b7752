"""KafkaSink: lines (or traces) to a topic on this or another cluster, exactly once by transactions.

Each batch is one Kafka transaction of an idempotent, transactional producer: the records (keyed
by trace id, so a trace stays in one partition and in order) and, in the same transaction, the
sink's position for the sink-topic partition, committed as a consumer-group offset of the sink's
own group `<app_id>.sink.kafka` (offset = the last record written, metadata = the index of its
last line and the offset of its marks record). Either both become visible to `read_committed`
consumers or neither does. Before each batch the position is read afresh and lines at or below it
are skipped, so a batch re-delivered after a crash (the drain acks only after the commit, so
re-delivery is the normal crash path), a retry or a replay writes nothing twice. The position lives
in a group of its own rather than the drain's (faust's) group because faust commits that group by
itself, and a late commit of an older offset would move a shared position back.

Per-stream marks (sinks/stream_marks.py) go into the same transaction as one record of a compacted
marks topic (sinks/kafka_marks.py), named by the committed offset's metadata: a line the group
stage forwarded twice under two sink-topic offsets (a worker crash upstream) is skipped like in the
file and S3 sinks, for as many streams as `marks_bytes` holds (about 30 bytes a stream).

One transactional id per sink-topic partition consumed, `<prefix>.<sink topic>.<partition>` (prefix:
`sinks.kafka.transactional_id`, default `<app_id>.sink.kafka`), the same on every worker. Whoever
writes a partition's batches first starts a producer under that partition's id, and Kafka's
InitProducerId bumps the id's epoch and aborts any transaction still open under it: a worker that
takes a partition over at a rebalance (or a worker restarted after kill -9) fences the previous
owner, whose late commit fails with ProducerFenced, and only then reads the position. So at most
one writer of a partition can commit at a time, and each reads the position after fencing the
others: a batch is never committed twice. (aiokafka has no KIP-447 group-metadata fencing, and the
position group has no members anyway, so the per-partition id is the fencing.) A fenced owner
drops that producer and retries: its retry fences in turn, re-reads the position and finds the
batch written (nothing to do), or writes it if the new owner had not yet; either way once.
Each record carries its line id in the `logweave-line-id` header.

Not deduplicated here (docs/sinks.md): a re-forwarded line whose stream's mark no longer fits
`marks_bytes`; consumers may drop those by the line-id header.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError, ProducerFenced
from aiokafka.structs import OffsetAndMetadata

from core.errors import RetriableError
from core.settings import KafkaSettings, KafkaSinkSettings, Settings
from kafka_io.client_options import client_options
from kafka_io.keyed_batches import Record, send_batched
from kafka_io.topic_admin import ensure_topics
from sinks.base import Sink, SinkBatch, SinkLine, WriteResult
from sinks.kafka_marks import (
    MARKS_PARTITION,
    MarksReader,
    Position,
    marks_key,
    marks_topic,
    parse_position,
    position_metadata,
)
from sinks.stream_marks import unseen

LINE_ID_HEADER = "logweave-line-id"
SOURCE_HEADER = "logweave-source"  # `<sink topic>/<partition>/<offset>/<index>` of the (first) line


class KafkaSink(Sink):
    name = "kafka"

    def __init__(self, settings: KafkaSinkSettings, pipeline: KafkaSettings, transactional_prefix: str,
                 position_group: str) -> None:
        self.settings = settings
        # the cluster written to: the sink's own (with its own security), else the pipeline's
        self.cluster = pipeline.model_copy(update={"brokers": settings.brokers, "security": settings.security}) \
            if settings.brokers else pipeline
        self.bootstrap = self.cluster.bootstrap_servers
        self.pipeline = pipeline
        self.transactional_prefix = transactional_prefix
        self.position_group = position_group
        self._producers: dict[tuple[str, int], AIOKafkaProducer] = {}  # by sink-topic partition written
        self._admin: AIOKafkaAdminClient | None = None
        self.marks_topic = marks_topic(settings.topic)
        self._marks_reader = MarksReader(self.cluster, self.marks_topic)
        self._marks: dict[tuple[str, int], tuple[int, dict[str, int]]] = {}  # last marks record read or written

    @classmethod
    def from_settings(cls, settings: Settings) -> KafkaSink:
        s = settings.sinks.kafka
        return cls(s, settings.kafka, s.transactional_id or f"{settings.worker.app_id}.sink.kafka",
                   f"{settings.worker.app_id}.sink.kafka")

    def transactional_id(self, topic: str, partition: int) -> str:
        """The producer id of one consumed sink-topic partition: the same on every worker, so the
        partition's next owner fences the previous one."""
        return f"{self.transactional_prefix}.{topic}.{partition}"

    def batch_limits(self) -> tuple[int, int, float]:
        return (self.settings.max_batch_lines, self.settings.max_batch_bytes, self.settings.flush_age)

    async def start(self) -> None:
        s = self.settings
        try:
            target = self.cluster.model_copy(update={"partitions": s.topic_partitions,
                                                     "replication_factor": s.replication_factor})
            await ensure_topics(target, [s.topic], timeout=10.0, verify=False)
            await ensure_topics(target.model_copy(update={"partitions": 1}), [self.marks_topic], timeout=10.0,
                                verify=False, compacted=True)
            self._admin = AIOKafkaAdminClient(**client_options(self.cluster))
            await self._admin.start()
        except (KafkaError, OSError) as exc:
            await self.stop()
            raise RetriableError(f"Kafka sink cluster {','.join(self.bootstrap)} unavailable: {exc!r}") from exc

    async def _producer_for(self, topic: str, partition: int) -> AIOKafkaProducer:
        """The started transactional producer of this sink-topic partition (starting it fences the
        partition's previous writer and aborts its open transaction)."""
        producer = self._producers.get((topic, partition))
        if producer is not None:
            return producer
        s = self.settings
        producer = AIOKafkaProducer(
            **client_options(self.cluster), transactional_id=self.transactional_id(topic, partition),
            enable_idempotence=True, acks="all", compression_type=None if s.compression == "none" else s.compression,
            max_request_size=s.max_message_bytes, max_batch_size=min(s.max_message_bytes, 1 << 20),
            linger_ms=int(s.linger * 1000), transaction_timeout_ms=int(s.transaction_timeout * 1000))
        try:
            await producer.start()
        except BaseException:
            await producer.stop()
            raise
        self._producers[(topic, partition)] = producer
        return producer

    async def _drop_producer(self, topic: str, partition: int) -> None:
        producer = self._producers.pop((topic, partition), None)
        if producer is not None:
            _retrieve_fatal_error(producer)
            with contextlib.suppress(KafkaError, OSError):
                await producer.stop()

    async def stop(self) -> None:
        producers, admin, self._producers, self._admin = list(self._producers.values()), self._admin, {}, None
        self._marks.clear()
        for producer in producers:
            with contextlib.suppress(KafkaError, OSError):
                await producer.stop()
        with contextlib.suppress(KafkaError, OSError):
            await self._marks_reader.stop()
        if admin is not None:
            await admin.close()

    async def write_batch(self, batch: SinkBatch) -> WriteResult:
        if self._admin is None:
            await self.start()
        try:
            producer = await self._producer_for(batch.topic, batch.partition)
            position = await self._position(batch.topic, batch.partition)  # read after fencing
            marks = dict(position.marks)
            done = (position.offset, position.index)
            fresh = unseen([line for line in batch.lines if (line.offset, line.index) > done], marks)
            if not fresh:
                return WriteResult()
            kept = recent_marks(fresh, marks, self.settings.marks_bytes)
            async with producer.transaction():
                marks_sent = await producer.send(self.marks_topic, orjson.dumps(kept), partition=MARKS_PARTITION,
                                                 key=marks_key(self.position_group, batch.topic, batch.partition))
                await send_batched(producer, self.settings.topic, self._records(batch, fresh))
                marks_at: int = (await marks_sent).offset
                last = fresh[-1]
                await producer.send_offsets_to_transaction(
                    {TopicPartition(batch.topic, batch.partition):
                     OffsetAndMetadata(last.offset, position_metadata(last.index, marks_at))},
                    self.position_group)
            self._marks[(batch.topic, batch.partition)] = (marks_at, kept)
        except ProducerFenced as exc:
            await self._drop_producer(batch.topic, batch.partition)  # its transaction was aborted
            raise RetriableError(
                f"Kafka sink producer {self.transactional_id(batch.topic, batch.partition)!r} fenced: another "
                f"worker took {batch.topic}[{batch.partition}] over (a rebalance); the retry re-reads the "
                "position and writes only what is not there") from exc
        except KafkaError as exc:
            await self._drop_producer(batch.topic, batch.partition)  # a failed transaction leaves it unusable
            raise RetriableError(f"Kafka sink transaction failed, will retry: {exc!r}") from exc
        return WriteResult()

    async def resume_offset(self, topic: str, partition: int) -> int | None:
        if self._admin is None:
            await self.start()
        await self._producer_for(topic, partition)  # fence a previous writer first: its open batch is aborted
        position = await self._position(topic, partition)
        return position.offset if position.offset >= 0 else None

    async def _position(self, topic: str, partition: int) -> Position:
        """The last line committed for this sink-topic partition ((-1, -1) if none) and the per-stream
        marks committed with it (read from the marks topic unless this sink wrote or read them last)."""
        assert self._admin is not None
        tp = TopicPartition(topic, partition)
        found: dict[TopicPartition, Any] = await self._admin.list_consumer_group_offsets(
            self.position_group, partitions=[tp])
        committed = found.get(tp)
        position = parse_position(-1 if committed is None else committed.offset,
                                  None if committed is None else committed.metadata)
        if position.marks_at is not None:
            known = self._marks.get((topic, partition))
            if known is None or known[0] != position.marks_at:
                known = (position.marks_at, await self._marks_reader.read(position.marks_at))
                self._marks[(topic, partition)] = known
            position.marks = dict(known[1])
        return position

    def _records(self, batch: SinkBatch, lines: list[SinkLine]) -> Iterator[Record]:
        """(key, value, headers) per line, or per trace (its lines as NDJSON, split to fit a message)."""
        where = f"{batch.topic}/{batch.partition}/".encode()

        def source(line: SinkLine) -> bytes:
            return where + b"%d/%d" % (line.offset, line.index)

        if self.settings.record == "line":
            for line in lines:
                yield (line.trace_id.encode(), line.document,
                       [(LINE_ID_HEADER, line.line_id.encode()), (SOURCE_HEADER, source(line))])
            return
        by_trace: dict[str, list[SinkLine]] = {}
        for line in lines:
            by_trace.setdefault(line.trace_id, []).append(line)
        budget = max(1024, self.settings.max_message_bytes - 4096)
        for trace_id, trace_lines in by_trace.items():
            for part in _fit(trace_lines, budget):
                yield (trace_id.encode(), b"".join(x.document + b"\n" for x in part),
                       [(LINE_ID_HEADER, part[0].line_id.encode()), (SOURCE_HEADER, source(part[0]))])


def _retrieve_fatal_error(producer: AIOKafkaProducer) -> None:
    """Mark the error a fenced producer left in its transaction waiter as seen.

    aiokafka sets it on a future that nobody awaits once the transaction call has raised, so asyncio
    reports "Future exception was never retrieved" with a traceback when it is collected (and on
    Python 3.11 that report, formatted during an unrelated compile, can break it). The error itself
    was already raised to write_batch and handled there.
    """
    waiter = getattr(getattr(producer, "_txn_manager", None), "_transaction_waiter", None)
    if isinstance(waiter, asyncio.Future) and waiter.done() and not waiter.cancelled():
        waiter.exception()


def recent_marks(written: list[SinkLine], marks: dict[str, int], budget: int) -> dict[str, int]:
    """The marks of the streams written most recently whose JSON object fits `budget` bytes
    (`1 + sum(len(digest) + len(str(position)) + 4)`, exactly the size orjson writes).

    The marks of streams not seen for longest are dropped first; a re-forwarded line comes within
    moments of the crash that caused it, while its stream is still among the recent ones.
    """
    recent: dict[str, int] = {}
    for line in reversed(written):
        digest = line.line_id.rpartition("-")[0]
        if digest in marks and digest not in recent:
            recent[digest] = marks[digest]
    for digest, position in reversed(marks.items()):  # then the older ones, newest first
        recent.setdefault(digest, position)
    kept: dict[str, int] = {}
    size = 1
    for digest, position in recent.items():
        size += len(digest) + len(str(position)) + 4  # "digest":position,
        if size > budget:
            break
        kept[digest] = position
    return kept


def _fit(lines: list[SinkLine], budget: int) -> Iterator[list[SinkLine]]:
    """Consecutive runs of `lines` whose NDJSON stays within `budget` bytes (a longer line goes alone)."""
    part: list[SinkLine] = []
    size = 0
    for item in lines:
        if part and size + len(item.document) + 1 > budget:
            yield part
            part, size = [], 0
        part.append(item)
        size += len(item.document) + 1
    if part:
        yield part
