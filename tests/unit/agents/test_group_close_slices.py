"""agents.group.close_in_slices: a burst of overdue traces is closed a slice per turn of the event loop,
and stops when ownership begins to change (the grouper over an in-memory table, as in test_grouper)."""

from __future__ import annotations

import asyncio

from agents.group import close_in_slices
from tests.unit.agents.test_grouper import SOURCES, MemoryTraceTable, S, line, make, summaries

TRACES = [f"t{n}" for n in range(7)]


def overdue_grouper() -> tuple[object, list[bytes]]:
    """Seven traces past their event-time deadline: a later line moved the partition's stream time on."""
    grouper, _, closed = make(MemoryTraceTable(), allowed_lateness=0)
    lines = [line(n, t, (10 + n) * S) for n, t in enumerate(TRACES)] + [line(7, "later", 1000 * S)]
    assert grouper.process_chunk(0, SOURCES, lines) == 8
    assert grouper.overdue_left(0)
    return grouper, closed


async def test_each_slice_lets_the_loop_run_others_in_between() -> None:
    grouper, closed = overdue_grouper()
    order: list[str] = []
    close = grouper.close_overdue  # type: ignore[attr-defined]
    grouper.close_overdue = lambda *a, **kw: (order.append(f"close {close(*a, **kw)}"), 0)[1]  # type: ignore[attr-defined]

    async def others() -> None:
        while True:
            order.append("other")
            await asyncio.sleep(0)

    running = asyncio.ensure_future(others())
    await asyncio.sleep(0)
    order.clear()
    assert await close_in_slices(grouper, 0, lambda: False, slice_traces=3)  # type: ignore[arg-type]
    running.cancel()
    assert [o for o in order if o.startswith("close")] == ["close 3", "close 3", "close 1"]
    for first, second in zip(order, order[1:], strict=False):
        assert not (first.startswith("close") and second.startswith("close")), order
    assert sorted(summaries(closed)) == TRACES


async def test_a_change_of_ownership_stops_before_the_next_slice() -> None:
    grouper, closed = overdue_grouper()
    assert not await close_in_slices(grouper, 0, lambda: True, slice_traces=3)  # type: ignore[arg-type]
    assert len(summaries(closed)) == 3 and grouper.overdue_left(0)  # type: ignore[attr-defined]
