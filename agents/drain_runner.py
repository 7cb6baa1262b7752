"""Delivers sink-topic chunks to one sink: batch, write, retry, dead-letter, and only then ack.

Pure asyncio, no faust: the drain agent hands over the records of one `noack_take` and acks them
after `deliver` returns. `deliver` returns only when every line is written or dead-lettered; on
retriable failures it backs off (with jitter, capped) and the circuit breaker pauses a dead sink,
so nothing is acked, and nothing dropped, while a sink is down.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import orjson

from agents.breaker import BreakerState, CircuitBreaker, backoff_delay
from agents.parsed_layout import parsed_layout
from agents.sink_health import SinkHealth, SinkState
from core.codec import decompress
from core.errors import PermanentError, RetriableError
from core.heartbeat_figures import note_dead_letter
from core.metrics import (
    SINK_BATCHES,
    SINK_BREAKER,
    SINK_BYTES,
    SINK_DEAD_LETTERS,
    SINK_LATENCY,
    SINK_LINES,
    SINK_RETRIES,
)
from core.models import (
    P_LEVEL,
    P_POS,
    P_SERVICE,
    P_SID,
    P_SRC,
    P_STREAM,
    P_TEXT,
    P_TIME,
    P_TRACE,
    DeadLetter,
    ParsedChunk,
    decode_closed_traces,
    line_id,
    splice_metadata,
    stream_digest,
)
from core.native import native_module
from core.redact import install_log_redaction
from core.settings import Settings
from sinks.base import ItemFailure, NeedsLines, Sink, SinkBatch, SinkLine
from sinks.packed import PackedRecord, pack_sink_lines

log = logging.getLogger(__name__)
DeadLetterSender = Callable[[list[DeadLetter]], Awaitable[None]]


@dataclass(slots=True)
class SinkRecord:
    """One Kafka record of a sink topic: where it sits and its chunk payload."""

    partition: int
    offset: int
    value: bytes
    timestamp: float | None = None  # the record's Kafka timestamp (s), for the oldest-unwritten age


SpliceChunk = Callable[..., tuple[list[SinkLine], int]]


def sink_line(line: list[Any], index: int, sources: list[str], digests: dict[str, str], reserved_key: str,
              offset: int, ordered: bool) -> SinkLine:
    """The Python reference of one delivered line: the original JSON object plus Logweave's metadata
    (docs/chunk-format.md, "Delivered documents"). The C splice (agents/_sinksplice.h, sink_lines) writes
    the same bytes and calls this for every line it is not sure of."""
    sid, pos = line[P_SID], line[P_POS]
    digest = digests.get(sid)
    if digest is None:
        digest = digests[sid] = stream_digest(sid)
    lid = line_id(sid, pos, digest)
    dumps = orjson.dumps
    meta = (f'{{"sid":{dumps(sid).decode()},"pos":{pos},"lid":"{lid}","time_ns":{line[P_TIME]},'
            f'"trace":{dumps(line[P_TRACE]).decode()},"level":{dumps(line[P_LEVEL]).decode()},'
            f'"service":{dumps(line[P_SERVICE]).decode()},"stream":{dumps(line[P_STREAM]).decode()},'
            f'"source":{sources[line[P_SRC]]}}}')
    return SinkLine(lid, line[P_TRACE], line[P_TIME], line[P_LEVEL], line[P_SERVICE],
                    splice_metadata(line[P_TEXT], reserved_key, meta), offset, index, ordered)


def native_splice() -> SpliceChunk | None:
    """The C splice when this process runs the C loops (core/native.py), else None."""
    module = native_module("line_scan")  # the parse scan's extension also holds the splice
    splice: SpliceChunk | None = getattr(module, "sink_lines", None)
    return splice


@dataclass(slots=True)
class RawChunk:
    """Where a sink record's parts are, as the group stage encoded them (agents/_sinksplice.h, chunk_layout)."""

    scan: Any  # the C module
    payload: bytes  # the record's chunk, decompressed
    lines_start: int
    lines_end: int
    sources: list[bytes]  # each source as orjson writes it
    ordered: bool


def raw_chunk(record: SinkRecord) -> RawChunk | None:
    """The record's layout for the C splice reading its bytes, without decoding the chunk into Python
    objects; None without the C loops or when the record is not exactly of that shape (the caller decodes
    and splices it the reference way, which also reports a broken record)."""
    module = native_module("line_scan")
    if module is None or not hasattr(module, "pack_lines_raw"):
        return None
    try:
        payload = decompress(record.value)
    except Exception:  # lz4 and zstd raise their own types; ParsedChunk.decode names the problem
        return None
    layout = parsed_layout(payload)
    if layout is None:
        return None
    try:
        encoded = [orjson.dumps(src) for src in layout.sources]
    except TypeError:
        return None
    return RawChunk(module, payload, layout.lines_start, layout.lines_end, encoded, layout.ordered)


def raw_sink_lines(record: SinkRecord, reserved_key: str) -> tuple[list[SinkLine], int] | None:
    """The lines read by the C splice straight from the record's bytes as the group stage encoded them;
    None when the reference must make them (raw_chunk)."""
    raw = raw_chunk(record)
    if raw is None:
        return None
    found: tuple[list[SinkLine], int] | None = raw.scan.sink_lines_raw(
        raw.payload, raw.lines_start, raw.lines_end, raw.sources, reserved_key, {}, stream_digest, SinkLine,
        record.offset, raw.ordered)
    return found


def packed_record(record: SinkRecord, reserved_key: str, splice: SpliceChunk | None,
                  digests: dict[str, str] | None = None) -> PackedRecord:
    """The record's lines packed for a sink with `takes_packed` (sinks/packed.py): straight from its bytes
    in C when it can, else from the SinkLines of `chunk_sink_lines` through the Python reference.
    `digests` caches stream digests by stream id across records."""
    empty = PackedRecord(record.offset, b"", b"")  # a record without lines (its order is of no matter)
    raw = raw_chunk(record) if splice is not None else None
    if raw is not None:
        found = raw.scan.pack_lines_raw(raw.payload, raw.lines_start, raw.lines_end, raw.sources, reserved_key,
                                        {} if digests is None else digests, stream_digest)
        if found is not None:
            documents, table, streams, times = found
            return PackedRecord(record.offset, documents, table, streams, raw.ordered, 0, times) if table else empty
    lines, _ = chunk_sink_lines(record, reserved_key, splice)
    packed = pack_sink_lines(lines)  # one record's lines: one run, or none
    return packed[0] if packed else empty


def to_sink_lines(record: SinkRecord, reserved_key: str) -> list[SinkLine]:
    """Expand a parsed chunk into sink lines whose documents carry Logweave's metadata."""
    return chunk_sink_lines(record, reserved_key, native_splice())[0]


def chunk_sink_lines(record: SinkRecord, reserved_key: str,
                     splice: SpliceChunk | None) -> tuple[list[SinkLine], int]:
    """`to_sink_lines` with the documents' total size; `splice` (native_splice()) makes the lines in C,
    None runs the Python reference per line."""
    if splice is not None:
        found = raw_sink_lines(record, reserved_key)
        if found is not None:
            return found
    chunk = ParsedChunk.decode(record.value)
    sources = [orjson.dumps(src).decode() for src in chunk.sources]
    digests: dict[str, str] = {}
    offset, ordered = record.offset, chunk.ordered

    def reference(line: list[Any], index: int) -> SinkLine:
        return sink_line(line, index, sources, digests, reserved_key, offset, ordered)

    if splice is not None:
        return splice(chunk.lines, [s.encode() for s in sources], reserved_key, digests, stream_digest, SinkLine,
                      offset, ordered, reference)
    out = [reference(line, index) for index, line in enumerate(chunk.lines)]
    return out, sum(len(line.document) for line in out)


async def write_together(batches: list[SinkBatch], write: Callable[[SinkBatch], Awaitable[None]], width: int) -> None:
    """`write` each batch, `width` at once (1: one after another, in order); return when all are written.
    Each writer takes the next batch as it finishes one, so a slow batch holds up one writer only."""
    pending = iter(batches)  # shared by the writers: each batch is taken once

    async def writer() -> None:
        for batch in pending:
            await write(batch)
    if width <= 1 or len(batches) <= 1:
        await writer()
        return
    writers = [asyncio.ensure_future(writer()) for _ in range(min(width, len(batches)))]
    try:
        await asyncio.gather(*writers)
    except BaseException:  # a failure or a cancel: no writer is left running unobserved
        for task in writers:
            task.cancel()
        await asyncio.gather(*writers, return_exceptions=True)
        raise


class DrainRunner:
    """Owns one sink instance and its breaker; `deliver` is called with consecutive record lists."""

    def __init__(self, sink: Sink, settings: Settings, topic: str, dead_letter: DeadLetterSender) -> None:
        self.sink = sink
        self.name = sink.name
        self.topic = topic
        self.retry = settings.sinks.retry
        self.reserved_key = settings.parse.reserved_key
        self._splice = native_splice()
        self._digests: dict[str, str] = {}  # stream digests by stream id, for packed records
        self.max_lines, self.max_bytes, self.max_wait = sink.batch_limits()
        self.breaker = CircuitBreaker(self.retry.breaker_failures, self.retry.breaker_reset)
        self.dead_letter = dead_letter
        self.started = False
        self._starting: asyncio.Future[None] | None = None
        self.health = SinkHealth(self.name)
        self._start_lock = asyncio.Lock()  # the line drain and the closed-trace drain share the sink
        SINK_BREAKER.labels(self.name).set(BreakerState.CLOSED)
        # the written counters exist at 0 from the start: a series born at its first write's value hides
        # that write from rate()/increase() (the stalled-sink alert read such a sink as writing nothing)
        SINK_LINES.labels(self.name)
        SINK_BYTES.labels(self.name)
        SINK_BATCHES.labels(self.name)
        install_log_redaction()  # sink errors logged here may quote server URLs with credentials

    async def start(self) -> None:
        async with self._start_lock:
            if not self.started:
                await self._start()

    async def _start(self) -> None:
        attempt = 0
        while True:
            try:
                await self.sink.start()
                self.started = True
                self.health.set(SinkState.READY)
                return
            except RetriableError as exc:
                delay = backoff_delay(attempt, self.retry.initial_backoff, self.retry.max_backoff)
                self.health.set(SinkState.STARTING, f"{exc}")
                log.warning("sink %s not ready (%s); retrying in %.1fs", self.name, exc, delay)
                attempt += 1
                await asyncio.sleep(delay)

    def start_soon(self) -> asyncio.Future[None]:
        """Start the sink in the background (once): a sink that cannot start shows it at boot, not
        only when records arrive; deliveries wait for the same start."""
        if self._starting is None or (self._starting.done() and not self.started):
            self._starting = asyncio.ensure_future(self.start())
            self._starting.add_done_callback(self._start_failed)
        return self._starting

    def _start_failed(self, starting: asyncio.Future[None]) -> None:
        if starting.cancelled() or starting.exception() is None:
            return
        error = starting.exception()
        self.health.set(SinkState.FAILING, f"{error}")
        log.error("sink %s cannot start: %s", self.name, error)

    async def stop(self) -> None:
        if self._starting is not None and not self._starting.done():
            self._starting.cancel()
        if self.started:
            await self.sink.stop()

    async def deliver(self, records: list[SinkRecord]) -> int:
        """Write every line of `records`; return (their line count) once all are written or dead-lettered."""
        stamps = [r.timestamp for r in records if r.timestamp is not None]
        self.health.pending(min(stamps) if stamps else None)
        if not self.started:
            await self.start_soon()
        in_order = sorted(records, key=lambda r: (r.partition, r.offset))
        if self.sink.takes_packed:
            count = 0
            for batch, taken in self._packed_batches(in_order):  # each packed only when the one before is written
                try:
                    await self._write_until_done(batch)
                except NeedsLines:  # a line the sink refuses alone: the same records as SinkLines
                    chunks = [chunk_sink_lines(record, self.reserved_key, self._splice) for record in taken]
                    for lines_batch in self._batches(batch.partition, chunks):
                        await self._write_until_done(lines_batch)
                count += batch.line_count
            self.health.pending(None)
            return count
        by_partition: dict[int, list[tuple[list[SinkLine], int]]] = defaultdict(list)
        for record in in_order:
            by_partition[record.partition].append(chunk_sink_lines(record, self.reserved_key, self._splice))
        batches = [batch for partition, chunks in by_partition.items() for batch in self._batches(partition, chunks)]
        await write_together(batches, self._write_until_done, self.sink.concurrent_batches)
        self.health.pending(None)
        return sum(len(lines) for chunks in by_partition.values() for lines, _ in chunks)

    async def deliver_closed_traces(self, values: list[bytes]) -> int:
        """Store the summaries of `traces.closed` records (sinks with accepts_closed_traces); return
        once stored, retrying like line batches. Summaries are keyed by close id, so re-delivery is harmless."""
        if not self.started:
            await self.start()
        summaries = [item for value in values for item in decode_closed_traces(value)]
        attempt = 0
        while summaries:
            wait = self.breaker.wait_seconds()
            if wait > 0:
                await asyncio.sleep(wait)
                continue
            try:
                await self.sink.write_closed_traces(summaries)
                self.breaker.record_success()
                break
            except (RetriableError, PermanentError) as exc:
                self._failed(attempt, f"closed traces: {exc}", loud=isinstance(exc, PermanentError))
                await asyncio.sleep(backoff_delay(attempt, self.retry.initial_backoff, self.retry.max_backoff))
                attempt += 1
        return len(summaries)

    def _batches(self, partition: int, chunks: list[tuple[list[SinkLine], int]]) -> list[SinkBatch]:
        """Split at record (chunk) boundaries where possible, so batches are named by whole offsets.

        `chunks` are the records' lines with their documents' total size. Only a single record larger
        than the limits is split inside; sinks that name objects by offsets (S3) keep their limits far
        above a record's size.
        """
        batches: list[SinkBatch] = []
        current: list[SinkLine] = []
        size = 0
        for lines, record_size in chunks:
            if current and (len(current) + len(lines) > self.max_lines or size + record_size > self.max_bytes):
                batches.append(SinkBatch(self.topic, partition, current, size))
                current, size = [], 0
            if len(current) + len(lines) <= self.max_lines and size + record_size <= self.max_bytes:
                current.extend(lines)  # the whole record fits: no per-line check
                size += record_size
                continue
            for line in lines:
                if current and (len(current) >= self.max_lines or size + len(line.document) > self.max_bytes):
                    batches.append(SinkBatch(self.topic, partition, current, size))
                    current, size = [], 0
                current.append(line)
                size += len(line.document)
        if current:
            batches.append(SinkBatch(self.topic, partition, current, size))
        return batches

    def _packed_batches(self, records: list[SinkRecord]) -> Iterator[tuple[SinkBatch, list[SinkRecord]]]:
        """Whole records packed (sinks/packed.py), one partition per batch, up to the limits; a record
        above them alone. Records are in (partition, offset) order; each batch comes with its records."""
        if len(self._digests) > 65_536:  # streams come and go; the cache only saves a hash per record
            self._digests.clear()
        current: list[PackedRecord] = []
        taken: list[SinkRecord] = []
        lines = size = 0
        partition = records[0].partition if records else 0
        for record in records:
            packed = packed_record(record, self.reserved_key, self._splice, self._digests)
            if current and (record.partition != partition or lines + packed.count > self.max_lines
                            or size + packed.size_bytes > self.max_bytes):
                yield SinkBatch(self.topic, partition, [], size, current), taken
                current, taken, lines, size = [], [], 0, 0
            partition = record.partition
            current.append(packed)
            taken.append(record)
            lines += packed.count
            size += packed.size_bytes
        if current:
            yield SinkBatch(self.topic, partition, [], size, current), taken

    async def _write_until_done(self, batch: SinkBatch) -> None:
        attempt = 0
        while batch.lines or batch.packed:
            wait = self.breaker.wait_seconds()
            SINK_BREAKER.labels(self.name).set(self.breaker.state)
            if wait > 0:
                await asyncio.sleep(wait)
                continue
            started = time.perf_counter()
            try:
                result = await self.sink.write_batch(batch)
            except (RetriableError, PermanentError) as exc:
                # A whole batch refused is the sink's or the configuration's fault, not the data's:
                # keep the backlog in Kafka and retry (the breaker spaces the attempts out).
                self._failed(attempt, f"{exc}", loud=isinstance(exc, PermanentError))
                await asyncio.sleep(backoff_delay(attempt, self.retry.initial_backoff, self.retry.max_backoff))
                attempt += 1
                continue
            SINK_LATENCY.labels(self.name).observe(time.perf_counter() - started)
            if batch.packed and (result.permanent or result.retry):
                raise TypeError(f"sink {self.name} takes packed batches, so it must raise for the whole batch, "
                                "not report failures per line")
            if result.permanent:
                await self._dead_letter(result.permanent)
            if result.permanent or result.retry:
                failed_ids = {id(f.line) for f in result.permanent} | {id(f.line) for f in result.retry}
                written = [line for line in batch.lines if id(line) not in failed_ids]
                SINK_LINES.labels(self.name).inc(len(written))
                SINK_BYTES.labels(self.name).inc(sum(len(line.document) for line in written))
            else:
                SINK_LINES.labels(self.name).inc(batch.line_count)
                SINK_BYTES.labels(self.name).inc(batch.size_bytes)
            SINK_BATCHES.labels(self.name).inc()
            if not result.retry:
                self.breaker.record_success()
                SINK_BREAKER.labels(self.name).set(self.breaker.state)
                self.health.written()
                return
            self._failed(attempt, f"{len(result.retry)} item(s) retriable: {result.retry[0].detail}")
            batch = SinkBatch(batch.topic, batch.partition, [f.line for f in result.retry])
            await asyncio.sleep(backoff_delay(attempt, self.retry.initial_backoff, self.retry.max_backoff))
            attempt += 1

    def _failed(self, attempt: int, why: str, loud: bool = False) -> None:
        SINK_RETRIES.labels(self.name).inc()
        self.breaker.record_failure()
        SINK_BREAKER.labels(self.name).set(self.breaker.state)
        self.health.set(SinkState.OPEN if self.breaker.state is BreakerState.OPEN else SinkState.FAILING, why)
        if loud:
            log.error("sink %s refuses every write (attempt %d): %s", self.name, attempt + 1, why)
        elif attempt % 10 == 0:
            log.warning("sink %s write failed (attempt %d, breaker %s): %s", self.name, attempt + 1,
                        self.breaker.state.name.lower(), why)

    async def _dead_letter(self, failures: list[ItemFailure]) -> None:
        SINK_DEAD_LETTERS.labels(self.name).inc(len(failures))
        note_dead_letter(f"sink:{self.name}", failures[-1].line.document)  # the latest example, for heartbeats
        await self.dead_letter([
            DeadLetter(f.reason, f.detail, f"sink:{self.name}", f.line.document.decode(), False, {},
                       f.line.line_id, f.line.offset)
            for f in failures
        ])
