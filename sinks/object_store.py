"""ObjectStoreSink: gzip NDJSON objects named by sink-topic offsets, exactly once across crashes, replays and
partition moves, for about one request per object.

The one base of the object-store sinks (S3, Google Cloud Storage); each store implements only how to put,
get, list and delete objects. Objects cannot be upserted line by line, so the sink keeps, per topic
partition, a position: the last line written and per-stream marks (sinks/stream_marks.py). Lines at or
below it are skipped, so replays add nothing.

The position lives in memory while this worker writes the partition: it is read from the store once (the
first batch of a partition, a re-delivered batch, or any failed write), not before every object. Its
durable copy, the state object `<prefix>/_state/<topic>-<partition>.json`, goes up *beside* each data
object (two requests at once, the data object the only large one) and names that object as pending, with
the position before it. Reading the state back checks the pending object (one HEAD): present, the position
after it holds; absent (a crash between the two requests), the position before it does. The state write is
conditional on the version this worker last read or wrote (S3 If-Match/If-None-Match, GCS
ifGenerationMatch), which fences two writers of one partition during a rebalance: the one whose state write
is refused removes its object when another object shares its first line, reads the state again and lets the
drain retry, so a partition moved away and back is never written from a stale position.

A crash after the data object but before its state leaves an orphan that the re-delivered batch replaces:
the re-delivery starts at the same first line, so the new object shares that first offset, and the first
object written after a read of the state lists its siblings and deletes those with another last offset
(the state names the listing as owed, so a crash before it makes the next read do it). In the steady state
nothing is listed. Keys derive from offsets and the first line's event time, never from the wall clock.

The drain hands whole records packed (`takes_packed`, sinks/packed.py: each record's documents in one
buffer, a table of positions and each line's event time), as it does to the file sink. The lines to put are
picked per record in C (sinks/_segment.c, the same position and marks rules), the event times are bounded
in C, and the body is the records' own buffers joined: byte for byte the NDJSON the line path makes, with
no object per line. A packed batch with an event time out of range is handed back (NeedsLines) before
anything is written and comes again as SinkLines, so each such line keeps its own dead letter.
"""

from __future__ import annotations

import asyncio
import importlib
import os
import struct
import time
import zlib
from abc import abstractmethod
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from types import ModuleType
from typing import Any, ClassVar, TypeVar

import orjson

from core.errors import RetriableError
from core.native import pure_requested
from core.settings import ObjectStoreSinkSettings
from sinks.base import ItemFailure, NeedsLines, Sink, SinkBatch, SinkLine, WriteResult
from sinks.packed import INT64_MAX, TIME, PackedRecord, native_select, native_times_within, select_lines, times_within
from sinks.stream_marks import unseen

T = TypeVar("T")
Write = Callable[["Position", "asyncio.Future[bytes] | None"], Awaitable[tuple[WriteResult, "Position"]]]
COMPRESS_PIECE = 1 << 20  # bytes deflated per thread task by zlib; the pieces join into one gzip member
ISAL_PIECE = 4 << 20  # ISA-L deflates 1 MiB in ~0.3 ms: larger pieces, or the thread hand-off costs more
KEY_TEMPLATE = "{prefix}/dt={date}/hour={hour}/{topic}-{partition}-{first:019d}{within}-{last:019d}.ndjson.gz"
NDJSON = "application/x-ndjson"


def object_key(prefix: str, batch: SinkBatch) -> str:
    """The key of a batch's object. A batch that starts inside a record (the drain splits only a record
    larger than the flush size) names its first line's index too (`<first>i<index>`), so the parts of
    one record never share a key and overwrite each other."""
    first = batch.lines[0]
    return key_of(prefix, batch.topic, batch.partition, (first.offset, first.index, first.time_ns), batch.last_offset)


def key_of(prefix: str, topic: str, partition: int, first: tuple[int, int, int], last_offset: int) -> str:
    """`object_key` from the object's first line (offset, index, event time) and its last line's offset."""
    offset, index, time_ns = first
    when = datetime.fromtimestamp(time_ns // 1_000_000_000, UTC)  # integer: no rounding up an hour
    return KEY_TEMPLATE.format(prefix=prefix.strip("/"), date=when.strftime("%Y-%m-%d"), hour=when.strftime("%H"),
                               topic=topic, partition=partition, first=offset,
                               within=f"i{index}" if index else "", last=last_offset)


def sibling_prefix(key: str) -> str:
    """Keys sharing this object's first line: everything up to and including `<first>-` (or `<first>i<index>-`)."""
    return key[: key.rindex("-") + 1]


def split_by_event_time(lines: list[SinkLine], max_future_ns: int) -> tuple[list[SinkLine], list[ItemFailure]]:
    """(lines with a plausible event time, failures for the rest): objects are named by event time, so a
    line before 1970 or past the skew bound would land in a 1969 or year-3000 partition. The clock only
    bounds this check; it never names an object."""
    if all(0 <= line.time_ns <= max_future_ns for line in lines):  # the common batch: no list built
        return lines, []
    good: list[SinkLine] = []
    refused: list[ItemFailure] = []
    for line in lines:
        if 0 <= line.time_ns <= max_future_ns:
            good.append(line)
        else:
            when = "before 1970" if line.time_ns < 0 else "too far in the future (max_future_skew)"
            refused.append(ItemFailure(line, "event_time_out_of_range",
                                       f"event time {line.time_ns} ns is {when}: no object partition for it"))
    return good, refused


def ndjson(lines: list[SinkLine]) -> bytes:
    """The lines' documents as NDJSON, joined in one pass."""
    documents = [line.document for line in lines]
    documents.append(b"")
    return b"\n".join(documents)


@cache
def isal_zlib() -> ModuleType | None:
    """ISA-L's deflate (the `isal` dependency): ~6x zlib's speed at level 1 for objects no larger."""
    try:
        return importlib.import_module("isal.isal_zlib")
    except ImportError:  # an install without it compresses with zlib
        return None


def deflater(level: int) -> tuple[ModuleType, int]:
    """(deflate module, its level) for `compression_level` (zlib's 1-9). Levels 1-5 take ISA-L's level 1 when
    installed: about 6x zlib level 1's speed, with objects about as small as zlib level 5's on JSON logs.
    Levels 6-9, LOGWEAVE_PURE=1 and an install without ISA-L take zlib (the reference) at that level.
    Both write standard deflate; any gzip reader reads either."""
    fast = isal_zlib()
    if fast is None or level > 5 or pure_requested():
        return zlib, level
    return fast, 1


def _deflate_piece(module: ModuleType, piece: memoryview, last: bool, level: int) -> bytes:
    deflate = module.compressobj(level, module.DEFLATED, -zlib.MAX_WBITS)
    out: bytes = deflate.compress(piece) + deflate.flush(module.Z_FINISH if last else module.Z_SYNC_FLUSH)
    return out


@cache
def _compressor_pool() -> ThreadPoolExecutor:
    """One pool per process for every object-store sink's deflate pieces (zlib and ISA-L free the GIL)."""
    return ThreadPoolExecutor(max(2, min(4, os.cpu_count() or 2)), thread_name_prefix="gzip")


async def gzip_parallel(data: bytes, level: int, module: ModuleType | None = None) -> bytes:
    """`data` as one gzip member (RFC 1952), deflated in pieces on a thread pool, as pigz does: each piece
    ends on a byte boundary (a sync flush), so the pieces concatenate into one deflate stream that any gzip
    reader reads; the deflater releases the GIL. Nothing runs on the event loop. `module`: zlib or ISA-L's
    isal_zlib at `level` (default: `deflater(level)`)."""
    if module is None:
        module, level = deflater(level)
    loop = asyncio.get_running_loop()
    pool = _compressor_pool()
    view = memoryview(data)
    size = COMPRESS_PIECE if module is zlib else ISAL_PIECE
    starts = range(0, max(len(data), 1), size)
    pieces = [loop.run_in_executor(pool, _deflate_piece, module, view[start:start + size], start == starts[-1],
                                   level)
              for start in starts]
    crc = loop.run_in_executor(pool, module.crc32, view)
    deflated = await asyncio.gather(*pieces)
    header = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"  # deflate, no name, no mtime, unknown OS
    return b"".join([header, *deflated, struct.pack("<II", await crc, len(data) & 0xFFFFFFFF)])


class StateConflict(Exception):
    """The state object is not at the version this sink last read or wrote: another writer moved it."""


@dataclass(slots=True)
class Position:
    """One partition as this sink knows it: the last line written, the per-stream marks, the state object's
    version (ETag or generation; None: there is none), and whether the next object's siblings are owed a
    listing (after a read of the state, the first object may replace a crashed run's orphan)."""

    offset: int = -1
    index: int = -1
    marks: dict[str, int] = field(default_factory=dict)
    version: str | None = None
    list_siblings: bool = True


class ObjectStoreSink(Sink):
    """Naming, state and crash rules; subclasses talk to the store."""

    store_errors: ClassVar[tuple[type[Exception], ...]]  # the client's exceptions, turned into ours by _classify
    takes_packed = True

    def __init__(self, settings: ObjectStoreSinkSettings) -> None:
        self.settings = settings
        self._positions: dict[tuple[str, int], Position] = {}  # partitions written since their state was read
        self._select = native_select()  # C loops of sinks/packed.py (None: LOGWEAVE_PURE=1 or not built)
        self._times = native_times_within()

    def batch_limits(self) -> tuple[int, int, float]:
        return (10_000_000, self.settings.flush_bytes, self.settings.flush_age)

    async def write_batch(self, batch: SinkBatch) -> WriteResult:
        """Compress while the lines are checked against the position, then put the object and the state at
        once. The position is read from the store for a partition not written since its last read, and for
        a batch that starts at or below it (a re-delivery: another worker may have written meanwhile).
        The drain hands records packed (sinks/packed.py); a packed batch with a line whose event time is
        out of range is handed back (NeedsLines) and comes again as SinkLines, so that line is refused
        with a dead letter of its own."""
        if batch.packed:
            return await self._write_packed(batch)
        if not batch.lines:
            return WriteResult()
        first = batch.lines[0]
        max_future_ns = self._max_future_ns()
        good_guess, _ = split_by_event_time(batch.lines, max_future_ns)
        guess = ndjson(good_guess) if good_guess else None

        async def write(known: Position, body_guess: asyncio.Future[bytes] | None) -> tuple[WriteResult, Position]:
            return await self._write(batch, known, max_future_ns, good_guess, body_guess)
        return await self._around(batch, (first.offset, first.index), guess, write)

    async def _write_packed(self, batch: SinkBatch) -> WriteResult:
        """The packed form of `write_batch`: the lines kept are picked per record in C (sinks/_segment.c)
        and the object's body is the records' own buffers joined, byte for byte `ndjson` of those lines."""
        records = [record for record in batch.packed if record.count]
        if not records:
            return WriteResult()
        max_future_ns = self._max_future_ns()
        for record in records:
            if len(record.times) != record.count * TIME.size or \
                    not times_within(record.times, 0, max_future_ns, self._times):
                raise NeedsLines(f"{batch.topic}-{batch.partition}: a line's event time is out of range (or not "
                                 "packed): the batch goes as lines, so that line is refused alone")
        whole = records[0].documents if len(records) == 1 else b"".join(record.documents for record in records)

        async def write(known: Position, body_guess: asyncio.Future[bytes] | None) -> tuple[WriteResult, Position]:
            return await self._write_records(batch, records, known, whole, body_guess)
        return await self._around(batch, (records[0].offset, records[0].first_index), whole, write)

    def _max_future_ns(self) -> int:
        # below INT64_MAX: a packed time held to it (sinks/packed.py) stays past the bound
        return min(time.time_ns() + int(self.settings.max_future_skew * 1e9), INT64_MAX - 1)

    async def _around(self, batch: SinkBatch, first: tuple[int, int], guess: bytes | None,
                      write: Write) -> WriteResult:
        """Compress `guess` (the body when every line is new) while the position is settled, then `write`;
        the position is kept in memory only once the write is confirmed."""
        where = (batch.topic, batch.partition)
        known = self._positions.pop(where, None)  # back only once this write is confirmed
        body_guess = asyncio.ensure_future(gzip_parallel(guess, self.settings.compression_level)) \
            if guess else None
        try:
            if known is None or first <= (known.offset, known.index):
                known = await self._store(self._read_position(batch.topic, batch.partition))
            result, written = await write(known, body_guess)
        finally:
            if body_guess is not None and not body_guess.done():
                body_guess.cancel()
            elif body_guess is not None and not body_guess.cancelled():
                body_guess.exception()  # retrieved: a failed guess unused is no 'never retrieved' report
        self._positions[where] = written
        return result

    async def _write_records(self, batch: SinkBatch, records: list[PackedRecord], known: Position, whole: bytes,
                             body_guess: asyncio.Future[bytes] | None) -> tuple[WriteResult, Position]:
        marks = dict(known.marks)
        after = (known.offset, known.index)
        pieces: list[bytes] = []
        fresh = 0
        first: tuple[int, int, int] | None = None  # the first kept line's offset, index and event time
        last = after
        for record in records:  # in (offset, index) order; skipped lines are a replay's or an upstream re-send's
            data, kept, first_index, last_index = select_lines(record, after, marks, self._select)
            if kept:
                pieces.append(data)
                fresh += kept
                if first is None:
                    (when,) = TIME.unpack_from(record.times, (first_index - record.first_index) * TIME.size)
                    first = (record.offset, first_index, when)
                last = (record.offset, last_index)
        if first is None:
            return WriteResult(), known
        key = key_of(self.settings.prefix, batch.topic, batch.partition, first, last[0])
        if fresh == sum(record.count for record in records):  # the common batch: every line new
            body = body_guess if body_guess is not None else gzip_parallel(whole, self.settings.compression_level)
        else:
            body = gzip_parallel(b"".join(pieces), self.settings.compression_level)
        return await self._commit(batch, known, key, last, marks, body, [])

    async def _write(self, batch: SinkBatch, known: Position, max_future_ns: int, good_guess: list[SinkLine],
                     body_guess: asyncio.Future[bytes] | None) -> tuple[WriteResult, Position]:
        first = batch.lines[0]
        after = batch.lines if (first.offset, first.index) > (known.offset, known.index) else \
            [line for line in batch.lines if (line.offset, line.index) > (known.offset, known.index)]
        marks = dict(known.marks)
        fresh = unseen(after, marks)
        if not fresh:
            return WriteResult(), known
        refused: list[ItemFailure] = []
        if len(fresh) == len(good_guess) == len(batch.lines):  # the common batch: all new, all timed well
            good = fresh
        else:
            good, refused = split_by_event_time(fresh, max_future_ns)
        key = object_key(self.settings.prefix, SinkBatch(batch.topic, batch.partition, good)) if good else None
        guessed = body_guess is not None and len(good) == len(good_guess)
        body = body_guess if guessed else gzip_parallel(ndjson(good), self.settings.compression_level) if good else None
        return await self._commit(batch, known, key, (fresh[-1].offset, fresh[-1].index), marks, body, refused)

    async def _commit(self, batch: SinkBatch, known: Position, key: str | None, last: tuple[int, int],
                      marks: dict[str, int], body: Awaitable[bytes] | None,
                      refused: list[ItemFailure]) -> tuple[WriteResult, Position]:
        """Put the object `key` (None: every fresh line refused) and the state naming the position after
        `last` with `marks`; the new position once both are confirmed."""
        state: dict[str, Any] = {"offset": last[0], "index": last[1], "streams": marks}
        if key is not None:
            # the position before this object, for a reader that finds the object missing (only changed marks)
            state["object"] = key
            state["before"] = {"offset": known.offset, "index": known.index,
                               "streams": {d: known.marks.get(d) for d, m in marks.items() if known.marks.get(d) != m}}
            if known.list_siblings:
                state["list_siblings"] = True
        state_key, state_body = self._state_key(batch.topic, batch.partition), orjson.dumps(state)
        if key is None or body is None:
            # every fresh line refused: only the position moves, so a replay does not refuse them twice
            try:
                version = await self._store(self._put_state(state_key, state_body, known.version))
            except StateConflict:
                raise self._moved(batch) from None
            return WriteResult(permanent=refused), Position(last[0], last[1], marks, version, known.list_siblings)
        # the state goes up at once (it names the object as pending), the object once compressed: both are
        # in flight together, and the state does not wait for the deflate
        state_put = asyncio.ensure_future(self._store(self._put_state(state_key, state_body, known.version)))
        data_put = asyncio.ensure_future(self._put_when_compressed(key, body))
        try:
            version = await state_put
        except StateConflict:
            # another writer moved the state: once this object has landed (or failed), take it back if
            # another object shares its first line, which is the other writer's
            await asyncio.gather(data_put, return_exceptions=True)
            await self._store(self._delete_if_sibling(key))
            raise self._moved(batch) from None
        except BaseException:
            await asyncio.gather(data_put, return_exceptions=True)
            raise
        try:
            if known.list_siblings:  # fenced by the state write: the orphans listed meanwhile are this writer's
                await self._store(self._delete_siblings(key))
            await data_put
        except BaseException:
            await asyncio.gather(data_put, return_exceptions=True)  # no put left running unobserved
            raise
        return WriteResult(permanent=refused), Position(last[0], last[1], marks, version, False)

    async def _put_when_compressed(self, key: str, body: Awaitable[bytes]) -> None:
        await self._store(self._put(key, await body))

    @staticmethod
    def _moved(batch: SinkBatch) -> RetriableError:
        return RetriableError(f"another worker wrote {batch.topic}-{batch.partition} since this one read its state "
                              "(a rebalance): it is read again")

    async def _delete_if_sibling(self, key: str) -> None:
        if any(other != key for other in await self._list(sibling_prefix(key))):
            await self._delete([key])

    async def _delete_siblings(self, key: str) -> None:
        """Delete the objects sharing `key`'s first line with another last line: a crashed run's orphans."""
        stale = [other for other in await self._list(sibling_prefix(key)) if other != key]
        if stale:
            await self._delete(stale)

    async def _store(self, call: Awaitable[T]) -> T:
        """Await a store call, turning the client's errors into ours."""
        try:
            return await call
        except self.store_errors as exc:
            raise self._classify(exc) from exc

    async def resume_offset(self, topic: str, partition: int) -> int | None:
        known = await self._store(self._read_position(topic, partition))
        return known.offset if known.offset >= 0 else None

    # -- what each store implements -----------------------------------------------------------
    @abstractmethod
    async def _put(self, key: str, body: bytes) -> None:
        """Store a gzip NDJSON data object (large ones in parts or resumable)."""

    @abstractmethod
    async def _put_state(self, key: str, body: bytes, version: str | None) -> str | None:
        """Store a small JSON object only if it is at `version` (None: only if there is none); return its new
        version (None when the store names none). Raise StateConflict when it is not."""

    @abstractmethod
    async def _get_state(self, key: str) -> tuple[bytes, str | None] | None:
        """A small object's bytes and version, None when it does not exist."""

    @abstractmethod
    async def _exists(self, key: str) -> bool:
        """Whether a data object is stored (complete: an unfinished multipart or resumable upload is not)."""

    @abstractmethod
    async def _list(self, prefix: str) -> list[str]:
        """Keys under `prefix`."""

    @abstractmethod
    async def _delete(self, keys: list[str]) -> None: ...

    async def _abandon(self, key: str) -> None:
        """Discard an unfinished upload of `key` (a crash mid-upload); stores without such leftovers do nothing."""

    @staticmethod
    @abstractmethod
    def _classify(exc: Exception) -> Exception:
        """PermanentError for what an operator must fix (credentials, bucket), else RetriableError."""

    # -- shared ---------------------------------------------------------------------------------
    def _state_key(self, topic: str, partition: int) -> str:
        return f"{self.settings.prefix.strip('/')}/_state/{topic}-{partition}.json"

    async def _read_position(self, topic: str, partition: int) -> Position:
        """The partition's position from its state object, settling the object it names as pending: present,
        the position after it holds (and an owed sibling listing is done); absent, the one before it."""
        found = await self._get_state(self._state_key(topic, partition))
        if found is None:
            return Position()
        data, version = found
        state: dict[str, Any] = orjson.loads(data)
        marks: dict[str, int] = state.get("streams", {})
        key = state.get("object")
        if key is None or await self._exists(key):
            if key is not None and state.get("list_siblings"):
                await self._delete_siblings(key)
            return Position(state["offset"], state["index"], marks, version)
        await self._abandon(key)
        before = state["before"]
        for digest, mark in before["streams"].items():
            if mark is None:
                marks.pop(digest, None)
            else:
                marks[digest] = mark
        return Position(before["offset"], before["index"], marks, version)
