"""Lines of one stream gathered into chunks, under a byte budget shared by every stream.

A chunk goes out when it holds `chunk_lines` lines or `chunk_bytes` bytes, when it is
`flush_interval` old, or early when all streams together hold more than `pending_bytes` not yet
handed to the publisher. The publisher's own in-flight budget then bounds what waits for Kafka,
and `publish` blocking is what pauses reading (backpressure): memory stays bounded end to end.
"""

from __future__ import annotations

import time

from app.models import RawLine


class PendingBudget:
    """Bytes read by all streams but not yet handed to the publisher."""

    __slots__ = ("limit", "used")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0

    @property
    def exceeded(self) -> bool:
        return self.used >= self.limit


class ChunkBatcher:
    """The pending lines of one stream."""

    __slots__ = ("_budget", "_max_lines", "_max_bytes", "_interval", "lines", "bytes", "_since")

    def __init__(self, budget: PendingBudget, max_lines: int, max_bytes: int, interval: float) -> None:
        self._budget = budget
        self._max_lines = max_lines
        self._max_bytes = max_bytes
        self._interval = interval
        self.lines: list[RawLine] = []
        self.bytes = 0
        self._since = 0.0

    def add(self, entry: RawLine, size: int) -> None:
        if not self.lines:
            self._since = time.monotonic()
        self.lines.append(entry)
        self.bytes += size
        self._budget.used += size

    @property
    def full(self) -> bool:
        return (len(self.lines) >= self._max_lines or self.bytes >= self._max_bytes
                or (self._budget.exceeded and bool(self.lines)))

    def seconds_left(self) -> float | None:
        """Seconds until the pending lines are due, or None when nothing is pending."""
        if not self.lines:
            return None
        return max(0.0, self._since + self._interval - time.monotonic())

    def take(self) -> tuple[list[RawLine], int]:
        lines, size = self.lines, self.bytes
        self.lines, self.bytes = [], 0
        self._budget.used -= size
        return lines, size
