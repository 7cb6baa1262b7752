"""Publishes raw chunks to `logs.raw` with acks=all and bounded memory.

Collectors hand over chunks and get a future that resolves once Kafka acknowledged it; they
checkpoint only then. The in-flight byte budget is the backpressure: when Kafka is slow or down,
`publish` blocks, so the collector stops reading instead of buffering without bound. Chunks of one
source stream stay in order in one partition (stages dedupe on that order): a single-stream chunk is
keyed by its stream id; a multi-stream `RawBatch` goes to an explicit partition, the one the producer's
default partitioner maps each of its stream ids to (`partition_for`, kafka_io/partition_batcher.py).

A broker can answer the idempotent producer with a sequence error: it has fewer of our records than
it acknowledged (a broker that lost its last writes, as noida-db does when stopped while producing,
or an unclean leader election). aiokafka never resets its producer id or sequence numbers after that,
so every later send would fail the same way. The publisher then replaces the producer and reads the
topic's end offsets: acknowledged chunks at or past them were lost, and collectors re-send them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import NamedTuple

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError, OutOfOrderSequenceNumber, UnknownProducerId
from aiokafka.structs import RecordMetadata

from core.codec import compressor
from core.models import FLAG_TRUNCATED, RawBatch, RawChunk
from core.settings import KafkaSettings
from kafka_io.client_options import client_options
from kafka_io.connect import connect, started
from kafka_io.key_partitions import key_partition, murmur2
from kafka_io.topic_admin import ensure_topics

log = logging.getLogger(__name__)
_ENVELOPE_ALLOWANCE = 1024  # bytes kept free for Kafka record framing
_PARTITION_CACHE = 100_000  # stream ids whose partition is remembered
# how often `partition_for` asks the producer's metadata for the topic's partitions: aiokafka builds a new
# set on every ask, which cost 3% of the file collector's CPU when asked for every block it published
_PARTITIONS_CHECK_SECONDS = 1.0
# the broker holds fewer of this producer's records than it acknowledged: only a new producer id helps
SEQUENCE_ERRORS = (OutOfOrderSequenceNumber, UnknownProducerId)


class ChunkAck(NamedTuple):
    """Where Kafka stored a chunk (its last record, when it was split), and through which producer."""

    partition: int
    offset: int
    producer: int = 0  # how many producers had been replaced when it was sent


class ChunkPublisher:
    """An aiokafka producer for raw chunks with an in-flight byte budget."""

    def __init__(self, kafka: KafkaSettings, topic: str, max_in_flight_bytes: int,
                 create_topics: list[str] | None = None) -> None:
        self._kafka = kafka
        self._topic = topic
        self._budget = max_in_flight_bytes
        self._in_flight = 0
        self._room = asyncio.Condition()
        self._create_topics = create_topics if create_topics is not None else [topic]
        self._compress: Callable[[bytes], bytes] = compressor(kafka.payload_codec)
        self._producer: AIOKafkaProducer | None = None
        self._recovery: asyncio.Task[None] | None = None
        self.send_errors = 0
        self.recoveries = 0  # producers replaced after a sequence error
        self.end_offsets: dict[int, int] = {}  # per partition, read after the last replacement
        self._settling: set[asyncio.Future[None]] = set()
        self._partitions: list[int] = []  # of the topic, from the producer's metadata (partition_for)
        self._partition_of: dict[str, int] = {}  # stream id -> partition: hashed once per stream
        self._hash = murmur2()
        self._partitions_checked = -float("inf")  # monotonic time `partition_for` last read the metadata

    def lost(self, ack: ChunkAck) -> bool:
        """Whether an acknowledged chunk is past what the broker held after the last replacement."""
        end = self.end_offsets.get(ack.partition)
        return ack.producer < self.recoveries and end is not None and ack.offset >= end

    async def start(self) -> None:
        if self._create_topics:
            await ensure_topics(self._kafka, self._create_topics)
        self._producer = await connect(self._kafka, self._start_producer, "starting the producer")

    def partition_for(self, stream_id: str) -> int:
        """The partition a record keyed by `stream_id` goes to: aiokafka's default partitioner (murmur2,
        as Java's) over the topic's partitions in the producer's metadata, refreshed by the producer
        every `metadata_max_age_ms` and after errors, so a grown topic is picked up as keyed sends would (read
        at most every _PARTITIONS_CHECK_SECONDS once known)."""
        producer = self._producer
        now = time.monotonic()
        stale = not self._partitions or now - self._partitions_checked >= _PARTITIONS_CHECK_SECONDS
        if producer is not None and stale:
            self._partitions_checked = now
            known = producer.client.cluster.partitions_for_topic(self._topic)
            if known and len(known) != len(self._partitions):
                self._partitions = sorted(known)
                self._partition_of.clear()
        partitions = self._partitions  # while the producer is replaced: the partitions known before
        if not partitions:
            return 0  # no metadata yet: the first partition exists anyway
        partition = self._partition_of.get(stream_id)
        if partition is None:
            if len(self._partition_of) >= _PARTITION_CACHE:
                self._partition_of.clear()
            partition = self._partition_of[stream_id] = key_partition(stream_id.encode(), partitions, self._hash)
        return partition

    async def _start_producer(self) -> AIOKafkaProducer:
        compression = None if self._kafka.compression == "none" else self._kafka.compression
        producer = AIOKafkaProducer(
            **client_options(self._kafka), acks="all", enable_idempotence=True,
            compression_type=compression, linger_ms=5, max_request_size=self._kafka.max_message_bytes,
            # several chunks of one stream share a partition: let them share a request too, or one
            # chunk per round trip (the idempotent producer keeps one request in flight) caps the rate
            max_batch_size=max(16384, self._kafka.max_message_bytes),
            request_timeout_ms=30_000,
        )
        producer = await started(producer, self._kafka)
        await producer.partitions_for(self._topic)  # the topic's metadata, for `partition_for`
        return producer

    async def _replace_producer(self) -> None:
        """Swap in a producer with a new id, noting first how far each partition of the topic reaches.

        Retries until the broker answers (publishing waits meanwhile, as when the broker is away)."""
        old, self._producer = self._producer, None
        log.warning("the broker holds fewer records than it acknowledged (sequence error); replacing the "
                    "producer and re-sending what the broker no longer has")
        if old is not None:
            with contextlib.suppress(Exception):
                await old.stop()  # what it still holds fails at once with the same sequence error
        while True:
            try:
                ends = await self._read_end_offsets()
                producer = await self._start_producer()
                break
            except (KafkaError, OSError) as exc:
                log.warning("replacing the producer failed (%s); trying again in 1s", exc)
                await asyncio.sleep(1.0)
        self.end_offsets = ends
        self._producer = producer
        self.recoveries += 1

    async def _read_end_offsets(self) -> dict[int, int]:
        consumer = AIOKafkaConsumer(**client_options(self._kafka), enable_auto_commit=False)
        await consumer.start()
        try:
            await consumer.topics()  # metadata of every topic, ours included
            partitions = sorted(consumer.partitions_for_topic(self._topic) or ())
            ends = await consumer.end_offsets([TopicPartition(self._topic, p) for p in partitions])
        finally:
            await consumer.stop()
        return {tp.partition: offset for tp, offset in ends.items()}

    async def _recover(self) -> None:
        """Replace the producer once, however many chunks failed with a sequence error."""
        if self._recovery is None or self._recovery.done():
            self._recovery = asyncio.ensure_future(self._replace_producer())
        await asyncio.shield(self._recovery)

    async def stop(self) -> None:
        if self._recovery is not None and not self._recovery.done():
            self._recovery.cancel()
            with contextlib.suppress(BaseException):
                await self._recovery
        if self._producer is not None:
            await self._producer.flush()
            await self._producer.stop()
            self._producer = None

    async def broker_reachable(self, timeout: float) -> bool:
        """Whether the producer's client gets a metadata answer from a broker within `timeout`: lets an
        idle process (nothing to publish, so no failed send) tell that Kafka is away."""
        producer = self._producer
        if producer is None:
            return False
        try:
            await asyncio.wait_for(producer.client.fetch_all_metadata(), timeout)
        except (KafkaError, OSError, TimeoutError):
            return False
        return True

    @property
    def in_flight_bytes(self) -> int:
        return self._in_flight

    def encode(self, chunk: RawChunk | RawBatch) -> list[bytes]:
        """Encode `chunk` as one or more payloads, each under the broker's message size limit: a batch
        is split between its streams first, then a stream's lines; a single line too big is cut."""
        limit = self._kafka.max_message_bytes - _ENVELOPE_ALLOWANCE
        payload = self._compress(chunk.encode())
        if len(payload) <= limit:
            return [payload]
        if isinstance(chunk, RawBatch):
            segments = chunk.segments
            if len(segments) > 1:
                half = len(segments) // 2
                return (self.encode(RawBatch(chunk.collected_ns, segments[:half]))
                        + self.encode(RawBatch(chunk.collected_ns, segments[half:])))
            return [part for piece in self.encode_lines(segments[0], limit, len(payload))
                    for part in self.encode(RawBatch(chunk.collected_ns, [piece]))]
        return [part for piece in self.encode_lines(chunk, limit, len(payload)) for part in self.encode(piece)]

    @staticmethod
    def encode_lines(chunk: RawChunk, limit: int, size: int) -> list[RawChunk]:
        """An oversize single-stream chunk as two halves, or its one line cut to fit."""
        lines = chunk.entries()
        if len(lines) > 1:
            half = len(lines) // 2
            return [RawChunk(chunk.source, chunk.stream_id, chunk.collected_ns, lines[:half]),
                    RawChunk(chunk.source, chunk.stream_id, chunk.collected_ns, lines[half:])]
        line = list(lines[0])
        overflow = size - limit
        line[1] = line[1][: max(0, len(line[1]) - overflow - 64)]
        line[4] |= FLAG_TRUNCATED
        return [RawChunk(chunk.source, chunk.stream_id, chunk.collected_ns, [line])]

    async def publish(self, chunk: RawChunk | RawBatch, partition: int | None = None) -> asyncio.Future[ChunkAck]:
        """Queue `chunk`; wait while the in-flight budget is spent; return a future for the ack.

        A `RawChunk` is keyed by its stream id; a `RawBatch` goes to `partition` without a key."""
        payloads = self.encode(chunk)
        size = sum(len(p) for p in payloads)
        async with self._room:
            await self._room.wait_for(lambda: self._in_flight == 0 or self._in_flight + size <= self._budget)
            self._in_flight += size
        if self._recovery is not None and not self._recovery.done():
            try:
                await asyncio.shield(self._recovery)  # nothing more for the producer being replaced
            except BaseException:  # cancelled (shutdown): this chunk was never handed over
                async with self._room:
                    self._in_flight -= size
                    self._room.notify_all()
                raise
        producer, generation = self._producer, self.recoveries
        assert producer is not None, "ChunkPublisher.start() was not called"
        key = chunk.stream_id.encode() if isinstance(chunk, RawChunk) else None
        loop = asyncio.get_running_loop()
        sends: list[asyncio.Future[RecordMetadata]] = []
        try:
            for payload in payloads:
                sends.append(await producer.send(self._topic, value=payload, key=key, partition=partition))
        except KafkaError as exc:  # e.g. the producer was replaced while this waited for batch room
            refused: asyncio.Future[RecordMetadata] = loop.create_future()
            refused.set_exception(exc)
            sends.append(refused)  # reported through the returned future; the budget is released
        done: asyncio.Future[ChunkAck] = loop.create_future()
        # a caller that dropped this future after an earlier failure of its stream needs no second report
        done.add_done_callback(lambda fut: fut.cancelled() or fut.exception())
        settling = asyncio.ensure_future(self._settle(sends, size, done, generation))
        self._settling.add(settling)  # the loop keeps only weak references to tasks
        settling.add_done_callback(self._settling.discard)
        return done

    async def _settle(self, sends: list[asyncio.Future[RecordMetadata]], size: int,
                      done: asyncio.Future[ChunkAck], generation: int) -> None:
        try:
            stored = await asyncio.gather(*sends)
        except Exception as exc:  # delivered to the caller through `done`
            self.send_errors += 1
            log.warning("publishing a chunk failed: %s", exc)
            if isinstance(exc, SEQUENCE_ERRORS):
                await self._recover()  # before the caller hears of it, so it can tell what was lost
            if not done.done():
                done.set_exception(exc)
        else:
            if not done.done():
                done.set_result(ChunkAck(stored[-1].partition, stored[-1].offset, generation))
        finally:
            async with self._room:
                self._in_flight -= size
                self._room.notify_all()
