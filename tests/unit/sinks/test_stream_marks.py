"""Per-stream marks: ordered lines at or below a mark are skipped; unordered chunks bypass them."""

from __future__ import annotations

from sinks.base import SinkLine
from sinks.stream_marks import stream_position, unseen


def line(stream: str, pos: int, ordered: bool = True) -> SinkLine:
    return SinkLine(f"{stream}-{pos:x}", "t", 0, "info", "svc", b"{}", 0, 0, ordered)


def test_marks_skip_replays_per_stream() -> None:
    marks: dict[str, int] = {}
    assert [stream_position(x) for x in unseen([line("a", 5), line("b", 1), line("a", 9)], marks)] == [
        ("a", 5), ("b", 1), ("a", 9)]
    assert [stream_position(x) for x in unseen([line("a", 9), line("a", 10), line("b", 1)], marks)] == [("a", 10)]
    assert marks == {"a": 10, "b": 1}


def test_unordered_lines_are_written_and_leave_marks_alone() -> None:
    marks = {"a": 10}
    out = unseen([line("a", 3, ordered=False), line("a", 11)], marks)
    assert [stream_position(x) for x in out] == [("a", 3), ("a", 11)] and marks == {"a": 11}
