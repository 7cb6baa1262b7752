"""A sink-topic record's lines as one buffer of documents and a table: what appending sinks take, no object per line.

The file sink appends documents and keeps, per partition, its position and per-stream marks; it needs
nothing else of a line. A `SinkLine` per line (and joining their documents again) cost more than making
the documents, so for sinks with `Sink.takes_packed` the drain hands each record as a `PackedRecord`:
the documents, each followed by a newline, in one bytes object, and per line one `PACK_ENTRY` (where its
document ends, its stream position, its stream's index in `streams`), and per line its event time in
`times` (int64, what the object-store sinks name objects by and bound). The C splice writes that form
straight from the record's bytes (agents/_sinksplice.h, `pack_lines_raw`); `pack_sink_lines` is its
Python reference, from the reference splice's SinkLines. `select_lines` picks the lines a sink has not
written yet, in C when built (sinks/_segment.c) and here otherwise; `times_within` checks the event
times of a record the same two ways.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from core.native import native_module
from sinks.stream_marks import stream_key

if TYPE_CHECKING:
    from sinks.base import SinkLine

PACK_ENTRY = struct.Struct("=qqq")  # end of the document after its newline, stream position, stream index (-1: none)
TIME = struct.Struct("=q")  # a line's event time, UTC nanoseconds, held to int64 (out of range either way)
INT64_MIN, INT64_MAX = -(1 << 63), (1 << 63) - 1
Selected = tuple[bytes, int, int, int]  # kept documents, how many, index of the first and the last kept (-1: none)


@dataclass(slots=True)
class PackedRecord:
    """The lines of one sink-topic record (or of a run of consecutive lines of one record)."""

    offset: int  # the record's offset on the sink topic
    documents: bytes  # every line's document followed by b"\n"
    table: bytes  # PACK_ENTRY per line, in line order
    streams: list[str] = field(default_factory=list)  # the stream digests the table's entries refer to
    ordered: bool = True  # False: released held lines, no per-stream order to rely on
    first_index: int = 0  # the index inside its record of the first line here
    times: bytes = b""  # TIME per line, in line order

    @property
    def count(self) -> int:
        return len(self.table) // PACK_ENTRY.size

    @property
    def size_bytes(self) -> int:
        """The documents' bytes without their newlines (what a SinkBatch counts)."""
        return len(self.documents) - self.count


def pack_sink_lines(lines: list[SinkLine]) -> list[PackedRecord]:
    """The Python reference of `pack_lines_raw`: `lines` (in offset and index order) packed, one
    PackedRecord per run of consecutive lines of one record."""
    out: list[PackedRecord] = []
    start = 0
    for end in range(1, len(lines) + 1):
        if end < len(lines):
            here, before = lines[end], lines[end - 1]
            if (here.offset, here.index, here.ordered) == (before.offset, before.index + 1, before.ordered):
                continue
        out.append(_pack_run(lines[start:end]))
        start = end
    return out


def _pack_run(run: list[SinkLine]) -> PackedRecord:
    streams: list[str] = []
    refs: dict[str, int] = {}
    table = bytearray()
    end = 0
    for line in run:
        end += len(line.document) + 1
        key = stream_key(line.line_id)
        if key is None:
            table += PACK_ENTRY.pack(end, -1, -1)
            continue
        digest, position = key
        ref = refs.get(digest)
        if ref is None:
            ref = refs[digest] = len(streams)
            streams.append(digest)
        table += PACK_ENTRY.pack(end, position, ref)
    documents = b"".join(part for line in run for part in (line.document, b"\n"))
    times = struct.pack(f"={len(run)}q", *(min(max(line.time_ns, INT64_MIN), INT64_MAX) for line in run))
    return PackedRecord(run[0].offset, documents, bytes(table), streams, run[0].ordered, run[0].index, times)


def select_lines_reference(record: PackedRecord, after: tuple[int, int], marks: dict[str, int]) -> Selected:
    """The documents of `record` a sink appends: lines after the position `after` (offset, index) and, in
    ordered records, above their stream's mark; `marks` advanced to the lines kept."""
    kept: list[bytes] = []
    count, first, last, start = 0, -1, -1, 0
    documents, offset, streams = record.documents, record.offset, record.streams
    if record.count * PACK_ENTRY.size != len(record.table):
        raise ValueError("a packed table holds whole entries of three int64")
    for i, (end, position, stream) in enumerate(PACK_ENTRY.iter_unpack(record.table)):
        if not start < end <= len(documents) or documents[end - 1] != 0x0A or not -1 <= stream < len(streams):
            raise ValueError("a packed table does not match its documents")
        index = record.first_index + i
        keep = (offset, index) > after
        if keep and record.ordered and stream >= 0:
            digest = streams[stream]
            if position <= marks.get(digest, -1):
                keep = False
            else:
                marks[digest] = position
        if keep:
            kept.append(documents[start:end])
            count += 1
            first = index if first < 0 else first
            last = index
        start = end
    if start != len(documents):
        raise ValueError("a packed table does not match its documents")
    return (documents if count == record.count else b"".join(kept)), count, first, last


NativeSelect = Callable[..., Selected | None]


def native_select() -> NativeSelect | None:
    """The C selection when this process runs the C loops (core/native.py), else None."""
    module = native_module("segment_select")
    return None if module is None else module.select_lines  # type: ignore[no-any-return]


def select_lines(record: PackedRecord, after: tuple[int, int], marks: dict[str, int],
                 native: NativeSelect | None) -> Selected:
    """`select_lines_reference`, in C when `native` (native_select()) is given and sure of the answer."""
    if native is not None:
        found = native(record.documents, record.table, record.streams, marks, record.ordered, record.offset,
                       record.first_index, after[0], after[1])
        if found is not None:
            return found
    return select_lines_reference(record, after, marks)


def times_within_reference(times: bytes, low: int, high: int) -> bool:
    """Whether every TIME in `times` is within [low, high]."""
    if len(times) % TIME.size:
        raise ValueError("packed times hold whole int64")
    return all(low <= when <= high for (when,) in TIME.iter_unpack(times))


NativeTimes = Callable[[bytes, int, int], bool]


def native_times_within() -> NativeTimes | None:
    """The C event-time check when this process runs the C loops (core/native.py), else None."""
    module = native_module("segment_select")
    return None if module is None else module.times_within  # type: ignore[no-any-return]


def times_within(times: bytes, low: int, high: int, native: NativeTimes | None) -> bool:
    """`times_within_reference`, in C when `native` (native_times_within()) is given."""
    return native(times, low, high) if native is not None else times_within_reference(times, low, high)
