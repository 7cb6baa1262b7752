"""The ack gate of TraceWindowTable: updates persist in order once their outputs are acked, and
input acks (`after_persisted`) wait for them.

The table is built without a faust App (object.__new__) and its RocksDB/changelog write is replaced
by a list, so only the ordering logic runs here; tests/integration/worker runs it on a real worker.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict, deque
from typing import Any

from tables.read_cache import ReadCache
from tables.trace_table import TraceWindowTable


def gate() -> tuple[TraceWindowTable, list[dict[bytes, bytes | None]]]:
    table = object.__new__(TraceWindowTable)
    table._staged = defaultdict(dict)
    table._pending = defaultdict(deque)
    table._ready = {}
    table.cache = ReadCache(1 << 20)
    table.deadline_indexes, table.tail_checked = {}, set()
    table.fenced, table.fence_listeners = False, []
    table.rebalance_unhandled = lambda: False
    persisted: list[dict[bytes, bytes | None]] = []
    table._persist = lambda partition, updates: persisted.append(dict(updates))  # type: ignore[method-assign]
    return table, persisted


async def test_updates_persist_in_order_after_acks_and_input_acks_wait() -> None:
    table, persisted = gate()
    loop = asyncio.get_running_loop()
    first: asyncio.Future[Any] = loop.create_future()
    second: asyncio.Future[Any] = loop.create_future()
    acked: list[str] = []
    table.commit_when_acked(0, {b"a": b"1"}, [first])
    table.after_persisted(0, lambda: acked.append("chunk 1"))
    table.commit_when_acked(0, {b"b": b"2"}, [second], finalize=lambda: {b"\x00closed_upto": b"9"})
    table.after_persisted(0, lambda: acked.append("chunk 2"))
    assert table.read(0, b"b") == b"2" and persisted == [] and acked == []  # staged: visible, not durable
    second.set_result(None)
    await asyncio.sleep(0)
    assert persisted == [] and acked == []  # the second waits for the first
    first.set_result(None)
    await asyncio.sleep(0)
    assert persisted == [{b"a": b"1"}, {b"b": b"2", b"\x00closed_upto": b"9"}]
    assert acked == ["chunk 1", "chunk 2"]
    table.after_persisted(0, lambda: acked.append("chunk 3, nothing pending"))
    assert acked[-1] == "chunk 3, nothing pending"


async def test_a_failed_output_keeps_the_update_and_its_input_unacked() -> None:
    table, persisted = gate()
    failed: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    acked: list[str] = []
    table.commit_when_acked(1, {b"t": b"x"}, [failed])
    table.after_persisted(1, lambda: acked.append("chunk"))
    failed.set_exception(RuntimeError("broker gone"))
    await asyncio.sleep(0)
    assert persisted == [] and acked == []  # re-processed after a restart instead


async def test_acked_updates_wait_for_the_cadence_and_persist_as_one() -> None:
    table, persisted = gate()
    table.persist_interval = 0.05
    loop = asyncio.get_running_loop()
    outputs = [loop.create_future() for _ in range(3)]
    acked: list[str] = []
    for n, fut in enumerate(outputs):
        table.commit_when_acked(0, {b"\x00s1": b"%d:1" % n, b"t%d" % n: b"x"}, [fut])
        table.after_persisted(0, lambda n=n: acked.append(f"chunk {n}"))
        fut.set_result(None)
        await asyncio.sleep(0)
    assert persisted == [] and acked == []  # acked outputs, not yet persisted: inputs wait
    table.after_persisted(0, lambda: acked.append("nothing pending, one waiting"))
    assert acked == [] and table.read(0, b"\x00s1") == b"2:1"
    await asyncio.sleep(0.1)
    assert persisted == [{b"\x00s1": b"2:1", b"t0": b"x", b"t1": b"x", b"t2": b"x"}]  # each key once, the latest
    assert acked == ["chunk 0", "chunk 1", "chunk 2", "nothing pending, one waiting"]


async def test_an_update_waits_behind_an_unacked_one_and_large_updates_persist_at_once() -> None:
    table, persisted = gate()
    table.persist_interval, table.persist_bytes = 10.0, 100
    loop = asyncio.get_running_loop()
    first, second = loop.create_future(), loop.create_future()
    table.commit_when_acked(0, {b"a": b"1"}, [first])
    table.commit_when_acked(0, {b"b": b"x" * 200}, [second])
    second.set_result(None)
    await asyncio.sleep(0)
    assert persisted == []  # in order: the second waits for the first
    first.set_result(None)
    await asyncio.sleep(0)
    # the first waited for company; the second took the merged record past the bound: out at once
    assert persisted == [{b"a": b"1", b"b": b"x" * 200}]


async def test_the_bound_counts_the_record_the_persist_writes_each_key_once() -> None:
    table, persisted = gate()
    table.persist_interval, table.persist_bytes = 10.0, 300
    for n in range(5):  # the same trace rewritten: 5 x 100 bytes merged, one 100-byte value written
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        table.commit_when_acked(0, {b"t": bytes([n]) * 100}, [fut])
        fut.set_result(None)
        await asyncio.sleep(0)
    assert persisted == []
    table.flush_all_ready()
    assert persisted == [{b"t": bytes([4]) * 100}]


async def test_a_revoke_drops_what_is_not_persisted_and_nothing_is_written_or_acked_until_the_assignment() -> None:
    """The old owner writes nothing after a revoke began: its late write would land after the new
    owner restored the partition, and the next restore would mix two histories (tests/e2e/test_scale_out.py
    saw summaries count 3 and 7 of 5 lines). Its inputs stay unacked, for the next owner to read again."""
    table, persisted = gate()
    table.persist_interval = 0.05
    loop = asyncio.get_running_loop()
    acked: list[str] = []
    let_go: list[str] = []
    told: list[str] = []
    table.fence_listeners.append(lambda: told.append("fenced"))

    class InputAcks:  # like agents/group.py's: acks once persisted, lets its inputs go when dropped
        def __init__(self, name: str) -> None:
            self.name = name

        def __call__(self) -> None:
            acked.append(self.name)

        def dropped(self) -> None:
            let_go.append(self.name)

    waiting_for_persist, waiting_for_ack = loop.create_future(), loop.create_future()
    table.commit_when_acked(0, {b"a": b"0"}, [waiting_for_persist])
    table.after_persisted(0, InputAcks("p0"))
    table.commit_when_acked(1, {b"b": b"1"}, [waiting_for_ack])
    table.after_persisted(1, InputAcks("p1"))
    waiting_for_persist.set_result(None)  # p0's update is acked and waits for the persist interval
    await asyncio.sleep(0)
    assert table.partitions_unpersisted() == {0, 1}

    table.fence({0, 1})
    assert told == ["fenced"] and table.partitions_unpersisted() == set()
    assert sorted(let_go) == ["p0", "p1"]  # faust's revoke waits for every input a stream took: not for these
    waiting_for_ack.set_result(None)  # p1's output is acked after the revoke
    late = loop.create_future()
    table.commit_when_acked(0, {b"a": b"late"}, [late])  # a record applied after the revoke began
    table.after_persisted(0, InputAcks("late"))
    late.set_result(None)
    await asyncio.sleep(0.15)
    table.flush_all_ready()
    assert persisted == [] and acked == [] and let_go[2:] == ["late"]
    assert table.partitions_unpersisted() == set()

    table.unfence()  # the assignment: records of the new generation are applied and persisted as before
    fut = loop.create_future()
    table.commit_when_acked(0, {b"a": b"new"}, [fut])
    table.after_persisted(0, lambda: acked.append("new"))
    fut.set_result(None)
    await asyncio.sleep(0.15)
    assert persisted == [{b"a": b"new"}] and acked == ["new"]


async def test_a_persist_the_consumer_threads_rebalance_overtook_waits_for_the_fence() -> None:
    """The consumer thread starts a rebalance before the revoke reaches the event loop: a persist due in
    that moment waits; the fence then drops it. Had the rebalance already been handled, it goes ahead."""
    table, persisted = gate()
    table.persist_interval = 0.02
    unhandled = [True]
    table.rebalance_unhandled = lambda: unhandled[0]
    loop = asyncio.get_running_loop()
    acked: list[int] = []
    for partition in (0, 1):
        fut = loop.create_future()
        table.commit_when_acked(partition, {b"k": b"%d" % partition}, [fut])
        table.after_persisted(partition, lambda p=partition: acked.append(p))
        fut.set_result(None)
    await asyncio.sleep(0.1)  # several persist intervals: each due persist waited
    assert persisted == [] and acked == [] and table.partitions_unpersisted() == {0, 1}

    table.fence({1})  # partition 1 revoked; 0 stays (unfenced below, as an assignment would)
    table.unfence()
    unhandled[0] = False
    await asyncio.sleep(0.1)
    assert persisted == [{b"k": b"0"}] and acked == [0]
