"""Chunk batching under a byte budget shared by every stream."""

from __future__ import annotations

import asyncio

from collectors.pods.batching import ChunkBatcher, PendingBudget
from core.models import make_raw_line


def test_full_by_lines_bytes_or_shared_budget() -> None:
    budget = PendingBudget(100)
    a = ChunkBatcher(budget, max_lines=3, max_bytes=50, interval=1.0)
    b = ChunkBatcher(budget, max_lines=1000, max_bytes=1000, interval=1.0)
    for i in range(3):
        a.add(make_raw_line(i, b"x"), 1)
    assert a.full
    lines, size = a.take()
    assert len(lines) == 3 and size == 3 and not a.lines
    assert budget.used == 3  # released only once the publisher accepted them
    budget.release(size)
    a.add(make_raw_line(0, b"y" * 60), 60)
    assert a.full  # bytes
    b.add(make_raw_line(0, b"z" * 45), 45)
    assert budget.exceeded and b.full  # the shared budget makes every stream with lines flush


async def test_readers_wait_for_room_until_bytes_are_released() -> None:
    budget = PendingBudget(10)
    budget.take(12)
    waiter = asyncio.create_task(budget.wait_for_room())
    await asyncio.sleep(0.01)
    assert not waiter.done()
    budget.release(5)
    await asyncio.wait_for(waiter, 1)


def test_seconds_left_counts_from_the_first_pending_line() -> None:
    batcher = ChunkBatcher(PendingBudget(1000), 10, 1000, interval=5.0)
    assert batcher.seconds_left() is None
    batcher.add(make_raw_line(0, b"a"), 1)
    left = batcher.seconds_left()
    assert left is not None and 4.0 < left <= 5.0
