"""ReadCache's bookkeeping: values per partition, absent keys, its size bound and forgetting."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from tables.read_cache import ENTRY_OVERHEAD, ReadCache


def test_remembers_values_and_absent_keys_per_partition() -> None:
    cache = ReadCache(1 << 20)
    cache.remember(0, b"k", b"v1")
    cache.remember(0, b"gone", None)
    cache.remember(1, b"k", b"other")
    assert cache.values(0) == {b"k": b"v1", b"gone": None}
    assert cache.values(1) == {b"k": b"other"}
    assert cache.values(2) == {}


def test_size_follows_overwrites_deletes_and_forget() -> None:
    cache = ReadCache(1 << 20)
    cache.remember(0, b"k", b"12345")
    assert cache.size_bytes == 1 + 5 + ENTRY_OVERHEAD
    cache.remember(0, b"k", b"12")  # overwritten: counted once, at its new size
    assert cache.size_bytes == 1 + 2 + ENTRY_OVERHEAD
    cache.remember(0, b"k", None)  # deleted in the store: the key is still remembered, as absent
    assert cache.size_bytes == 1 + ENTRY_OVERHEAD
    cache.remember(1, b"x", b"abc")
    cache.forget([0])
    assert cache.values(0) == {} and cache.size_bytes == 1 + 3 + ENTRY_OVERHEAD
    cache.forget([1, 7])
    assert cache.size_bytes == 0


def test_past_its_limit_the_whole_cache_is_dropped_then_refilled() -> None:
    cache = ReadCache(3 * (2 + 10 + ENTRY_OVERHEAD))
    for i in range(3):
        cache.remember(i % 2, b"k%d" % i, b"x" * 10)
    assert cache.drops == 0 and len(cache.values(0)) + len(cache.values(1)) == 3
    cache.remember(0, b"k3", b"x" * 10)
    assert cache.drops == 1 and cache.values(0) == {} and cache.values(1) == {} and cache.size_bytes == 0
    cache.remember(1, b"k4", b"y")
    assert cache.values(1) == {b"k4": b"y"}


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 40).map(lambda n: n * 40),
       st.lists(st.tuples(st.integers(0, 2), st.dictionaries(st.sampled_from([b"a", b"bb", b"ccc", b"d"]),
                                                            st.none() | st.binary(max_size=30), max_size=4)),
                max_size=12))
def test_remember_all_is_remember_for_each_item_in_order(limit: int, persists: list[tuple[int, Any]]) -> None:
    one_by_one, at_once = ReadCache(limit), ReadCache(limit)
    for partition, updates in persists:
        for key, value in updates.items():
            one_by_one.remember(partition, key, value)
        at_once.remember_all(partition, updates)
        assert [at_once.values(p) for p in range(3)] == [one_by_one.values(p) for p in range(3)]
        assert (at_once.size_bytes, at_once.drops) == (one_by_one.size_bytes, one_by_one.drops)
