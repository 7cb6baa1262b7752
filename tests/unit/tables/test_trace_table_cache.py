"""TraceWindowTable reads through its ReadCache over a real RocksDB: the cache mirrors what the store
holds after `_persist`, and forgets a partition written past it (changelog recovery) or moved away.

The table is built without a faust App (object.__new__), on RocksDB databases opened with faust's
options as the worker opens them; the changelog send is replaced by a list.
"""

from __future__ import annotations

from collections import defaultdict, deque
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

from faust.stores.rocksdb import RocksDBOptions

from tables import changelog_frames
from tables.read_cache import ReadCache
from tables.trace_table import CHANGELOG_KEY, TraceWindowTable


def table_on(tmp_path: Path) -> tuple[TraceWindowTable, dict[int, Any], list[Any]]:
    table = object.__new__(TraceWindowTable)
    table._staged = defaultdict(dict)
    table._pending = defaultdict(deque)
    table._ready = {}
    table.cache = ReadCache(1 << 20)
    table.compress = lambda data: data
    table.deadline_indexes = {}
    table.tail_checked = set()
    table.fenced, table.fence_listeners = False, []
    table.rebalance_unhandled = lambda: False
    options = RocksDBOptions(block_cache_size=1 << 20, write_buffer_size=1 << 20)
    dbs = {p: options.open(tmp_path / f"p{p}.db") for p in (0, 1)}
    table.db = lambda partition: dbs[partition]  # type: ignore[method-assign]
    sent: list[Any] = []
    table.send_changelog = lambda partition, key, value, **kw: sent.append((partition, value))  # type: ignore[method-assign,assignment,func-returns-value]
    offsets: list[Any] = []
    table._data = cast(Any, SimpleNamespace(set_persisted_offset=lambda tp, offset: offsets.append((tp, offset))))
    return table, dbs, sent


def test_persisted_values_are_read_from_memory_and_match_the_store(tmp_path: Path) -> None:
    table, dbs, sent = table_on(tmp_path)
    assert table.read(0, b"trace-a") is None  # absent in the store: remembered as absent
    table._persist(0, {b"trace-a": b"state 1", b"\x00sS1": b"5:100"})
    assert dbs[0][b"trace-a"] == b"state 1" and len(sent) == 1
    dbs[0][b"trace-a"] = b"written behind the table's back"  # only recovery does this; see below
    assert table.read(0, b"trace-a") == b"state 1"  # served from memory: no RocksDB read
    assert table.read(0, b"\x00sS1") == b"5:100"
    table._persist(0, {b"trace-a": None})  # closed: deleted in the store and known absent
    assert table.read(0, b"trace-a") is None and dbs[0].get(b"trace-a") is None
    assert table.read(1, b"trace-a") is None  # partitions apart


def test_a_value_first_read_from_the_store_is_kept(tmp_path: Path) -> None:
    table, dbs, _ = table_on(tmp_path)
    dbs[1][b"trace-b"] = b"restored state"
    assert table.read(1, b"trace-b") == b"restored state"
    assert table.cache.values(1) == {b"trace-b": b"restored state"}


def test_changelog_recovery_and_revocation_forget_the_partition(tmp_path: Path) -> None:
    table, dbs, _ = table_on(tmp_path)
    table._persist(0, {b"trace-a": b"old"})
    table._persist(1, {b"trace-c": b"kept"})
    frame = changelog_frames.pack({b"trace-a": b"recovered"})
    event = SimpleNamespace(message=SimpleNamespace(tp=("changelog", 0), offset=7, partition=0, key=CHANGELOG_KEY,
                                                    value=frame))
    table.apply_changelog_batch([cast(Any, event)])
    assert table.read(0, b"trace-a") == b"recovered"
    assert table.cache.values(1) == {b"trace-c": b"kept"}  # another partition's values stay
    dbs[1][b"trace-c"] = b"changed while elsewhere"
    table.forget_staged([1])
    assert table.read(1, b"trace-c") == b"changed while elsewhere"


def test_staged_writes_still_come_first(tmp_path: Path) -> None:
    table, _, _ = table_on(tmp_path)
    table._persist(0, {b"trace-a": b"persisted"})
    table._staged[0][b"trace-a"] = b"staged, not yet acked"
    assert table.read(0, b"trace-a") == b"staged, not yet acked"


def test_closing_reads_take_staged_cached_then_stored_values_and_remember_none(tmp_path: Path) -> None:
    table, dbs, _ = table_on(tmp_path)
    table._persist(0, {b"cached": b"in memory"})
    dbs[0][b"cached"] = b"behind the cache"  # the cache answers first: no RocksDB read for it
    dbs[0][b"stored-1"], dbs[0][b"stored-2"] = b"from disk 1", b"from disk 2"
    dbs[0][b"staged"] = b"older on disk"
    table._staged[0][b"staged"] = b"staged now"
    keys = [b"stored-2", b"staged", b"absent", b"cached", b"stored-1"]
    assert table.read_closing(0, keys) == [b"from disk 2", b"staged now", None, b"in memory", b"from disk 1"]
    assert table.cache.values(0) == {b"cached": b"in memory"}  # the closes' deletes follow: nothing remembered
    assert table.read_closing(1, []) == []
