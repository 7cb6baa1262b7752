"""The in-memory deadline index: overdue traces by wall or event deadline, each reported once."""

from __future__ import annotations

from tables.deadline_index import DeadlineIndex


def test_overdue_by_wall_or_event_deadline_with_cause() -> None:
    index = DeadlineIndex([("a", 10, 100), ("b", 50, 20)])
    index.set("c", 60, 70)
    assert index.overdue(now_ns=10, watermark_ns=0) == {"a": "idle"}
    index.discard("a")
    assert index.overdue(now_ns=40, watermark_ns=25) == {"b": "event_time"}
    index.discard("b")
    assert len(index) == 1 and "c" in index


def test_moved_deadline_replaces_the_old_one() -> None:
    index = DeadlineIndex()
    index.set("a", 10, 100)
    index.set("a", 30, 100)  # a new line arrived: the wall deadline moved on
    assert index.overdue(now_ns=20, watermark_ns=0) == {}
    assert index.overdue(now_ns=30, watermark_ns=0) == {"a": "idle"}


def test_discarded_trace_is_never_reported() -> None:
    index = DeadlineIndex([("a", 10, 10)])
    index.discard("a")
    assert index.overdue(now_ns=100, watermark_ns=100) == {} and len(index) == 0


def test_reported_once_even_when_both_deadlines_passed() -> None:
    index = DeadlineIndex([("a", 10, 10)])
    assert index.overdue(now_ns=100, watermark_ns=100) == {"a": "idle"}
    assert index.overdue(now_ns=200, watermark_ns=200) == {}
