"""The clock the idle gap is measured on: wall time that runs only while a partition has no backlog.

A trace closes "idle" when no line joined it for `traces.gap`. Counting that on the wall clock
splits traces whenever the worker falls behind: a stalled, slow or restarted worker sees the gap
pass while the trace's next lines wait in Kafka, closes it, and opens a second instance when those
lines arrive. So each partition has its own idle clock, advanced by the close timer only over the
ticks in which the partition was caught up (every record up to the high watermark processed), and by
at most `max_step` per tick: a process that was stopped or starved sees one long tick, which is
credited as one short one, and its next ticks see the backlog the stall left. While a partition
lags, only stream time (event time less the allowed lateness) closes its traces.

Trace states store their `updated` stamp on this clock. When a worker takes a partition over (a
restart, a rebalance), the clock resumes at the latest stamp among its stored traces, so the time
the partition was down or elsewhere is not counted as idle either; a partition with no stored trace
starts at the wall time. Pure logic: the group stage says which partitions are caught up.
"""

from __future__ import annotations

import time
from collections.abc import Iterable


class IdleClock:
    """Per-partition clocks (ns) that advance only while the partition is caught up."""

    def __init__(self, max_step_ns: int) -> None:
        self.max_step_ns = max_step_ns
        self._at: dict[int, int] = {}
        self._last_tick: int | None = None

    def now(self, partition: int, wall_ns: int | None = None) -> int:
        clock = self._at.get(partition)
        if clock is None:
            clock = self._at[partition] = time.time_ns() if wall_ns is None else wall_ns
        return clock

    def tick(self, caught_up: Iterable[int], wall_ns: int | None = None) -> None:
        """Credit the time since the last tick (at most `max_step_ns`) to each caught-up partition."""
        wall = time.time_ns() if wall_ns is None else wall_ns
        step = 0 if self._last_tick is None else min(max(0, wall - self._last_tick), self.max_step_ns)
        self._last_tick = wall
        for partition in caught_up:
            self._at[partition] = self.now(partition, wall) + step

    def resume(self, partition: int, at_ns: int) -> None:
        """Continue the partition's clock from `at_ns` (its stored traces' latest `updated` stamp)."""
        self._at[partition] = at_ns

    def forget(self, partitions: Iterable[int]) -> None:
        for partition in partitions:
            self._at.pop(partition, None)
