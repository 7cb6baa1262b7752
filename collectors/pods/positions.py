"""Positions of pod log lines, and resuming a stream without loss or duplicates.

A line's identity is (stream id, position). The pod log API has no offsets, only the kubelet
timestamp, so the position is `timestamp_us * 1000 + index`, the index counting lines of the same
microsecond. It is reproducible: a stream resumed with `sinceTime` (floored to the microsecond)
replays the last microsecond from its first line, counts the same indexes again, and every line
whose position is not above the last one published is a duplicate and is dropped.

Timestamps of one container instance do not go backwards in practice; if one does, the line is
placed after the previous one (same microsecond, next index) so positions still increase.

The cursor also remembers the last line Kafka acknowledged. A chunk that Kafka did not acknowledge
rewinds the cursor there (a new epoch: acks of chunks sent before it no longer count), and the stream
reads again from that line: failed chunks are re-sent, in order, until acknowledged. A restarted
collector starts each cursor from its saved acknowledged position (position_store.py).
"""

from __future__ import annotations

from collectors.pods.timestamps import format_since_time

_PER_US = 1000


class StreamCursor:
    """Position assignment and resume point of one container instance's log."""

    __slots__ = ("_clock_us", "_index", "acked_position", "acked_ts_ns", "epoch", "last_position", "last_ts_ns",
                 "skip_before_ns")

    def __init__(self, acked_ts_ns: int | None = None, acked_position: int = -1) -> None:
        self.last_ts_ns: int | None = acked_ts_ns  # timestamp of the last line accepted for publishing
        self.last_position = acked_position
        self.skip_before_ns = 0  # lines older than this are not wanted (pod re-entered the selector)
        self._clock_us = -1
        self._index = 0
        self.acked_ts_ns = acked_ts_ns  # the last line Kafka acknowledged
        self.acked_position = acked_position
        self.epoch = 0  # bumped by every rewind

    def acknowledge(self, epoch: int, ts_ns: int, position: int) -> bool:
        """A chunk ending with this line was acknowledged; False if it was sent before a rewind."""
        if epoch != self.epoch or position <= self.acked_position:
            return False
        self.acked_ts_ns, self.acked_position = ts_ns, position
        return True

    def forget_acknowledged(self, ts_ns: int | None, position: int) -> None:
        """The broker lost what it had acknowledged after this line: count only up to it."""
        if position < self.acked_position:
            self.acked_ts_ns, self.acked_position = ts_ns, position

    def rewind(self, epoch: int) -> bool:
        """A chunk sent in `epoch` failed: continue after the last acknowledged line (False: already did)."""
        if epoch != self.epoch:
            return False
        self.epoch += 1
        self.last_ts_ns, self.last_position = self.acked_ts_ns, self.acked_position
        return True

    def begin_connection(self) -> None:
        """A new response replays from `since_time()`: count indexes afresh."""
        self._clock_us = -1
        self._index = 0

    def since_time(self) -> str | None:
        """The `sinceTime` to resume from, or None to read the instance's log from its start."""
        points = [t for t in (self.last_ts_ns, self.skip_before_ns or None) if t is not None]
        return format_since_time(max(points)) if points else None

    def scan_state(self) -> tuple[int, int, int, int]:
        """(microsecond clock, index in it, last position, skip_before_ns): what a block scan starts from
        (blockscan.py applies `accept`'s rules to a whole block at once)."""
        return self._clock_us, self._index, self.last_position, self.skip_before_ns

    def advance(self, clock_us: int, index: int, last_position: int, last_ts_ns: int | None) -> None:
        """The state after a block scan; `last_ts_ns` None: no line was accepted."""
        self._clock_us, self._index, self.last_position = clock_us, index, last_position
        if last_ts_ns is not None:
            self.last_ts_ns = last_ts_ns

    def accept(self, ts_ns: int) -> int | None:
        """The position of a line with this timestamp, or None if it was already published."""
        us = ts_ns // 1000
        if us > self._clock_us:
            self._clock_us = us
            self._index = 0
        else:
            self._index += 1
            if self._index >= _PER_US:  # more than 1000 lines in one microsecond: borrow the next
                self._clock_us += 1
                self._index = 0
        position = self._clock_us * _PER_US + self._index
        if position <= self.last_position or ts_ns < self.skip_before_ns:
            return None
        self.last_position = position
        self.last_ts_ns = ts_ns
        return position
