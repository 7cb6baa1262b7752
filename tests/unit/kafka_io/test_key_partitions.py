"""The C murmur2 (kafka_io/_murmur2.c) gives aiokafka's value for every key, so the Kafka sink puts each
record (and the publisher each stream's chunks) in the partition any Kafka client would; `KeyPartitions`
maps keys as aiokafka's DefaultPartitioner.

Differential: generated keys of every length remainder (0-3 bytes past a multiple of 4), with high bytes
(the reference masks each byte; C must not sign-extend), empty and long, against aiokafka's pure-Python
murmur2; and a pinned value from the Java client's tests.
"""

from __future__ import annotations

import pytest
from aiokafka.partitioner import DefaultPartitioner
from aiokafka.partitioner import murmur2 as murmur2_reference
from hypothesis import given, settings
from hypothesis import strategies as st

from core.native import native_module
from kafka_io.key_partitions import KeyPartitions, murmur2

_keys = pytest.importorskip("kafka_io._murmur2", reason="C extension not built (pure-Python install)")


@settings(max_examples=2000, deadline=None)
@given(st.binary(max_size=70))
def test_the_c_hash_is_aiokafkas(key: bytes) -> None:
    assert _keys.murmur2(key) == murmur2_reference(key)


def test_high_bytes_and_every_tail_length() -> None:
    for length in range(0, 13):
        for fill in (b"\x00", b"\x7f", b"\x80", b"\xff"):
            key = fill * length
            assert _keys.murmur2(key) == murmur2_reference(key), (length, fill)


def test_a_value_the_java_client_pins() -> None:
    # org.apache.kafka.common.utils.UtilsTest#testMurmur2: "21" -> -973932308 (as a signed int)
    assert _keys.murmur2(b"21") == -973932308 & 0xFFFFFFFF
    assert murmur2_reference(b"21") == -973932308 & 0xFFFFFFFF


def test_the_hash_refuses_what_is_not_bytes() -> None:
    with pytest.raises(TypeError, match="bytes"):
        _keys.murmur2("21")  # type: ignore[arg-type]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(min_size=1, max_size=40), max_size=30),
       st.lists(st.integers(min_value=0, max_value=200), min_size=1, max_size=12, unique=True))
def test_keys_go_where_aiokafkas_partitioner_sends_them(keys: list[bytes], ids: list[int]) -> None:
    partitions = sorted(ids)
    mapped = KeyPartitions(partitions)
    choose = DefaultPartitioner()
    for key in keys + keys:  # the second time from what it remembered
        assert mapped.of(key) == choose(key, partitions, partitions)


def test_the_process_runs_the_hash_the_switch_says() -> None:
    expected = murmur2_reference if native_module("murmur2") is None else _keys.murmur2
    assert murmur2() is expected
