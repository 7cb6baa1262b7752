"""How the Kafka sink cuts a trace's lines into records that fit a message."""

from __future__ import annotations

import orjson
import pytest

from sinks.base import SinkLine
from sinks.kafka import _fit, recent_marks
from sinks.kafka_marks import parse_position, position_metadata


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
    assert len(orjson.dumps(kept)) <= 3500 < len(orjson.dumps(marks))
    assert list(kept)[:3] == [f"{n:016x}" for n in (499, 3, 7)]  # this batch's streams, last written first
    assert list(kept)[3:6] == [f"{n:016x}" for n in (498, 497, 496)]  # then the newest of the rest
    assert all(kept[d] == marks[d] for d in kept)


def test_how_many_stream_marks_fit_is_what_docs_sinks_md_says() -> None:
    """docs/sinks.md: (marks_bytes - 1) // (20 + digits(position)) streams fit; with the default
    900,000 bytes, 32,142 streams with 8-digit positions and 29,999 with 10-digit ones."""
    for digits, documented in ((8, 32_142), (10, 29_999)):
        marks = {f"{n:016x}": 10 ** (digits - 1) + n for n in range(40_000)}
        written = [SinkLine(f"{0:016x}-0", "t", 0, "info", "svc", b"{}", 9, 42)]
        kept = recent_marks(written, marks, 900_000)
        assert len(kept) == documented == (900_000 - 1) // (20 + digits)
        assert len(orjson.dumps(kept)) <= 900_000 < len(orjson.dumps(kept)) + 20 + digits


def test_positions_committed_with_marks_inline_by_an_earlier_version_are_still_read() -> None:
    earlier = parse_position(41, '{"index":3,"streams":{"00000000000000aa":17}}')
    assert (earlier.offset, earlier.index, earlier.marks, earlier.marks_at) == (41, 3, {"00000000000000aa": 17}, None)
    now = parse_position(41, position_metadata(3, 1234))
    assert (now.index, now.marks, now.marks_at) == (3, {}, 1234)
    assert parse_position(41, "").index == 1 << 62 and parse_position(-1, None).offset == -1


def test_marks_must_fit_one_message() -> None:
    from core.errors import ConfigError
    from core.settings import load_settings

    assert load_settings(environ={}).sinks.kafka.marks_bytes == 900_000
    with pytest.raises(ConfigError, match=r"sinks\.kafka\.marks_bytes \(999000\) must stay 1 KiB below"):
        load_settings(environ={"LOGWEAVE_SINKS__KAFKA__MARKS_BYTES": "999000"})
