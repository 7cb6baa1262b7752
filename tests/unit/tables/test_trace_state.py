"""Trace summaries: counts, first/last time, levels, and replays skipped by stream position."""

from __future__ import annotations

from app.settings import TraceSettings
from tables.trace_state import apply_lines, deadlines, new_state, summary

SOURCES = [{"pod": "p1"}, {"pod": "p2"}]


def line(src: int, sid: str, pos: int, ts: int, level: str = "info", service: str = "svc") -> list:
    return [src, sid, pos, ts, "t1", level, service, f'{{"pos":{pos}}}', "stdout"]


def test_summary_fields() -> None:
    settings = TraceSettings(sample_lines=2)
    state = new_state("t1", now_ns=1)
    fresh = apply_lines(state, [line(0, "a", 10, 500), line(1, "b", 5, 300, "error", "db"),
                                line(0, "a", 20, 900, "warn")], SOURCES, settings, now_ns=2)
    assert len(fresh) == 3
    assert (state["first"], state["last"], state["count"]) == (300, 900, 3)
    assert state["level"] == "error" and state["errors"] == 1
    assert state["services"] == ["svc", "db"] and state["pods"] == ["p1", "p2"]
    assert len(state["sample"]) == 2
    apply_lines(state, [line(0, "a", 30, 950)], SOURCES, settings, now_ns=3)
    assert state["count"] == 4 and state["last"] == 950 and state["updated"] == 3


def test_deadlines_follow_gap_lateness_and_max_duration() -> None:
    settings = TraceSettings(gap=30, allowed_lateness=5, max_duration=60)
    state = new_state("t1", now_ns=0)
    apply_lines(state, [line(0, "a", 1, 10 * 10**9)], SOURCES, settings, now_ns=1 * 10**9)
    due = deadlines(state, settings)
    assert due.wall_ns == 31 * 10**9  # updated + gap
    assert due.event_ns == 40 * 10**9  # last + gap
    apply_lines(state, [line(0, "a", 2, 55 * 10**9)], SOURCES, settings, now_ns=50 * 10**9)
    assert deadlines(state, settings).event_ns == 70 * 10**9  # capped by first + max_duration
    assert deadlines(state, settings).wall_ns == 60 * 10**9  # capped by opened + max_duration


def test_summary_carries_close_id_and_cause() -> None:
    state = new_state("t1", now_ns=7)
    out = summary(state, "idle", 99)
    assert out["close_id"] == "t1@7" and out["cause"] == "idle"
