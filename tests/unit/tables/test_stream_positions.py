"""Replays are dropped per stream by position, and idle streams' marks expire."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from tables.stream_positions import expired, fresh_lines, fresh_lines_by_line, stream_key


def line(sid: str, pos: int) -> list[object]:
    return [0, sid, pos, 0, "t", "info", "svc", "{}", "stdout"]


def test_lines_at_or_below_the_mark_are_dropped_across_calls() -> None:
    store: dict[bytes, bytes | None] = {}
    updates: dict[bytes, bytes | None] = {}
    first = fresh_lines([line("a", 10), line("b", 5), line("a", 20)], store.get, 100, updates)
    assert [x[2] for x in first] == [10, 5, 20]
    store.update(updates)
    updates = {}
    again = fresh_lines([line("a", 10), line("a", 20), line("a", 30), line("b", 5), line("c", 1)], store.get, 200,
                        updates)
    assert [(x[1], x[2]) for x in again] == [("a", 30), ("c", 1)]
    assert updates[stream_key("a")] == b"30:200" and updates[stream_key("b")] == b"5:200"


def test_marks_of_idle_streams_expire() -> None:
    items = iter([(b"k1", b"5:100"), (b"k2", b"9:1000")])
    assert expired(items, now_s=1100, retention_s=500) == [b"k1"]


def test_single_stream_chunk_checked_against_the_mark_as_a_whole() -> None:
    store = {stream_key("a"): b"20:1"}
    updates: dict[bytes, bytes | None] = {}
    chunk = [line("a", 30), line("a", 40)]
    assert fresh_lines(chunk, store.get, 5, updates) is chunk
    assert updates == {stream_key("a"): b"40:5"}
    updates = {}
    partly_seen = [line("a", 20), line("a", 25)]  # starts at the mark: the per-line path decides
    assert [x[2] for x in fresh_lines(partly_seen, store.get, 6, updates)] == [25]


def test_out_of_order_single_stream_chunk_takes_the_per_line_path() -> None:
    updates: dict[bytes, bytes | None] = {}
    fresh = fresh_lines([line("a", 30), line("a", 10), line("a", 30)], {}.get, 5, updates)
    assert [x[2] for x in fresh] == [30]


chunk_lines = st.lists(st.tuples(st.sampled_from("abc"), st.integers(0, 12)), max_size=30)
stored_marks = st.dictionaries(st.sampled_from("abcd"), st.integers(-1, 12), max_size=4)


@given(chunk_lines, stored_marks)
def test_fresh_lines_matches_the_line_by_line_rule(pairs: list[tuple[str, int]], stored: dict[str, int]) -> None:
    """Single-stream chunks (checked as a whole) and mixed ones (line by line), repeated and interleaved
    streams, marks above, at and below the chunk's positions: the same lines (the same objects, in
    order) and marks as the rule applied line by line (`fresh_lines_by_line`)."""
    lines = [line(sid, position) for sid, position in pairs]
    store = {stream_key(sid): b"%d:7" % mark for sid, mark in stored.items()}
    updates: dict[bytes, bytes | None] = {}
    expected_updates: dict[bytes, bytes | None] = {}
    fresh = fresh_lines(lines, store.get, 9, updates)
    expected = fresh_lines_by_line(lines, store.get, 9, expected_updates)
    assert [id(item) for item in fresh] == [id(item) for item in expected]
    assert updates == expected_updates
