"""When each open trace of a partition is due to close, kept in memory and rebuilt from the store.

An index in RocksDB costs two index keys written (and two deleted) per trace per chunk, each also
framed into the changelog, and a range scan per close check. Deadlines are derived data: every
trace's state holds what they are computed from, so the index lives in memory and is rebuilt by
scanning the partition's traces whenever it may be stale (after any rebalance or restart). A trace
restored from the changelog therefore still closes, which faust's own windows never do.

Two min-heaps (one per kind of deadline) with lazy deletion find the overdue traces in
O(k log n); `due` holds each trace's current pair and decides which heap entries are still live.
Each heap holds, for every trace, an entry at or before its current deadline. A deadline that
moves later (every update moves the wall one: a new line resets the idle gap) pushes nothing: the
earlier entry, when it comes up, is pushed again at the current deadline. A live node updates a
trace several times within its first second, and pushing each move cost a push and a stale pop.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable


class DeadlineIndex:
    """Current (wall, event) deadlines of one partition's open traces."""

    def __init__(self, entries: Iterable[tuple[str, int, int]] = ()) -> None:
        self.due: dict[str, tuple[int, int]] = {}
        self._wall: list[tuple[int, str]] = []
        self._event: list[tuple[int, str]] = []
        for trace_id, wall_ns, event_ns in entries:
            self.due[trace_id] = (wall_ns, event_ns)
            self._wall.append((wall_ns, trace_id))
            self._event.append((event_ns, trace_id))
        heapq.heapify(self._wall)
        heapq.heapify(self._event)

    def __len__(self) -> int:
        return len(self.due)

    def __contains__(self, trace_id: str) -> bool:
        return trace_id in self.due

    def set(self, trace_id: str, wall_ns: int, event_ns: int) -> None:
        old = self.due.get(trace_id)
        self.due[trace_id] = (wall_ns, event_ns)
        if old is None or wall_ns < old[0]:  # a later deadline keeps the earlier entry (`_pop_due`)
            heapq.heappush(self._wall, (wall_ns, trace_id))
        if old is None or event_ns < old[1]:
            heapq.heappush(self._event, (event_ns, trace_id))

    def parts(self) -> tuple[dict[str, tuple[int, int]], list[tuple[int, str]], list[tuple[int, str]]]:
        """`due` and the two heaps, for a C loop that sets new traces as `set` does
        (trace_state.open_new_traces)."""
        return self.due, self._wall, self._event

    def discard(self, trace_id: str) -> None:
        self.due.pop(trace_id, None)

    def overdue(self, now_ns: int, watermark_ns: int, most: int | None = None) -> dict[str, str]:
        """Traces past a deadline -> cause ("idle": no line for the gap by wall clock, or "event_time"),
        at most `most` of them (the earliest deadlines first; the others stay due for a later call).

        Each is reported once: the caller closes (and `discard`s) every trace it is given.
        """
        causes: dict[str, str] = {}
        bound = most if most is not None else len(self.due)
        self._pop_due(self._wall, 0, now_ns, "idle", causes, bound)
        self._pop_due(self._event, 1, watermark_ns, "event_time", causes, bound)
        return causes

    def any_overdue(self, now_ns: int, watermark_ns: int) -> bool:
        """Whether `overdue` may report a trace (a heap's first entry is due; it may be a stale entry,
        which `overdue` then skips)."""
        wall, event = self._wall, self._event
        return bool(wall and wall[0][0] <= now_ns) or bool(event and event[0][0] <= watermark_ns)

    def _pop_due(self, heap: list[tuple[int, str]], which: int, limit: int, cause: str,
                 causes: dict[str, str], most: int) -> None:
        due = self.due
        while heap and heap[0][0] <= limit:
            deadline, trace_id = heap[0]
            current = due.get(trace_id)
            if current is None or current[which] < deadline:  # discarded, or moved earlier (pushed there)
                heapq.heappop(heap)
                continue
            if current[which] <= limit:
                if trace_id not in causes:
                    if len(causes) >= most:
                        return  # this call is full: the trace stays due, its entry in place
                    causes[trace_id] = cause
                heapq.heappop(heap)
            else:  # moved later since this entry was pushed: it comes up again at the current deadline
                heapq.heapreplace(heap, (current[which], trace_id))
