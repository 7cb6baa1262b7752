"""Multiline records continued across a rename rotation: `0.log` renamed while a stack trace is open in
it, its continuation lines at the start of the new `0.log`.

The same holds for copytruncate, where the "old file" is the copy (`app.log.1`) read on under the
original's stream id, and the "new file" the truncated original: truncated with a record open, the
original waits (at most `rotated_grace`) for its copy to be found and read to its end.

Files are separate streams with their own positions and checkpoints, so the joined record belongs to
the old (rotated) file: it keeps the old file's stream id and the position of its first line there,
and the new file's leading lines that continue it (by the rule's detectors and patterns, per stream)
are taken into it. The new file's own reading starts after them (its `lead_end`), and while that is
undecided - the old file not yet read to its end, its record still open - the new file is not read.

Checkpoints never split the record: the old file's checkpoint stays at the record's start until the
record is acknowledged, and the new file's reaches past the taken lines only in the same checkpoint
save as that acknowledgement (a `Floor`), never before. After a crash the old file is read again from
the record's start and takes the same leading lines of the new file again (always read from its
first byte, whatever the new file's own checkpoint says): the same record, stream id and position, so
the sinks' dedupe holds. The flush timeout still applies: a record it closes takes what it had.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

from collectors.files.tailer import TailedFile

if TYPE_CHECKING:
    from collectors.files.collector import FileCollector

PEEK_BYTES = 64 * 1024  # read of the new file's start per step


@dataclass
class Handoff:
    """An open record of a rotated file taking the leading lines of the file that replaced it."""

    successor: TailedFile
    reader: TailedFile  # the successor's lines from its first byte, on the successor's descriptor
    taken_to: int = 0  # where the successor's lines not taken into the record begin


@dataclass
class Floor:
    """Once `predecessor`'s checkpoint reaches `end` (its joined record acknowledged), `successor`'s
    checkpoint is at least `offset`: the lines of it the record took are never read as its own."""

    predecessor: str
    end: int
    successor: str
    offset: int


def _order(tailed: TailedFile) -> tuple[int, int]:
    """Order of the files of one origin path: rotated ones by their last write, then the live one."""
    try:
        mtime = os.fstat(tailed.fd).st_mtime_ns
    except OSError:
        mtime = 0
    return (0 if tailed.rotated_at is not None else 1, mtime)


class RotationJoins:
    """The hand-overs between the rotated files of a collector and the files that replaced them."""

    def __init__(self, collector: FileCollector) -> None:
        self.collector = collector
        self.floors: list[Floor] = []

    def _same_origin(self, tailed: TailedFile) -> list[TailedFile]:
        return [t for t in self.collector.files.values() if t is not tailed and t.origin == tailed.origin]

    def successor(self, rotated: TailedFile) -> TailedFile | None:
        """The file written after `rotated` under its path (the next rotated one, or the live one)."""
        mine = _order(rotated)
        later = [(order, t) for t in self._same_origin(rotated) if (order := _order(t)) > mine]
        return min(later, key=lambda item: item[0])[1] if later else None

    def blocked(self, tailed: TailedFile, now: float) -> bool:
        """Whether `tailed` waits before its first read: the file it replaced may hand it an open record
        (copytruncate: the copy of its previous content, until it is found or `rotated_grace` passed)."""
        if tailed.lead_end is not None or tailed.read_offset != 0:
            return False
        mine = _order(tailed)
        earlier = [(order, t) for t in self._same_origin(tailed)
                   if t.rotated_at is not None and (order := _order(t)) < mine]
        if tailed.awaiting_copy is not None:
            # truncated with a record open: only the copy of the generation it truncated continues it, not
            # the copy of an earlier truncation still followed (rotations closer than `rotated_grace`)
            earlier = [(order, t) for order, t in earlier if t.stream_id == tailed.previous_stream_id]
        if not earlier:
            if tailed.awaiting_copy is not None and now - tailed.awaiting_copy < self.collector.settings.rotated_grace:
                return True
            tailed.awaiting_copy = None
            return False
        tailed.awaiting_copy = None
        previous = max(earlier, key=lambda item: item[0])[1]
        return previous.joiner is not None and not previous.handed_over

    async def extend(self, rotated: TailedFile, now: float) -> None:
        """`rotated` was read to its end: let its open records take the successor's leading lines, and
        once a line starts a record of its own (or nothing is open any more) close them and let the
        successor read on from there."""
        joiner = rotated.joiner
        if joiner is None or rotated.handed_over or not rotated.read_whole:
            return
        if not joiner.open:
            await self._finish(rotated, rotated.handoff.taken_to if rotated.handoff else 0)
            return
        successor = self.successor(rotated)
        if successor is None or not successor.take_fingerprint() or successor.joiner is None:
            return  # none yet (or one that joins nothing): the grace period or the flush timeout closes it
        if successor.lead_end is None and successor.read_offset != 0:
            await self._finish(rotated, 0)  # it read its first lines as its own already: nothing to take
            return
        handoff = rotated.handoff
        if handoff is None or handoff.successor is not successor:
            reader = TailedFile(successor.path, successor.fd, successor.dev, successor.ino, successor.fingerprint,
                                successor.generation, 0, successor.fmt, successor.source, successor.max_line_bytes)
            handoff = rotated.handoff = Handoff(successor, reader)
        reader = handoff.reader
        while True:
            lines = reader.read_lines(PEEK_BYTES)
            for raw in lines:
                if not joiner.continue_open(raw, now):
                    await self._finish(rotated, min(reader.resume_at(raw[0]), reader.safe_offset))
                    return
            handoff.taken_to = reader.safe_offset
            if not lines and reader.read_offset >= successor.size():
                return  # all of it continues the record so far: wait for more, or the flush timeout

    async def _finish(self, rotated: TailedFile, taken_to: int) -> None:
        collector = self.collector
        handoff, rotated.handoff, rotated.handed_over = rotated.handoff, None, True
        records = rotated.flush_pending()  # the record is complete: a line of the successor starts the next
        if records:
            await collector._publish(rotated, records)
        if handoff is None:
            return
        successor = handoff.successor
        successor.lead_end = taken_to
        entry = collector.checkpoints.get(successor.stream_id)
        if entry is not None:  # a restart hands the same lines to the record again (see collector._track)
            collector.checkpoints[successor.stream_id] = {**entry, "lead": taken_to}
        if successor.read_offset < taken_to:
            successor.read_offset = taken_to
        successor.needs_read = True
        if taken_to:
            self.floors.append(Floor(rotated.stream_id, rotated.read_offset, successor.stream_id, taken_to))

    def raise_floors(self) -> None:
        """Move each successor's checkpoint past the lines its predecessor's acknowledged record took."""
        checkpoints = self.collector.checkpoints
        for floor in list(self.floors):
            entry = checkpoints.get(floor.predecessor)
            if entry is None or int(str(entry.get("offset", 0))) < floor.end:
                continue
            self.floors.remove(floor)
            successor = checkpoints.get(floor.successor)
            if successor is not None and int(str(successor.get("offset", 0))) < floor.offset:
                checkpoints[floor.successor] = {**successor, "offset": floor.offset}
