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
    table.cache = ReadCache(1 << 20)
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
