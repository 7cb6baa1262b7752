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

from core.models import RawLine


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


class ChunkBatcher:
    """The pending lines of one stream."""

    __slots__ = ("_budget", "_due", "_interval", "_max_bytes", "_max_lines", "bytes", "lines")

    def __init__(self, budget: PendingBudget, max_lines: int, max_bytes: int, interval: float) -> None:
        self._budget = budget
        self._max_lines = max_lines
        self._max_bytes = max_bytes
        self._interval = interval
        self.lines: list[RawLine] = []
        self.bytes = 0
        self._due = 0.0

    def add(self, entry: RawLine, size: int) -> None:
        self.extend([entry], size)

    def extend(self, entries: list[RawLine], size: int) -> None:
        if not entries:
            return
        budget = self._budget
        if not self.lines:
            self._due = next_tick(time.monotonic(), self._interval)
            budget.holders += 1
        self.lines.extend(entries)
        self.bytes += size
        budget.held += size
        budget.take(size)

    def due_by(self, when: float) -> None:
        """The pending lines are due at `when` at the latest (lines read together at a paced stream's tick)."""
        if self.lines and when < self._due:
            self._due = when

    @property
    def full(self) -> bool:
        return (len(self.lines) >= self._max_lines or self.bytes >= self._max_bytes
                or (self._budget.exceeded and self._budget.holds_share(self.bytes)))

    @property
    def due_at(self) -> float:
        """When the pending lines are due (monotonic seconds; meaningful while lines are pending)."""
        return self._due

    def seconds_left(self) -> float | None:
        """Seconds until the pending lines are due, or None when nothing is pending."""
        if not self.lines:
            return None
        return max(0.0, self._due - time.monotonic())

    def take(self) -> tuple[list[RawLine], int]:
        """The pending lines; the caller releases their bytes once the publisher accepted them."""
        lines, size = self.lines, self.bytes
        if lines:
            self._budget.holders -= 1
            self._budget.held -= size
        self.lines, self.bytes = [], 0
        return lines, size
