"""FileSink: NDJSON files per sink-topic partition, rotated by size, exactly once across crashes.

Layout: `<directory>/<topic>-<partition>/<first offset:019d>.ndjson` segments. A small position
file per partition records the segment, its size and the last (offset, index) written; it is
replaced atomically after each batch is appended and fsynced. On start, bytes beyond the recorded
size (a crash between append and position update) are truncated, and lines at or below the
recorded position are skipped, so retries and replays of the sink topic never duplicate a line.
The position file also keeps per-stream marks (sinks/stream_marks.py), so a line forwarded twice
under different offsets (a worker crash upstream) is written once.

Every batch takes an exclusive lock on its partition directory (flock on `.lock`) and reads the
position file afresh under it, so any number of writers may share the directory: a drain and a
`logweave replay`, or workers on one host whose partitions move between them at a rebalance.

The drain hands whole records packed (sinks/packed.py: each record's documents in one buffer, no
object per line); the lines to append are picked per record in C when built (sinks/_segment.c), a
record kept whole is appended from its own buffer, and a batch is one writev, one fsync of the
segment and one of the position file, whatever its size (hence `sinks.file.batch_lines` and
`batch_bytes`, far above the network sinks' batches). Once fsynced, a batch's pages are dropped from the
page cache (`sinks.file.drop_written_pages`): nothing reads them back soon, and taking fresh pages for the
cache cost more system CPU than the copy itself (docs/sinks.md).
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from core.settings import FileSinkSettings, Settings
from sinks.base import Sink, SinkBatch, WriteResult
from sinks.packed import native_select, pack_sink_lines, select_lines

IOV_MAX = os.sysconf("SC_IOV_MAX") if "SC_IOV_MAX" in os.sysconf_names else 1024  # buffers one writev takes
log = logging.getLogger(__name__)


@dataclass(slots=True)
class PartitionPosition:
    segment: str
    size: int
    offset: int
    index: int
    streams: dict[str, int] = field(default_factory=dict)


class FileSink(Sink):
    """The embedded default sink."""

    name = "file"
    takes_packed = True

    def __init__(self, settings: FileSinkSettings, batch_size: int, batch_bytes: int, batch_period: float) -> None:
        self.settings = settings
        self._limits = (batch_size, batch_bytes, batch_period)
        self._select = native_select()
        self._drop_pages = settings.drop_written_pages

    @classmethod
    def from_settings(cls, settings: Settings) -> FileSink:
        s = settings.sinks
        return cls(s.file, s.file.batch_lines, s.file.batch_bytes, s.batch_period)

    def batch_limits(self) -> tuple[int, int, float]:
        return self._limits

    async def start(self) -> None:
        await asyncio.to_thread(self.settings.directory.mkdir, parents=True, exist_ok=True)

    async def stop(self) -> None:
        return None

    async def write_batch(self, batch: SinkBatch) -> WriteResult:
        await asyncio.to_thread(self._write, batch)
        return WriteResult()

    async def resume_offset(self, topic: str, partition: int) -> int | None:
        path = self._partition_dir(topic, partition) / "position.json"
        if not path.exists():
            return None
        offset: int = orjson.loads(path.read_bytes())["offset"]
        return offset if offset >= 0 else None

    # -- blocking part, run in a thread --------------------------------------------------------
    def _partition_dir(self, topic: str, partition: int) -> Path:
        return self.settings.directory / f"{topic}-{partition}"

    @staticmethod
    def _load_position(directory: Path) -> PartitionPosition | None:
        """The recorded position; called under the partition lock, so a longer segment is a crash."""
        path = directory / "position.json"
        position = PartitionPosition(**orjson.loads(path.read_bytes())) if path.exists() else None
        if position is not None:
            segment = directory / position.segment
            if segment.exists() and segment.stat().st_size > position.size:
                os.truncate(segment, position.size)  # drop a crashed, unrecorded append
        return position

    def _write(self, batch: SinkBatch) -> None:
        directory = self._partition_dir(batch.topic, batch.partition)
        directory.mkdir(parents=True, exist_ok=True)
        lock = os.open(directory / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(lock, fcntl.LOCK_EX)  # released by close, also when the process dies
            self._write_locked(directory, batch)
        finally:
            os.close(lock)

    def _write_locked(self, directory: Path, batch: SinkBatch) -> None:
        position = self._load_position(directory)
        marks = dict(position.streams) if position is not None else {}
        after = (position.offset, position.index) if position is not None else (-1, -1)
        records = [*pack_sink_lines(batch.lines), *batch.packed] if batch.lines else batch.packed
        pieces: list[bytes] = []
        segment, last = "", (-1, -1)
        for record in records:  # in (offset, index) order: skipped lines are a replay's or an upstream re-send's
            data, kept, _, last_index = select_lines(record, after, marks, self._select)
            if kept:
                segment = segment if pieces else f"{record.offset:019d}.ndjson"  # named by its first line's offset
                pieces.append(data)
                last = (record.offset, last_index)
        if not pieces:
            return
        flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND
        if position is None or (position.size >= self.settings.rotate_bytes and segment != position.segment):
            carried = position.streams if position else {}
            position = PartitionPosition(segment, 0, -1, -1, carried)
            # Every recorded segment is named by an offset at or below the position's: a segment of this
            # name holds at most an append whose position update never happened (a crash, a full disk),
            # this batch's first lines again. Start it afresh.
            flags |= os.O_TRUNC
        size = sum(len(piece) for piece in pieces)
        fd = os.open(directory / position.segment, flags, 0o644)
        try:
            write_all(fd, pieces)  # the batch's segment bytes, by one writev
            os.fsync(fd)
            if self._drop_pages:  # clean once fsynced: the kernel frees them at once
                self._drop_written(fd, position.size, size, directory)
        finally:
            os.close(fd)
        position = PartitionPosition(position.segment, position.size + size, last[0], last[1], marks)
        temp = directory / "position.json.tmp"
        with open(temp, "wb") as handle:
            handle.write(orjson.dumps(position))  # orjson writes the dataclass itself: asdict deep-copied every mark
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, directory / "position.json")

    def _drop_written(self, fd: int, offset: int, size: int, directory: Path) -> None:
        """Drop the appended range from the page cache: a hint, so a filesystem refusing it fails no batch
        (the data is fsynced); it is then no longer asked, with one warning."""
        try:
            os.posix_fadvise(fd, offset, size, os.POSIX_FADV_DONTNEED)
        except OSError as exc:
            self._drop_pages = False
            log.warning("sinks.file.drop_written_pages: %s refused posix_fadvise (%s); written pages stay cached",
                        directory, exc)


def write_all(fd: int, pieces: list[bytes]) -> None:
    """Append every piece: one writev when the kernel takes it all (a full disk or a signal may cut it short)."""
    views = [memoryview(piece) for piece in pieces if piece]
    while views:
        written = os.writev(fd, views[:IOV_MAX])
        if written <= 0:
            raise OSError(f"writev appended nothing of {sum(len(v) for v in views)} bytes")
        while views and written >= len(views[0]):
            written -= len(views[0])
            views.pop(0)
        if views and written:
            views[0] = views[0][written:]
