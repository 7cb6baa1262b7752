"""The partition Kafka's default partitioner gives a record key.

Every client (the Java client, librdkafka's murmur2 partitioner, aiokafka's DefaultPartitioner) sends
a keyed record to `(murmur2(key) & 0x7fffffff) % partition count`, so a consumer finds a key's records
in the partition any producer would pick: the collectors' publisher keys by stream id, the Kafka sink
by trace id. aiokafka's murmur2 is pure Python, a few microseconds a key, which on a Kafka sink batch
of many short traces was a fifth of the sink's CPU; the hash runs in C (kafka_io/_murmur2.c) when this
process runs the C loops (core/native.py), and aiokafka's is the reference it is tested against.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from aiokafka.partitioner import murmur2 as murmur2_reference

from core.native import native_module


def murmur2() -> Callable[[bytes], int]:
    """Kafka's murmur2 (unsigned 32-bit): the C one when built and not turned off, else aiokafka's."""
    native = native_module("murmur2")
    if native is None:
        return murmur2_reference  # type: ignore[no-any-return]
    hash_of: Callable[[bytes], int] = native.murmur2
    return hash_of


def key_partition(key: bytes, partitions: Sequence[int], hash_of: Callable[[bytes], int]) -> int:
    """The partition of `partitions` (sorted ids) a record keyed `key` goes to; `hash_of`: `murmur2()`."""
    return partitions[(hash_of(key) & 0x7FFFFFFF) % len(partitions)]


class KeyPartitions:
    """Each key's partition among `partitions` (sorted ids, as `producer.partitions_for` gives them),
    hashed once per key while this object lives (one batch)."""

    def __init__(self, partitions: list[int]) -> None:
        self.partitions = partitions
        self._hash = murmur2()
        self._known: dict[bytes, int] = {}

    def of(self, key: bytes) -> int:
        partition = self._known.get(key)
        if partition is None:
            partition = self._known[key] = key_partition(key, self.partitions, self._hash)
        return partition
