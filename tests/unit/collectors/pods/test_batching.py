"""Chunk batching under a byte budget shared by every stream."""

from __future__ import annotations

import asyncio
import time

import orjson
import pytest

from collectors.pods.batching import ChunkBatcher, PendingBudget, next_tick
from core.models import make_raw_line, wire_lines


def test_full_by_lines_bytes_or_shared_budget() -> None:
    budget = PendingBudget(100)
    a = ChunkBatcher(budget, max_lines=3, max_bytes=50, interval=1.0)
    b = ChunkBatcher(budget, max_lines=1000, max_bytes=1000, interval=1.0)
    for i in range(3):
        a.add(make_raw_line(i, b"x"), 1)
    assert a.full
    lines, _, count, size, last = a.take()
    assert len(lines) == count == 3 and size == 3 and last == (2, 0) and not a.pending
    assert budget.used == 3  # released only once the publisher accepted them
    budget.release(size)
    a.add(make_raw_line(0, b"y" * 60), 60)
    assert a.full  # bytes
    a.take()  # waiting for the publisher: counted in `used`, no longer held by a stream
    b.add(make_raw_line(0, b"z" * 45), 45)
    assert budget.exceeded and b.full  # the only stream holding lines holds all of them: it flushes


def test_a_spent_budget_makes_the_streams_holding_their_share_flush() -> None:
    """Not every stream with lines: each read would become a chunk of its own while the budget stays spent."""
    budget = PendingBudget(100)
    big, small, empty = (ChunkBatcher(budget, max_lines=1000, max_bytes=1000, interval=1.0) for _ in range(3))
    big.add(make_raw_line(0, b"x" * 70), 70)
    small.add(make_raw_line(0, b"y" * 40), 40)
    assert budget.exceeded and (budget.holders, budget.held) == (2, 110)
    assert big.full and not small.full and not empty.full
    taken, _, _, size, _ = big.take()  # handed to the publisher: still counted in `used` until it accepted them
    assert (budget.holders, budget.held, budget.used) == (1, 40, 110)
    assert len(taken) == 1 and size == 70
    assert small.full  # now the only one holding lines
    budget.release(size)
    assert not budget.exceeded and not small.full
    small.take()
    assert (budget.holders, budget.held) == (0, 0) and not small.take().line_count


async def test_readers_wait_for_room_until_bytes_are_released() -> None:
    budget = PendingBudget(10)
    budget.take(12)
    waiter = asyncio.create_task(budget.wait_for_room())
    await asyncio.sleep(0.01)
    assert not waiter.done()
    budget.release(5)
    await asyncio.wait_for(waiter, 1)


def test_pending_lines_are_due_at_the_next_tick_every_stream_shares() -> None:
    budget = PendingBudget(1000)
    first, second = ChunkBatcher(budget, 10, 1000, interval=5.0), ChunkBatcher(budget, 10, 1000, interval=5.0)
    assert first.seconds_left() is None
    now = time.monotonic()
    first.add(make_raw_line(0, b"a"), 1)
    left = first.seconds_left()
    assert left is not None and 0.0 <= left <= 5.0
    tick = next_tick(now, 5.0)
    assert tick % 5.0 == 0.0 and now < tick <= now + 5.0
    assert abs((time.monotonic() + left) - tick) < 0.5  # due at the tick, not 5 s after its first line
    first.add(make_raw_line(1, b"b"), 1)  # a later line does not put it off
    later = first.seconds_left()
    assert later is not None and later <= left
    if tick - time.monotonic() > 0.5:  # the second stream's first line comes within the same tick
        second.add(make_raw_line(0, b"c"), 1)
        due_second = second.seconds_left()
        assert due_second is not None and abs(due_second - later) < 0.1  # both flush together
    first.take()
    assert first.seconds_left() is None


def test_next_tick_is_the_first_multiple_of_the_interval_after_now() -> None:
    assert next_tick(10.05, 0.2) == pytest.approx(10.2)
    assert next_tick(10.19, 0.2) == pytest.approx(10.2)
    assert next_tick(10.21, 0.2) == pytest.approx(10.4)
    assert next_tick(7.0, 0.0) == 7.0  # no interval: due at once


def test_due_by_brings_pending_lines_due_earlier_never_later() -> None:
    batcher = ChunkBatcher(PendingBudget(1000), 10, 1000, interval=5.0)
    batcher.due_by(time.monotonic())  # nothing pending: nothing to bring forward
    assert batcher.seconds_left() is None
    batcher.add(make_raw_line(0, b"a"), 1)
    left = batcher.seconds_left()
    assert left is not None and left > 0
    batcher.due_by(time.monotonic() + left + 3.0)  # later than its tick: ignored
    after = batcher.seconds_left()
    assert after is not None and after <= left
    batcher.due_by(time.monotonic() - 1.0)  # the tick a paced wait ended at: due now
    assert batcher.seconds_left() == 0.0


def test_lines_in_their_wire_encoding_and_entries_make_one_encoded_chunk_in_order() -> None:
    """Once a block comes encoded (the C scan's), entries before and after it are encoded too: the chunk is
    one WireLines, in the order the lines came, with their count, size and the last line's place."""
    budget = PendingBudget(1000)
    batcher = ChunkBatcher(budget, 100, 1000, interval=5.0)
    first, middle, last = [make_raw_line(1, b"a", "", 10)], [make_raw_line(2, b"b", "", 20)], \
        [make_raw_line(3, b"c", "", 30)]
    batcher.extend(first, 1)
    batcher.extend_wire(wire_lines(middle), 1, (2, 20))
    batcher.extend(last, 1)
    assert batcher.entries() == first + middle + last and batcher.last == (3, 30)
    pending = batcher.take()
    assert not pending.lines and pending.wire is not None and (pending.line_count, pending.size) == (3, 3)
    assert orjson.loads(b"[%s]" % b",".join(pending.wire.pieces)) == first + middle + last
    assert (budget.holders, budget.held, budget.used) == (0, 0, 3) and not batcher.pending
