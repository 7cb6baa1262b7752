"""The C per-stream marks check (sinks/_marks.c) answers as the Python reference `unseen_reference` does.

Differential: generated batches of lines whose ids are Logweave's (`<digest>-<hex>`) or not (no dash, an
empty digest, non-hex or `int()`-only spellings such as `0x1f`, `1_f` or ` 1f`, long positions, non-ASCII
text), ordered or not, repeated and out of order, against generated starting marks: the same lines kept,
in the same order, and the same marks after.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.native import native_module
from sinks.base import SinkLine
from sinks.stream_marks import unseen, unseen_reference

_marks = pytest.importorskip("sinks._marks", reason="C extension not built (pure-Python install)")
if native_module("stream_marks") is None:
    pytest.skip("the C loops are off in this process (LOGWEAVE_PURE=1)", allow_module_level=True)

DIGESTS = st.sampled_from(["a1b2c3d4e5f60718", "ffff0000ffff0000", "s", "dé", "x-y", ""])
HEX = st.one_of(st.integers(min_value=0, max_value=(1 << 70)).map(lambda n: f"{n:x}"),
                st.integers(min_value=0, max_value=300).map(lambda n: f"{n:X}"),
                st.sampled_from(["", "0x1f", "1_f", " 1f", "+5", "g", "٣", "ff ", "0" * 20 + "1"]))
IDS = st.one_of(st.tuples(DIGESTS, HEX).map(lambda p: f"{p[0]}-{p[1]}"), st.text(max_size=8))
LINES = st.lists(st.tuples(IDS, st.booleans()), max_size=40)
MARKS = st.dictionaries(DIGESTS, st.integers(min_value=-1, max_value=1 << 66), max_size=4)


def lines_of(ids: list[tuple[str, bool]]) -> list[SinkLine]:
    return [SinkLine(lid, "t", 0, "info", "svc", b"{}", n, 0, ordered) for n, (lid, ordered) in enumerate(ids)]


@settings(max_examples=600, deadline=None)
@given(LINES, MARKS)
def test_the_c_loop_keeps_the_lines_and_marks_the_reference_keeps(ids: list[tuple[str, bool]],
                                                                   marks: dict[str, int]) -> None:
    lines = lines_of(ids)
    c_marks, python_marks = dict(marks), dict(marks)
    assert _marks.unseen(lines, c_marks) == unseen_reference(lines, python_marks)
    assert c_marks == python_marks


def test_unseen_runs_the_c_loop_here_and_repeats_are_skipped() -> None:
    stream = "a1b2c3d4e5f60718"
    lines = lines_of([(f"{stream}-{n:x}", True) for n in (1, 2, 3, 2, 3, 4)])
    marks: dict[str, int] = {}
    assert [x.offset for x in unseen(lines, marks)] == [0, 1, 2, 5] and marks == {stream: 4}
    assert unseen(lines, marks) == [] and marks == {stream: 4}


def test_a_line_id_that_is_not_a_string_is_an_error_in_both() -> None:
    line = SinkLine(5, "t", 0, "info", "svc", b"{}", 0, 0)  # type: ignore[arg-type]
    with pytest.raises(AttributeError):
        unseen_reference([line], {})
    with pytest.raises(AttributeError):
        _marks.unseen([line], {})
