"""Acknowledge only what Kafka acknowledged: the one path every protocol stores chunks through.

`store` hands a chunk to the shared ChunkPublisher and returns once Kafka acknowledged it, or raises
`BrokerUnavailable` when no ack came within `ack_timeout` (the client then keeps its data and
retries: HTTP 503 + Retry-After, no forward ack, OTLP UNAVAILABLE). A chunk that timed out is not
withdrawn: it may still be stored, which is why retried requests carry the same stream identity
(Idempotency-Key, forward `chunk`) for the worker's per-stream dedupe to absorb. The publisher's
in-flight budget is the bounded buffer: when it is spent, `store` refuses at once with `Overloaded`
instead of queueing without bound.
"""

from __future__ import annotations

import asyncio
import logging
import time

from aiokafka.errors import KafkaError

from collectors.intake.metrics import IntakeMetrics
from core.models import RawChunk
from kafka_io.publisher import ChunkPublisher

log = logging.getLogger(__name__)


class BrokerUnavailable(Exception):
    """Kafka did not acknowledge in time (or refused): nothing may be acknowledged to the client."""


class Overloaded(Exception):
    """The in-flight buffer is spent: the client should slow down and retry."""


class Delivery:
    def __init__(self, publisher: ChunkPublisher, metrics: IntakeMetrics, ack_timeout: float,
                 buffer_bytes: int) -> None:
        self.publisher = publisher
        self.metrics = metrics
        self.ack_timeout = ack_timeout
        self.buffer_bytes = buffer_bytes
        self.broker_ok = True  # the last chunk was acknowledged, or (when idle) the last probe was answered
        self.started = False  # the publisher is connected
        self._pending: set[asyncio.Task[None]] = set()
        self._last_answer = time.monotonic()  # of Kafka: an ack or a probe

    @property
    def full(self) -> bool:
        return self.publisher.in_flight_bytes >= self.buffer_bytes

    async def store(self, chunks: list[RawChunk], protocol: str) -> None:
        """Return once Kafka acknowledged every chunk; raise BrokerUnavailable or Overloaded otherwise."""
        if not chunks:
            return
        count = sum(len(c.lines) for c in chunks)
        self.metrics.lines_received.labels(protocol).inc(count)  # the heartbeat's lines in
        if not self.started:
            raise BrokerUnavailable("the intake is not connected to Kafka yet")
        if self.full:
            raise Overloaded(f"{self.publisher.in_flight_bytes} bytes wait for Kafka (intake.buffer_bytes)")
        began = time.monotonic()
        # shielded: a timed-out publish keeps running, so the publisher's budget is always released
        task = asyncio.ensure_future(self._publish(chunks))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)
        try:
            await asyncio.wait_for(asyncio.shield(task), self.ack_timeout)
        except TimeoutError:
            self.broker_ok = False
            raise BrokerUnavailable(f"Kafka did not acknowledge within {self.ack_timeout:g}s") from None
        except KafkaError as exc:
            self.broker_ok = False
            raise BrokerUnavailable(f"Kafka refused the chunk: {exc}") from None
        self.broker_ok, self._last_answer = True, time.monotonic()
        self.metrics.ack_latency.labels(protocol).observe(time.monotonic() - began)
        self.metrics.lines.labels(protocol).inc(count)

    async def watch_broker(self, interval: float) -> None:
        """Forever: when no ack came for `interval`, ask the producer's connection whether Kafka answers
        (within `interval`), so /readyz of an idle intake turns not-ready while Kafka is away."""
        while True:
            await asyncio.sleep(interval)
            if time.monotonic() - self._last_answer < interval:
                continue  # acks are flowing: stores keep broker_ok current
            reachable = await self.publisher.broker_reachable(interval)
            if reachable != self.broker_ok:
                log.warning("Kafka %s", "answers again" if reachable else
                            f"did not answer a metadata request within {interval:g}s: not ready")
            self.broker_ok = reachable
            if reachable:
                self._last_answer = time.monotonic()

    async def _publish(self, chunks: list[RawChunk]) -> None:
        acks = [await self.publisher.publish(chunk) for chunk in chunks]
        await asyncio.gather(*acks)

    async def drain(self, timeout: float) -> None:
        """Wait (bounded) for chunks still on their way to Kafka, e.g. before shutting down."""
        if self._pending:
            await asyncio.wait(set(self._pending), timeout=timeout)
