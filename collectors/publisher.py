"""Publishes raw chunks to `logs.raw` with acks=all and bounded memory.

Collectors hand over chunks and get a future that resolves once Kafka acknowledged it; they
checkpoint only then. The in-flight byte budget is the backpressure: when Kafka is slow or down,
`publish` blocks, so the collector stops reading instead of buffering without bound. Chunks of one
source stream share a key, so they stay in order in one partition (stages dedupe on that order).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from aiokafka import AIOKafkaProducer

from app.codec import compressor
from app.models import FLAG_TRUNCATED, RawChunk
from app.settings import KafkaSettings
from app.topic_admin import ensure_topics

log = logging.getLogger(__name__)
_ENVELOPE_ALLOWANCE = 1024  # bytes kept free for Kafka record framing


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
        self.send_errors = 0

    async def start(self) -> None:
        if self._create_topics:
            await ensure_topics(self._kafka, self._create_topics)
        compression = None if self._kafka.compression == "none" else self._kafka.compression
        self._producer = AIOKafkaProducer(
            bootstrap_servers=self._kafka.bootstrap_servers, acks="all", enable_idempotence=True,
            compression_type=compression, linger_ms=5, max_request_size=self._kafka.max_message_bytes,
            # several chunks of one stream share a partition: let them share a request too, or one
            # chunk per round trip (the idempotent producer keeps one request in flight) caps the rate
            max_batch_size=max(16384, self._kafka.max_message_bytes),
            request_timeout_ms=30_000,
        )
        await self._producer.start()

    async def stop(self) -> None:
        if self._producer is not None:
            await self._producer.flush()
            await self._producer.stop()
            self._producer = None

    @property
    def in_flight_bytes(self) -> int:
        return self._in_flight

    def encode(self, chunk: RawChunk) -> list[bytes]:
        """Encode `chunk` as one or more payloads, each under the broker's message size limit."""
        limit = self._kafka.max_message_bytes - _ENVELOPE_ALLOWANCE
        payload = self._compress(chunk.encode())
        if len(payload) <= limit:
            return [payload]
        if len(chunk.lines) > 1:
            half = len(chunk.lines) // 2
            first = RawChunk(chunk.source, chunk.stream_id, chunk.collected_ns, chunk.lines[:half])
            second = RawChunk(chunk.source, chunk.stream_id, chunk.collected_ns, chunk.lines[half:])
            return self.encode(first) + self.encode(second)
        line = list(chunk.lines[0])
        overflow = len(payload) - limit
        line[1] = line[1][: max(0, len(line[1]) - overflow - 64)]
        line[4] |= FLAG_TRUNCATED
        return self.encode(RawChunk(chunk.source, chunk.stream_id, chunk.collected_ns, [line]))

    async def publish(self, chunk: RawChunk) -> asyncio.Future[None]:
        """Queue `chunk`; wait while the in-flight budget is spent; return a future for the ack."""
        assert self._producer is not None, "ChunkPublisher.start() was not called"
        payloads = self.encode(chunk)
        size = sum(len(p) for p in payloads)
        async with self._room:
            await self._room.wait_for(lambda: self._in_flight == 0 or self._in_flight + size <= self._budget)
            self._in_flight += size
        key = chunk.stream_id.encode()
        sends = [await self._producer.send(self._topic, value=p, key=key) for p in payloads]
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        asyncio.ensure_future(self._settle(sends, size, done))
        return done

    async def _settle(self, sends: list[asyncio.Future[object]], size: int, done: asyncio.Future[None]) -> None:
        try:
            await asyncio.gather(*sends)
        except Exception as exc:  # delivered to the caller through `done`
            self.send_errors += 1
            log.warning("publishing a chunk failed: %s", exc)
            if not done.done():
                done.set_exception(exc)
        else:
            if not done.done():
                done.set_result(None)
        finally:
            async with self._room:
                self._in_flight -= size
                self._room.notify_all()
