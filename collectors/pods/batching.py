"""Lines of one stream gathered into chunks, under a byte budget shared by every stream.

A chunk goes out when it holds `chunk_lines` lines or `chunk_bytes` bytes, at the first tick of
`flush_interval` after its first line (ticks are shared by every stream: multiples of the interval on
the monotonic clock), or early when all streams together hold more than `pending_bytes` not yet
accepted by the publisher: then the streams holding at least their share of what the streams hold
flush, and the others wait for room (at most until their lines are due) before reading more. Were
every stream to flush whenever the budget is spent, as it is all along while hundreds of logs are
read from behind, each read would become a chunk of its own, and the per-chunk work (publishing,
acknowledging, checkpointing) would be paid every hundred lines.
Shared ticks make the streams of a live node flush together: their chunks reach the partition
batcher at once and leave as one record per partition per tick, as the file collector's read passes
do (a stream's own timer spread them over the whole interval, and each partition's linger then sent
records twice as often). A line waits at most `flush_interval` either way.
The publisher's own in-flight budget then bounds what waits for Kafka,
and `publish` blocking is what pauses reading (backpressure): memory stays bounded end to end.
"""

from __future__ import annotations

import asyncio
import time
from typing import NamedTuple

from core.models import RawLine, WireLines, wire_lines


class PendingBudget:
    """Bytes read by all streams but not yet accepted by the publisher (blocked `publish` included).

    When it is spent, streams with nothing pending stop reading until there is room again, and
    streams with lines pending flush them: reading pauses instead of memory growing.
    """

    __slots__ = ("_room", "gate", "held", "holders", "limit", "used")

    def __init__(self, limit: int, publishers: int = 4) -> None:
        self.limit = limit
        self.used = 0
        self.held = 0  # of `used`, the bytes still in streams' batchers (not yet taken for publishing)
        self.holders = 0  # batchers holding lines
        self._room = asyncio.Event()
        self._room.set()
        # ChunkPublisher encodes a chunk before it waits for in-flight room: with hundreds of streams
        # blocked in `publish`, their encoded payloads would pile up. Few enter at a time; the rest
        # wait here holding raw lines, which this budget counts.
        self.gate = asyncio.Semaphore(publishers)

    @property
    def exceeded(self) -> bool:
        return self.used >= self.limit

    def holds_share(self, held: int) -> bool:
        """Whether a stream holding `held` bytes holds at least the average of the streams holding lines
        (one always does: the largest)."""
        return held > 0 and held * self.holders >= self.held

    def take(self, size: int) -> None:
        self.used += size
        if self.used >= self.limit:
            self._room.clear()

    def release(self, size: int) -> None:
        self.used -= size
        if self.used < self.limit:
            self._room.set()

    async def wait_for_room(self) -> None:
        await self._room.wait()


def next_tick(now: float, interval: float) -> float:
    """The first multiple of `interval` after `now` (monotonic seconds; `now` itself when it falls on one):
    when lines pending from `now` are due."""
    if interval <= 0:
        return now
    return (now // interval + 1) * interval


class Pending(NamedTuple):
    """A stream's pending lines, taken to be sent: as entries (`lines`) or, once a scan wrote any of them in
    their wire encoding, all of them so (`wire`)."""

    lines: list[RawLine]
    wire: WireLines | None
    line_count: int
    size: int
    last: tuple[int, int]  # (position, ts) of the last line


class ChunkBatcher:
    """The pending lines of one stream: entries, or, once lines come in their wire encoding (the C block
    scan's, blockscan.wire_taker), all of them in it (entries added after are encoded on the way in)."""

    __slots__ = ("_budget", "_due", "_interval", "_max_bytes", "_max_lines", "bytes", "count", "last", "lines",
                 "wire")

    def __init__(self, budget: PendingBudget, max_lines: int, max_bytes: int, interval: float) -> None:
        self._budget = budget
        self._max_lines = max_lines
        self._max_bytes = max_bytes
        self._interval = interval
        self.lines: list[RawLine] = []
        self.wire: WireLines | None = None
        self.count = 0
        self.last = (0, 0)  # (position, ts) of the last line added
        self.bytes = 0
        self._due = 0.0

    @property
    def pending(self) -> bool:
        return self.count > 0

    def add(self, entry: RawLine, size: int) -> None:
        self.extend([entry], size)

    def extend(self, entries: list[RawLine], size: int) -> None:
        if not entries:
            return
        self._hold(size)
        if self.wire is not None:
            self.wire.extend(wire_lines(entries))
        else:
            self.lines.extend(entries)
        self.count += len(entries)
        last = entries[-1]
        self.last = (last[0], last[3])

    def extend_wire(self, wire: WireLines, size: int, last: tuple[int, int]) -> None:
        """Lines in their wire encoding; `last`: the (position, ts) of the last of them. `wire` is the
        batcher's from then on (it may extend it with later lines)."""
        if not wire.count:
            return
        self._hold(size)
        if self.wire is None and not self.lines:  # the usual case: nothing pending, taken as it is
            self.wire = wire
        else:
            if self.wire is None:  # entries pending: encoded, so the chunk is one WireLines in order
                self.wire, self.lines = wire_lines(self.lines), []
            self.wire.extend(wire)
        self.count += wire.count
        self.last = last

    def _hold(self, size: int) -> None:
        budget = self._budget
        if not self.count:
            self._due = next_tick(time.monotonic(), self._interval)
            budget.holders += 1
        self.bytes += size
        budget.held += size
        budget.take(size)

    def entries(self) -> list[RawLine]:
        """The pending lines as entries, whichever form they are held in."""
        return self.wire.decode() if self.wire is not None else list(self.lines)

    def due_by(self, when: float) -> None:
        """The pending lines are due at `when` at the latest (lines read together at a paced stream's tick)."""
        if self.count and when < self._due:
            self._due = when

    @property
    def full(self) -> bool:
        return (self.count >= self._max_lines or self.bytes >= self._max_bytes
                or (self._budget.exceeded and self._budget.holds_share(self.bytes)))

    @property
    def due_at(self) -> float:
        """When the pending lines are due (monotonic seconds; meaningful while lines are pending)."""
        return self._due

    def seconds_left(self) -> float | None:
        """Seconds until the pending lines are due, or None when nothing is pending."""
        if not self.count:
            return None
        return max(0.0, self._due - time.monotonic())

    def take(self) -> Pending:
        """The pending lines; the caller releases their bytes once the publisher accepted them."""
        taken = Pending(self.lines, self.wire, self.count, self.bytes, self.last)
        if self.count:
            self._budget.holders -= 1
            self._budget.held -= self.bytes
        self.lines, self.wire, self.count, self.bytes = [], None, 0, 0
        return taken
