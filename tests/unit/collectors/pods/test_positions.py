"""StreamCursor: positions from timestamps, reproducible on resume, duplicates dropped."""

from __future__ import annotations

from collectors.pods.positions import StreamCursor
from collectors.pods.timestamps import TimestampParser

BASE = 1_780_000_000_123_456_000  # ns, on a microsecond


def test_positions_are_microseconds_times_1000_plus_index() -> None:
    cursor = StreamCursor()
    stamps = [BASE, BASE + 1, BASE + 999, BASE + 1000, BASE + 5000]
    assert [cursor.accept(ts) for ts in stamps] == [
        BASE, BASE + 1, BASE + 2, BASE + 1000, BASE + 5000]
    assert cursor.last_ts_ns == BASE + 5000


def test_resume_replays_the_last_microsecond_and_drops_what_was_published() -> None:
    stamps = [BASE, BASE + 10, BASE + 1000, BASE + 1001, BASE + 1002, BASE + 2000, BASE + 2001]
    full = StreamCursor()
    expected = [full.accept(ts) for ts in stamps]
    cursor = StreamCursor()
    published = [cursor.accept(ts) for ts in stamps[:4]]  # stream breaks after the 2nd line of a microsecond
    since = cursor.since_time()
    assert since == "2026-05-28T20:26:40.123457Z"  # floored to the microsecond of the last line
    since_ns = TimestampParser().parse(since.encode())
    cursor.begin_connection()
    replay = [ts for ts in stamps if ts >= since_ns]  # what a server returns for sinceTime
    resumed = [cursor.accept(ts) for ts in replay]
    assert resumed[:2] == [None, None]  # same timestamp and position as already published
    assert published + [p for p in resumed if p is not None] == expected


def test_resume_from_the_start_of_the_second_like_a_real_api_server() -> None:
    stamps = [BASE + i * 250 for i in range(20)]
    cursor = StreamCursor()
    first = [cursor.accept(ts) for ts in stamps[:13]]
    cursor.begin_connection()
    again = [cursor.accept(ts) for ts in stamps]  # sinceTime truncated to the second: everything again
    assert again[:13] == [None] * 13
    reference = StreamCursor()
    assert first + again[13:] == [reference.accept(ts) for ts in stamps]


def test_timestamps_going_backwards_still_increase_positions() -> None:
    cursor = StreamCursor()
    a = cursor.accept(BASE + 5000)
    b = cursor.accept(BASE)
    assert a is not None and b is not None and b > a


def test_more_than_1000_lines_in_a_microsecond_stay_strictly_increasing() -> None:
    cursor = StreamCursor()
    positions = [cursor.accept(BASE) for _ in range(1500)]
    assert positions == sorted(set(p for p in positions if p is not None)) and None not in positions


def test_skip_before_drops_lines_logged_while_out_of_scope() -> None:
    cursor = StreamCursor()
    cursor.skip_before_ns = BASE + 1000
    assert cursor.accept(BASE) is None
    assert cursor.accept(BASE + 1000) == BASE + 1000
    fresh = StreamCursor()
    fresh.skip_before_ns = BASE
    assert fresh.since_time() == "2026-05-28T20:26:40.123456Z"
    assert StreamCursor().since_time() is None


def test_a_failed_chunk_rewinds_to_the_last_acknowledged_line() -> None:
    cursor = StreamCursor()
    positions = [cursor.accept(ts) for ts in (1_000, 2_000, 3_000, 4_000)]
    assert cursor.acknowledge(0, 2_000, positions[1])
    assert cursor.rewind(0) and cursor.epoch == 1
    assert (cursor.last_ts_ns, cursor.last_position) == (2_000, positions[1])
    assert not cursor.acknowledge(0, 4_000, positions[3]), "an ack of a chunk sent before the rewind counts"
    assert not cursor.rewind(0), "a second failure of the same epoch rewinds twice"
    cursor.begin_connection()  # the stream is read again from sinceTime = the acknowledged line
    assert [cursor.accept(ts) for ts in (2_000, 3_000, 4_000)] == [None, positions[2], positions[3]]


def test_a_restored_cursor_resumes_after_its_saved_position() -> None:
    first = StreamCursor()
    positions = [first.accept(ts) for ts in (1_000, 1_000, 2_000)]
    restored = StreamCursor(acked_ts_ns=1_000, acked_position=positions[1])
    assert restored.since_time() is not None
    assert [restored.accept(ts) for ts in (1_000, 1_000, 2_000)] == [None, None, positions[2]]
