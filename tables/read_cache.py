"""The trace table's recent values in memory: what RocksDB holds for the keys read or written lately.

A live node's chunks are small (a few lines per stream per collector linger), so the group stage
reads and writes the same few thousand keys (each stream's dedupe mark, each open trace, the stream
clock) many times a second. A RocksDB `get` from Python cost ~11 us each there (2,400 reads/s in the
200 pods x 20 lines/s bench row, about a quarter of the group stage); a dict lookup costs ~0.1 us.

The cache mirrors the store, never leads it: a value enters once RocksDB has it (written by
`_persist`, or read from it), an absent key is remembered as None, and nothing here is durable.
Writes that bypass `_persist` (changelog recovery, standby replication) and partitions that move
away forget the partition. Memory is bounded by `limit_bytes`: past it the whole cache is dropped
and refilled by the next reads, which is cheaper than tracking recency on every read.
"""

from __future__ import annotations

from collections.abc import Iterable

ENTRY_OVERHEAD = 120  # bytes per entry beyond key and value: a dict slot and two bytes objects' headers


class ReadCache:
    """Per-partition dicts of key -> value (None: RocksDB has no such key)."""

    def __init__(self, limit_bytes: int) -> None:
        self.limit_bytes = limit_bytes
        self._values: dict[int, dict[bytes, bytes | None]] = {}
        self._bytes = 0
        self.drops = 0  # times the whole cache was dropped for its size (a too small limit shows here)

    @property
    def size_bytes(self) -> int:
        return self._bytes

    def values(self, partition: int) -> dict[bytes, bytes | None]:
        """The partition's cached values (read-only for callers: fill through `remember`)."""
        values = self._values.get(partition)
        if values is None:
            values = self._values[partition] = {}
        return values

    def remember(self, partition: int, key: bytes, value: bytes | None) -> None:
        """RocksDB now holds `value` for `key` (None: no such key)."""
        values = self.values(partition)
        if key in values:
            old = values[key]
            self._bytes -= len(key) + (len(old) if old is not None else 0) + ENTRY_OVERHEAD
        values[key] = value
        self._bytes += len(key) + (len(value) if value is not None else 0) + ENTRY_OVERHEAD
        if self._bytes > self.limit_bytes:
            self.clear()
            self.drops += 1

    def remember_all(self, partition: int, updates: dict[bytes, bytes | None]) -> None:
        """`remember` each item in order: what a persist wrote (one call per persist, not per key)."""
        values, size, limit = self.values(partition), self._bytes, self.limit_bytes
        for key, value in updates.items():
            if key in values:
                old = values[key]
                size -= len(key) + (len(old) if old is not None else 0) + ENTRY_OVERHEAD
            values[key] = value
            size += len(key) + (len(value) if value is not None else 0) + ENTRY_OVERHEAD
            if size > limit:
                self.clear()
                self.drops += 1
                values, size = self.values(partition), 0
        self._bytes = size

    def forget(self, partitions: Iterable[int]) -> None:
        """Drop what is known of `partitions` (they moved, or their store was written elsewhere)."""
        for partition in partitions:
            values = self._values.pop(partition, None)
            if values:
                self._bytes -= sum(len(k) + len(v or b"") + ENTRY_OVERHEAD for k, v in values.items())

    def clear(self) -> None:
        self._values.clear()
        self._bytes = 0
