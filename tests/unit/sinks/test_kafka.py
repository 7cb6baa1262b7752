"""How the Kafka sink cuts a trace's lines into records that fit a message."""

from __future__ import annotations

from sinks.base import SinkLine
from sinks.kafka import _fit, position_metadata, recent_marks


def line(n: int, size: int) -> SinkLine:
    return SinkLine(f"l-{n:x}", "t", 0, "info", "svc", b"x" * size, n, 0)


def test_runs_stay_within_the_budget_and_keep_order() -> None:
    lines = [line(n, 99) for n in range(25)]  # 100 bytes each with its newline
    parts = list(_fit(lines, 1000))
    assert [len(p) for p in parts] == [10, 10, 5]
    assert [x.offset for p in parts for x in p] == list(range(25))


def test_a_line_longer_than_the_budget_goes_alone() -> None:
    parts = list(_fit([line(0, 10), line(1, 5000), line(2, 10)], 1000))
    assert [[x.offset for x in p] for p in parts] == [[0], [1], [2]]


def test_marks_keep_the_most_recently_written_streams_within_the_budget() -> None:
    marks = {f"{n:016x}": n for n in range(500)}  # 500 streams: far more than 3500 bytes hold
    written = [SinkLine(f"{n:016x}-{n:x}", "t", 0, "info", "svc", b"{}", 9, i) for i, n in enumerate((7, 3, 499))]
    kept = recent_marks(written, marks, 3500)
    assert len(position_metadata(2, kept)) <= 3500 < len(position_metadata(2, marks))
    assert list(kept)[:3] == [f"{n:016x}" for n in (499, 3, 7)]  # this batch's streams, last written first
    assert list(kept)[3:6] == [f"{n:016x}" for n in (498, 497, 496)]  # then the newest of the rest
    assert all(kept[d] == marks[d] for d in kept)


def test_how_many_stream_marks_fit_is_what_docs_sinks_md_says() -> None:
    """docs/sinks.md: (marks_bytes - 24 - digits(index)) // (20 + digits(position)) streams fit;
    124 with 8-digit positions and 115 with 10-digit ones at the default 3500 bytes."""
    for digits, documented in ((8, 124), (10, 115)):
        marks = {f"{n:016x}": 10 ** (digits - 1) + n for n in range(500)}
        written = [SinkLine(f"{0:016x}-0", "t", 0, "info", "svc", b"{}", 9, 42)]  # index 42: 2 digits
        kept = recent_marks(written, marks, 3500)
        assert len(kept) == documented == (3500 - 24 - 2) // (20 + digits)
        assert len(position_metadata(42, kept)) <= 3500
