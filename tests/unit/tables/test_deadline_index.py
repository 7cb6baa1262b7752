"""The in-memory deadline index: overdue traces by wall or event deadline, each reported once."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

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


def test_a_deadline_moved_earlier_is_reported_at_the_earlier_time() -> None:
    index = DeadlineIndex()
    index.set("a", 100, 1_000)
    index.set("a", 40, 1_000)  # e.g. a late line with an earlier time: the longest-duration cap moved
    assert index.overdue(now_ns=40, watermark_ns=0) == {"a": "idle"}
    index.discard("a")
    assert index.overdue(now_ns=200, watermark_ns=2_000) == {}


def test_deadlines_moving_later_push_nothing() -> None:
    """Every update of a live trace moves its deadlines later: the heaps keep one entry per trace
    (they grew by one per update, each a push and later a stale pop)."""
    index = DeadlineIndex()
    for step in range(100):
        index.set("a", 10 + step, 20 + step)
    assert (len(index._wall), len(index._event)) == (1, 1)
    assert index.overdue(now_ns=50, watermark_ns=50) == {}  # the early entries came up: pushed again
    assert index.overdue(now_ns=109, watermark_ns=0) == {"a": "idle"}


@settings(max_examples=500, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["set", "set", "discard", "overdue"]), st.sampled_from("abcdefgh"),
                          st.integers(0, 60), st.integers(0, 60)), max_size=60),
       st.one_of(st.none(), st.integers(1, 3)))
def test_reports_what_a_scan_of_the_current_deadlines_finds(ops: list[tuple[str, str, int, int]],
                                                            most: int | None) -> None:
    """Against the definition: with the caller discarding what it is given (as the group stage
    does), each overdue call reports exactly the traces whose current deadline passed, idle first.
    With `most`, calls until `any_overdue` says none is left (the group stage's slices) report the
    same traces together, each once and at most `most` a call."""
    index, current = DeadlineIndex(), {}
    now = watermark = 0
    for op, trace_id, first, second in ops:
        if op == "set":  # deadlines from just passed to a little ahead, moving either way
            wall, event = now + first // 4 - 3, watermark + second // 4 - 3
            index.set(trace_id, wall, event)
            current[trace_id] = (wall, event)
        elif op == "discard":
            index.discard(trace_id)
            current.pop(trace_id, None)
        else:
            now, watermark = now + first // 10, watermark + second // 10
            expected = {t: "idle" if wall <= now else "event_time"
                        for t, (wall, event) in current.items() if wall <= now or event <= watermark}
            assert index.any_overdue(now, watermark) or not expected
            reported: dict[str, str] = {}
            while index.any_overdue(now, watermark):
                piece = index.overdue(now, watermark, most)
                assert (most is None or len(piece) <= most) and not reported.keys() & piece.keys()
                reported.update(piece)
                for t in piece:
                    index.discard(t)
            assert reported == expected and index.overdue(now, watermark) == {}
            for t in expected:
                del current[t]
        assert len(index) == len(current)

