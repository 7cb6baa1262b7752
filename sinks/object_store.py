"""ObjectStoreSink: gzip NDJSON objects named by sink-topic offsets, exactly once across crashes and replays.

The one base of the object-store sinks (S3, Google Cloud Storage); each store implements only how
to put, get, list and delete objects. Objects cannot be upserted line by line, so the sink keeps,
per topic partition, the last line it wrote in a small state object
(`<prefix>/_state/<topic>-<partition>.json`) written after each data object. Lines at or below it
are skipped (replays add nothing), as are lines at or below their stream's mark (sinks/stream_marks.py).
A crash between a data object and its state update makes the retry start at the same first offset
(the drain splits at record boundaries), so the retry's key shares that first offset; older objects
with that first offset and another last offset are deleted after the new one is written. The state
is read afresh for every batch (one small GET beside the object PUT), never cached: a partition that
moved to another worker and back at a rebalance must not be written from a stale position. Keys
derive from offsets and the first line's event time, never from the wall clock.
"""

from __future__ import annotations

import asyncio
import os
import struct
import time
import zlib
from abc import abstractmethod
from collections.abc import Awaitable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from functools import cache
from typing import ClassVar, TypeVar

import orjson

from core.settings import ObjectStoreSinkSettings
from sinks.base import ItemFailure, Sink, SinkBatch, SinkLine, WriteResult
from sinks.stream_marks import unseen

T = TypeVar("T")
COMPRESS_PIECE = 1 << 20  # bytes deflated per thread task; the pieces join into one gzip member
KEY_TEMPLATE = "{prefix}/dt={date}/hour={hour}/{topic}-{partition}-{first:019d}{within}-{last:019d}.ndjson.gz"
NDJSON = "application/x-ndjson"


def object_key(prefix: str, batch: SinkBatch) -> str:
    """The key of a batch's object. A batch that starts inside a record (the drain splits only a record
    larger than the flush size) names its first line's index too (`<first>i<index>`), so the parts of
    one record never share a key and overwrite each other."""
    first = batch.lines[0]
    when = datetime.fromtimestamp(first.time_ns // 1_000_000_000, UTC)  # integer: no rounding up an hour
    return KEY_TEMPLATE.format(prefix=prefix.strip("/"), date=when.strftime("%Y-%m-%d"), hour=when.strftime("%H"),
                               topic=batch.topic, partition=batch.partition, first=batch.first_offset,
                               within=f"i{first.index}" if first.index else "", last=batch.last_offset)


def sibling_prefix(key: str) -> str:
    """Keys sharing this object's first line: everything up to and including `<first>-` (or `<first>i<index>-`)."""
    return key[: key.rindex("-") + 1]


def split_by_event_time(lines: list[SinkLine], max_future_ns: int) -> tuple[list[SinkLine], list[ItemFailure]]:
    """(lines with a plausible event time, failures for the rest): objects are named by event time, so a
    line before 1970 or past the skew bound would land in a 1969 or year-3000 partition. The clock only
    bounds this check; it never names an object."""
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


def _deflate_piece(piece: memoryview, last: bool, level: int) -> bytes:
    deflate = zlib.compressobj(level, zlib.DEFLATED, -zlib.MAX_WBITS)
    return deflate.compress(piece) + deflate.flush(zlib.Z_FINISH if last else zlib.Z_SYNC_FLUSH)


@cache
def _compressor_pool() -> ThreadPoolExecutor:
    """One pool per process for every object-store sink's deflate pieces (zlib frees the GIL)."""
    return ThreadPoolExecutor(max(2, min(4, os.cpu_count() or 2)), thread_name_prefix="gzip")


async def gzip_parallel(data: bytes, level: int) -> bytes:
    """`data` as one gzip member (RFC 1952), deflated in 1 MiB pieces on a thread pool, as pigz does: each
    piece ends on a byte boundary (a sync flush), so the pieces concatenate into one deflate stream that
    any gzip reader reads; zlib releases the GIL while it deflates. Nothing runs on the event loop."""
    loop = asyncio.get_running_loop()
    pool = _compressor_pool()
    view = memoryview(data)
    starts = range(0, max(len(data), 1), COMPRESS_PIECE)
    pieces = [loop.run_in_executor(pool, _deflate_piece, view[start:start + COMPRESS_PIECE], start == starts[-1],
                                    level)
              for start in starts]
    crc = loop.run_in_executor(pool, zlib.crc32, view)
    deflated = await asyncio.gather(*pieces)
    header = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"  # deflate, no name, no mtime, unknown OS
    return b"".join([header, *deflated, struct.pack("<II", await crc, len(data) & 0xFFFFFFFF)])


class ObjectStoreSink(Sink):
    """Naming, state and crash rules; subclasses talk to the store."""

    store_errors: ClassVar[tuple[type[Exception], ...]]  # the client's exceptions, turned into ours by _classify

    def __init__(self, settings: ObjectStoreSinkSettings) -> None:
        self.settings = settings

    def batch_limits(self) -> tuple[int, int, float]:
        return (10_000_000, self.settings.flush_bytes, self.settings.flush_age)

    async def write_batch(self, batch: SinkBatch) -> WriteResult:
        """Read the state, compress and list the object's siblings at once (the common batch is all new,
        so its object is known before the state says so), put the object, then move the state."""
        if not batch.lines:
            return WriteResult()
        level = self.settings.compression_level
        max_future_ns = time.time_ns() + int(self.settings.max_future_skew * 1e9)
        good_guess, _ = split_by_event_time(batch.lines, max_future_ns)
        guess_key = object_key(self.settings.prefix, SinkBatch(batch.topic, batch.partition, good_guess)) \
            if good_guess else None
        body_guess = asyncio.ensure_future(gzip_parallel(ndjson(good_guess), level)) if good_guess else None
        siblings_guess = asyncio.ensure_future(self._store(self._list(sibling_prefix(guess_key)))) \
            if guess_key else None
        try:
            last, marks = await self._store(self._load_state(batch.topic, batch.partition))
            fresh = unseen([line for line in batch.lines if (line.offset, line.index) > last], marks)
            if not fresh:
                return WriteResult()
            good, refused = split_by_event_time(fresh, max_future_ns)
            if good:
                key = object_key(self.settings.prefix, SinkBatch(batch.topic, batch.partition, good))
                guessed = len(good) == len(good_guess) and body_guess is not None and siblings_guess is not None
                body = await body_guess if guessed else await gzip_parallel(ndjson(good), level)  # type: ignore[misc]
                await self._store(self._put(key, body))
                found = await siblings_guess if guessed else await self._store(  # type: ignore[misc]
                    self._list(sibling_prefix(key)))
                stale = [other for other in found if other != key]
                if stale:
                    await self._store(self._delete(stale))
            # the position moves past refused lines too, so a replay does not dead-letter them twice
            await self._store(self._save_state(batch.topic, batch.partition, fresh[-1], marks))
        finally:
            for guess in (body_guess, siblings_guess):
                if guess is not None and not guess.done():
                    guess.cancel()
                elif guess is not None and not guess.cancelled():
                    guess.exception()  # retrieved: a failed guess unused is no 'never retrieved' report
        return WriteResult(permanent=refused)

    async def _store(self, call: Awaitable[T]) -> T:
        """Await a store call, turning the client's errors into ours."""
        try:
            return await call
        except self.store_errors as exc:
            raise self._classify(exc) from exc

    async def resume_offset(self, topic: str, partition: int) -> int | None:
        try:
            (offset, _), _ = await self._load_state(topic, partition)
        except self.store_errors as exc:
            raise self._classify(exc) from exc
        return offset if offset >= 0 else None

    # -- what each store implements -----------------------------------------------------------
    @abstractmethod
    async def _put(self, key: str, body: bytes) -> None:
        """Store a gzip NDJSON data object (large ones in parts or resumable)."""

    @abstractmethod
    async def _put_state(self, key: str, body: bytes) -> None:
        """Store a small JSON object."""

    @abstractmethod
    async def _get(self, key: str) -> bytes | None:
        """An object's bytes, None when it does not exist."""

    @abstractmethod
    async def _list(self, prefix: str) -> list[str]:
        """Keys under `prefix`."""

    @abstractmethod
    async def _delete(self, keys: list[str]) -> None: ...

    @staticmethod
    @abstractmethod
    def _classify(exc: Exception) -> Exception:
        """PermanentError for what an operator must fix (credentials, bucket), else RetriableError."""

    # -- shared ---------------------------------------------------------------------------------
    def _state_key(self, topic: str, partition: int) -> str:
        return f"{self.settings.prefix.strip('/')}/_state/{topic}-{partition}.json"

    async def _load_state(self, topic: str, partition: int) -> tuple[tuple[int, int], dict[str, int]]:
        """(offset, index) of the last line written for this partition, and its per-stream marks."""
        data = await self._get(self._state_key(topic, partition))
        if data is None:
            return (-1, -1), {}
        state = orjson.loads(data)
        return (state["offset"], state["index"]), state.get("streams", {})

    async def _save_state(self, topic: str, partition: int, line: SinkLine, marks: dict[str, int]) -> None:
        state = {"offset": line.offset, "index": line.index, "streams": marks}
        await self._put_state(self._state_key(topic, partition), orjson.dumps(state))

