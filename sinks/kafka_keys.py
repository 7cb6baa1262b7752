"""The partition Kafka's default partitioner gives a record key, computed once per key per batch.

Every client (the Java client, librdkafka's murmur2 partitioner, aiokafka's DefaultPartitioner) sends
a keyed record to `(murmur2(key) & 0x7fffffff) % partition count`, so consumers of the Kafka sink's
topic find a trace's records in the partition any producer would pick. aiokafka's murmur2 is pure
Python, a few microseconds a key, which on a batch of many short traces was a fifth of the sink's CPU;
the hash runs in C (sinks/_kafka_keys.c) when this process runs the C loops (core/native.py), and
aiokafka's is the reference it is tested against.
"""

from __future__ import annotations

from collections.abc import Callable

from aiokafka.partitioner import murmur2 as murmur2_reference

from core.native import native_module


def murmur2() -> Callable[[bytes], int]:
    """Kafka's murmur2 (unsigned 32-bit): the C one when built and not turned off, else aiokafka's."""
    native = native_module("kafka_keys")
    if native is None:
        return murmur2_reference  # type: ignore[no-any-return]
    hash_of: Callable[[bytes], int] = native.murmur2
    return hash_of


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
            partitions = self.partitions
            partition = self._known[key] = partitions[(self._hash(key) & 0x7FFFFFFF) % len(partitions)]
        return partition
