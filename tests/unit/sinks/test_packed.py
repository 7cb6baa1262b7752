"""The appending sinks' line selection on packed records: the C walk (sinks/_segment.c) is the Python reference's.

Differential: the same packed record, position and marks go through `select_lines` in C and through
`select_lines_reference`; the kept bytes, the count, the first and last index and the marks afterwards must be
equal, or both must raise ValueError (a table that does not match its documents). Generated records
mix streams, positions going back (an upstream re-send), unordered records and line ids that are not
Logweave's.
"""

from __future__ import annotations

import struct
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sinks.base import SinkLine
from sinks.packed import (
    INT64_MAX,
    INT64_MIN,
    PACK_ENTRY,
    TIME,
    PackedRecord,
    native_select,
    native_times_within,
    pack_sink_lines,
    select_lines_reference,
    times_within,
    times_within_reference,
)

NATIVE = native_select()
NATIVE_TIMES = native_times_within()
needs_c = pytest.mark.skipif(NATIVE is None, reason="C extension not built or LOGWEAVE_PURE=1")


def record(entries: list[tuple[str, int]], offset: int = 7, ordered: bool = True, first_index: int = 0) -> PackedRecord:
    """A packed record of lines (stream digest or "" for a foreign id, position)."""
    lines = [SinkLine(f"{digest}-{position:x}" if digest else f"foreign{i}", "t", 0, "info", "svc", b'{"i":%d}' % i,
                      offset, first_index + i, ordered) for i, (digest, position) in enumerate(entries)]
    return pack_sink_lines(lines)[0]


def both(packed: PackedRecord, after: tuple[int, int], marks: dict[str, int]) -> tuple[Any, Any]:
    def run(select: Any) -> Any:
        mine = dict(marks)
        try:
            if select is None:
                found = select_lines_reference(packed, after, mine)
            else:
                found = select(packed.documents, packed.table, packed.streams, mine, packed.ordered, packed.offset,
                               packed.first_index, after[0], after[1])
        except ValueError as exc:
            return "ValueError", str(exc)
        return found, mine

    return run(NATIVE), run(None)


def test_the_reference_keeps_lines_after_the_position_and_above_their_marks() -> None:
    packed = record([("aa", 1), ("bb", 5), ("aa", 2), ("", 0), ("aa", 9)], offset=7)
    marks = {"aa": 1, "bb": 9}
    data, count, first, last = select_lines_reference(packed, (7, 0), marks)
    # index 0: at the position; index 1: bb 5 <= 9; index 2: aa 2 > 1; index 3: a foreign id; index 4: aa 9
    assert (data, count, first, last) == (b'{"i":2}\n{"i":3}\n{"i":4}\n', 3, 2, 4)
    assert marks == {"aa": 9, "bb": 9}


def test_a_record_kept_whole_is_its_own_buffer() -> None:
    packed = record([("aa", 1), ("bb", 2)])
    for select in (NATIVE, None):
        if select is None:
            data, count, _, _ = select_lines_reference(packed, (-1, -1), {})
        else:
            found = select(packed.documents, packed.table, packed.streams, {}, True, 7, 0, -1, -1)
            assert found is not None
            data, count, _, _ = found
        assert data is packed.documents and count == 2


@needs_c
@pytest.mark.parametrize("after", [(-1, -1), (6, 99), (7, -1), (7, 0), (7, 2), (7, 4), (8, 0)])
@pytest.mark.parametrize("ordered", [True, False])
def test_positions_and_marks_are_applied_like_the_reference(after: tuple[int, int], ordered: bool) -> None:
    packed = record([("aa", 1), ("bb", 5), ("aa", 2), ("", 0), ("aa", 9)], ordered=ordered)
    for marks in ({}, {"aa": 1, "bb": 9}, {"aa": 100}, {"cc": 3}):
        fast, ref = both(packed, after, marks)
        assert fast == ref


@needs_c
def test_a_mark_the_c_walk_cannot_hold_goes_to_the_reference() -> None:
    packed = record([("aa", 1), ("bb", 5)])
    assert NATIVE is not None
    for mark in (1 << 70, "3", 2.0, True):
        marks: dict[str, Any] = {"aa": mark}
        assert NATIVE(packed.documents, packed.table, packed.streams, marks, True, 7, 0, -1, -1) is None
        assert marks == {"aa": mark}  # untouched: the reference decides (or raises) alone


@needs_c
@pytest.mark.parametrize("table", [b"\x00" * 23, PACK_ENTRY.pack(3, 0, 0), PACK_ENTRY.pack(0, 0, 0),
                                   PACK_ENTRY.pack(8, 0, 1), PACK_ENTRY.pack(8, 0, -2), PACK_ENTRY.pack(99, 0, 0),
                                   PACK_ENTRY.pack(4, 0, 0) + PACK_ENTRY.pack(8, 0, 0)])
def test_a_table_that_does_not_match_its_documents_is_refused_alike(table: bytes) -> None:
    packed = PackedRecord(7, b'{"i":1}\n', table, ["aa"])
    fast, ref = both(packed, (-1, -1), {})
    assert fast == ref and fast[0] == "ValueError"


@needs_c
@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["", "aa", "bb", "cc"]), st.integers(0, 12)), max_size=12),
       st.dictionaries(st.sampled_from(["aa", "bb", "dd"]), st.integers(-3, 12), max_size=3),
       st.integers(5, 9), st.integers(-1, 13), st.booleans(), st.integers(0, 3))
def test_generated_records_are_selected_like_the_reference(entries: list[tuple[str, int]], marks: dict[str, int],
                                                           after_offset: int, after_index: int, ordered: bool,
                                                           first_index: int) -> None:
    packed = record(entries, ordered=ordered, first_index=first_index) if entries else PackedRecord(7, b"", b"")
    fast, ref = both(packed, (after_offset, after_index), marks)
    assert fast == ref


@needs_c
@settings(max_examples=300, deadline=None)
@given(st.lists(st.integers(INT64_MIN, INT64_MAX), max_size=9), st.integers(INT64_MIN, INT64_MAX),
       st.integers(INT64_MIN, INT64_MAX))
def test_event_times_are_bounded_like_the_reference(times: list[int], low: int, high: int) -> None:
    packed = struct.pack(f"={len(times)}q", *times)
    assert NATIVE_TIMES is not None
    assert NATIVE_TIMES(packed, low, high) == times_within_reference(packed, low, high)
    assert times_within(packed, low, high, None) == all(low <= when <= high for when in times)


@pytest.mark.parametrize("native", [NATIVE_TIMES, None])
def test_packed_times_that_are_not_whole_int64_are_refused(native: Any) -> None:
    with pytest.raises(ValueError, match="whole int64"):
        times_within(b"\x00" * 9, 0, 1, native)


def test_event_times_beyond_int64_are_packed_at_its_bounds() -> None:
    times = [-(1 << 70), 5, 1 << 70]
    lines = [SinkLine(f"aa-{i:x}", "t", when, "info", "svc", b"{}", 7, i) for i, when in enumerate(times)]
    assert [when for (when,) in TIME.iter_unpack(pack_sink_lines(lines)[0].times)] == [INT64_MIN, 5, INT64_MAX]
