"""Gathers the chunks of many streams per destination partition into one multi-stream record.

The worker pays per Kafka record, so lines per record is what counts. A node has hundreds of log
streams, each written slowly: one record per stream per read would carry a few lines. Collectors
hand their per-stream chunks here; each goes into the open batch of the partition its stream id maps
to (the partition a record keyed by the stream id would go to, so a stream stays where it was). A
batch is sent as one `RawBatch` record when it holds `max_lines` lines or `max_bytes` bytes, or when
its oldest chunk is `linger` seconds old.

Every chunk of a batch gets the batch's ack future, so a stream's checkpoints advance only through
acknowledged batches and a failed batch fails every stream in it. Batches are handed to the
publisher in the order they were closed, by one task, so a stream's chunks reach their partition in
order. `publish` waits while closed batches wait for the publisher (its in-flight budget is spent):
that is the backpressure that pauses the collectors' reading.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections import deque
from collections.abc import Callable
from typing import Protocol, runtime_checkable

from core.models import RawBatch, RawChunk, wire_lines
from kafka_io.publisher import ChunkAck, ChunkPublisher

log = logging.getLogger(__name__)
LINE_OVERHEAD = 48  # bytes counted per line besides its text (position, stream, time, flags, framing)
Settled = Callable[["asyncio.Future[ChunkAck]"], None]  # told a batch's outcome (publish_nowait's on_settled)


class _Batch:
    __slots__ = ("ack", "bytes", "collected_ns", "due", "lines", "partition", "segments", "settled")

    def __init__(self, partition: int, due: float, collected_ns: int, ack: asyncio.Future[ChunkAck]) -> None:
        self.partition = partition
        self.due = due
        self.collected_ns = collected_ns
        self.segments: dict[str, RawChunk] = {}
        self.lines = 0
        self.bytes = 0
        self.ack = ack
        self.settled: list[Settled] = []  # publish_nowait's callers, told in one callback of `ack`
        ack.add_done_callback(functools.partial(_tell_settled, self.settled))


class PartitionBatcher:
    """Multi-stream records per partition, in front of a `ChunkPublisher` (same `publish` contract)."""

    def __init__(self, publisher: ChunkPublisher, linger: float, max_lines: int, max_bytes: int,
                 max_waiting_bytes: int | None = None) -> None:
        self.publisher = publisher
        self.linger = linger
        self.max_lines = max_lines
        self.max_bytes = max_bytes
        self.max_waiting_bytes = max_waiting_bytes if max_waiting_bytes is not None else 4 * max_bytes
        self._open: dict[int, _Batch] = {}
        self._closed: deque[_Batch] = deque()
        self._closed_bytes = 0
        self._wake = asyncio.Event()
        self._room = asyncio.Event()
        self._room.set()
        self._idle = asyncio.Event()
        self._idle.set()
        self._sender: asyncio.Task[None] | None = None
        self.records = 0  # batches handed to the publisher
        self.chunks = 0  # per-stream chunks they carried

    @property
    def recoveries(self) -> int:
        return self.publisher.recoveries

    def lost(self, ack: ChunkAck) -> bool:
        return self.publisher.lost(ack)

    def start(self) -> None:
        if self._sender is None:
            self._sender = asyncio.create_task(self._send_forever(), name="partition-batcher")

    async def stop(self) -> None:
        """Hand what is gathered to the publisher, then stop; the caller flushes the publisher. Cancelled
        (a shutdown deadline, the publisher blocked by a broker away), it stops without waiting."""
        self.flush()
        try:
            if self._sender is not None:
                await self._idle.wait()
        finally:
            if self._sender is not None:
                self._sender.cancel()
                self._sender = None
            for batch in list(self._open.values()) + list(self._closed):
                if not batch.ack.done():
                    batch.ack.cancel()

    async def publish(self, chunk: RawChunk, text_size: int | None = None) -> asyncio.Future[ChunkAck]:
        """Add `chunk` to its partition's batch; the future resolves once Kafka acknowledged that batch.
        `text_size`: the size of its lines' text (characters or UTF-8 bytes: it only sizes batches) when the
        caller already counted it; else it is counted here, a pass over every line.

        Waits while closed batches are waiting for the publisher (backpressure)."""
        ack_future = self._add(chunk, text_size)
        if not self._room.is_set():  # a coroutine less per chunk while there is room (the usual case)
            await self._room.wait()
        return ack_future

    @property
    def has_room(self) -> bool:
        """Whether `publish` would return without waiting (no closed batches waiting for the publisher)."""
        return self._room.is_set()

    def publish_nowait(self, chunk: RawChunk, text_size: int | None,
                       on_settled: Settled | None = None) -> asyncio.Future[ChunkAck]:
        """`publish` for a caller that cannot wait, or need not, after it saw `has_room`: no coroutine per
        chunk. `on_settled`, if given, is called with the returned future once it is done: the callers of a
        batch are told in turn by one callback, not a loop callback each (hundreds of streams a tick go into
        a few batches)."""
        return self._add(chunk, text_size, on_settled)

    def _add(self, chunk: RawChunk, text_size: int | None,
             on_settled: Settled | None = None) -> asyncio.Future[ChunkAck]:
        count = chunk.line_count
        if not count:
            raise ValueError("an empty chunk has nothing to publish")
        self.start()
        size = (chunk.text_size() if text_size is None else text_size) + LINE_OVERHEAD * count
        partition = self.publisher.partition_for(chunk.stream_id)
        batch = self._open.get(partition)
        if batch is not None and batch.lines and (batch.lines + count > self.max_lines
                                                  or batch.bytes + size > self.max_bytes):
            self._close(partition)
            batch = None
        if batch is None:
            loop = asyncio.get_running_loop()
            ack: asyncio.Future[ChunkAck] = loop.create_future()
            batch = self._open[partition] = _Batch(partition, time.monotonic() + self.linger, chunk.collected_ns, ack)
            self._wake.set()  # a new deadline
        segment = batch.segments.get(chunk.stream_id)
        if segment is None:  # an encoded chunk is taken as it is (ChunkSink.publish): no copy per chunk
            batch.segments[chunk.stream_id] = chunk if chunk.wire is not None else RawChunk(
                chunk.source, chunk.stream_id, chunk.collected_ns, list(chunk.lines))
        elif segment.wire is None and chunk.wire is None:
            segment.lines.extend(chunk.lines)
        else:  # a stream's lines in both forms (a read of uncommon lines beside common ones): all encoded
            if segment.wire is None:
                segment.wire, segment.lines = wire_lines(segment.lines), []
            segment.wire.extend(chunk.wire if chunk.wire is not None else wire_lines(chunk.lines))
        batch.lines += count
        batch.bytes += size
        self.chunks += 1
        if on_settled is not None:
            batch.settled.append(on_settled)
        ack_future = batch.ack
        if batch.lines >= self.max_lines or batch.bytes >= self.max_bytes:
            self._close(partition)
        return ack_future

    def flush(self) -> None:
        """Close every open batch now (shutdown, or a caller that cannot wait for the linger)."""
        for partition in list(self._open):
            self._close(partition)

    def discard(self, stream_id: str) -> None:
        """Drop the lines of `stream_id` not handed to the publisher yet: the stream re-reads them after
        a failed send, and sending them meanwhile would put later positions before earlier ones."""
        for batch in list(self._open.values()) + list(self._closed):
            segment = batch.segments.pop(stream_id, None)
            if segment is not None:
                batch.lines -= segment.line_count

    def _close(self, partition: int) -> None:
        batch = self._open.pop(partition)
        self._closed.append(batch)
        self._closed_bytes += batch.bytes
        if self._closed_bytes >= self.max_waiting_bytes:
            self._room.clear()
        self._idle.clear()
        self._wake.set()

    async def _send_forever(self) -> None:
        while True:
            if not self._closed:
                self._idle.set()
                self._wake.clear()
                due = min((b.due for b in self._open.values()), default=None)
                timeout = None if due is None else max(0.0, due - time.monotonic())
                if timeout is None or timeout > 0:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wake.wait(), timeout)
                now = time.monotonic()
                for partition, batch in list(self._open.items()):
                    if batch.due <= now:
                        self._close(partition)
                continue
            batch = self._closed.popleft()
            try:
                await self._send(batch)
            finally:
                self._closed_bytes -= batch.bytes
                if self._closed_bytes < self.max_waiting_bytes:
                    self._room.set()

    async def _send(self, batch: _Batch) -> None:
        if not batch.segments:  # every stream in it was discarded
            batch.ack.cancel()
            return
        record = RawBatch(batch.collected_ns, list(batch.segments.values()))
        try:
            sent = await self.publisher.publish(record, partition=batch.partition)
        except asyncio.CancelledError:  # stopping while the publisher's budget is spent: never handed over
            batch.ack.cancel()
            raise
        except Exception as exc:  # e.g. a refused payload: the streams in it re-read from their checkpoints
            log.warning("publishing a batch of %d streams failed: %s", len(batch.segments), exc)
            if not batch.ack.done():
                batch.ack.set_exception(exc)
            return
        self.records += 1
        ack = batch.ack  # not the batch: its lines need not live until Kafka acknowledged them
        sent.add_done_callback(lambda fut: _settle(fut, ack))


def _tell_settled(settled: list[Settled], ack: asyncio.Future[ChunkAck]) -> None:
    """A batch's outcome to each publish_nowait caller in it, in the order they came; one failing does not
    keep it from the others (logged as the event loop logs a failed callback)."""
    if not ack.cancelled():
        ack.exception()  # streams that dropped this future after a failure of their own need no second report
    for tell in settled:
        try:
            tell(ack)
        except Exception:
            log.exception("a stream failed to take its batch's outcome")


def _settle(sent: asyncio.Future[ChunkAck], ack: asyncio.Future[ChunkAck]) -> None:
    if ack.done():
        return
    if sent.cancelled():
        ack.cancel()
    elif (exc := sent.exception()) is not None:
        ack.set_exception(exc)
    else:
        ack.set_result(sent.result())


@runtime_checkable
class ImmediateChunkSink(Protocol):
    """A ChunkSink that also takes a chunk without waiting when it has room (PartitionBatcher)."""

    @property
    def has_room(self) -> bool: ...

    def publish_nowait(self, chunk: RawChunk, text_size: int | None,
                       on_settled: Settled | None = None) -> asyncio.Future[ChunkAck]: ...


class ChunkSink(Protocol):
    """What collectors publish per-stream chunks to: a PartitionBatcher (or a stand-in in tests)."""

    @property
    def recoveries(self) -> int: ...  # producers replaced after the broker lost acknowledged records

    async def publish(self, chunk: RawChunk, text_size: int | None = None) -> asyncio.Future[ChunkAck]:
        """Send `chunk` (`text_size`: its lines' text size when the caller counted it). A chunk of encoded
        lines (`wire`) is the sink's from then on: it may add the stream's later lines to it, so the
        caller never touches it again."""

    def lost(self, ack: ChunkAck) -> bool: ...

    def discard(self, stream_id: str) -> None: ...
