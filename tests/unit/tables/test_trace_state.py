"""Trace summaries: counts, first/last time, levels, and replays skipped by stream position."""

from __future__ import annotations

from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from core.settings import TraceSettings
from tables.trace_state import (
    apply_fold,
    deadlines,
    decode_state,
    encode_state,
    encode_summary,
    fold_lines,
    new_state,
    spliced_summary,
    summary,
)

SOURCES = [{"pod": "p1"}, {"pod": "p2"}]


def apply_lines(state: dict[str, Any], lines: list[list[Any]], sources: list[dict[str, Any]],
                settings: TraceSettings, now_ns: int) -> list[list[Any]]:
    """Fold one trace's lines into its state, as the group stage does per chunk."""
    if lines:
        apply_fold(state, fold_lines(lines, settings.sample_lines), sources, settings.sample_lines, now_ns)
    return lines


def line(src: int, sid: str, pos: int, ts: int, level: str = "info", service: str = "svc",
         text: str | None = None) -> list:
    return [src, sid, pos, ts, "t1", level, service, f'{{"pos":{pos}}}' if text is None else text, "stdout"]


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


TEXT = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=40)
TRACE_IDS = st.one_of(TEXT.filter(bool), st.sampled_from(['a"b', "a\\", '","first":1', "x,\"opened\":1"]))


@st.composite
def stored_states(draw: st.DrawFn) -> tuple[str, bytes]:
    """States as the group stage stores them, with the keys earlier releases or trace rules add."""
    trace_id = draw(TRACE_IDS)
    state = new_state(trace_id, draw(st.integers(0, 2**62)))
    lines = draw(st.lists(st.tuples(st.integers(0, 2**62), st.sampled_from(["info", "error", "x"]), TEXT),
                          max_size=6))
    apply_lines(state, [line(0, "a", n, ts, level, text=text) for n, (ts, level, text) in enumerate(lines)],
                SOURCES, TraceSettings(sample_lines=3), now_ns=draw(st.integers(0, 2**62)))
    state["sample"] += draw(st.lists(st.sampled_from(['"opened":1', '],"opened":2,"updated":3}', "\\"]), max_size=2))
    extra = draw(st.sampled_from(["", "seen", "held", "held_overflow"]))
    if extra == "seen":  # the first releases kept a dedupe map between the sample and `opened`
        items = list(state.items())
        state = dict(items[:9] + [("seen", {"a": 3, '"opened":': 1})] + items[9:])
    elif extra == "held":
        state["held"], state["matched"] = [[{"pod": "p1", "opened": 1}, line(0, "a", 1, 1)]], ["errors"]
    elif extra == "held_overflow":
        state["held_overflow"] = 2
    return trace_id, encode_state(state)


@settings(max_examples=400, deadline=None)
@given(stored_states(), st.sampled_from(["idle", "event_time"]), st.integers(0, 2**62))
def test_spliced_summary_is_the_decoded_summary_byte_for_byte(stored: tuple[str, bytes], cause: str,
                                                              closed_ns: int) -> None:
    trace_id, data = stored
    spliced = spliced_summary(data, trace_id, cause, closed_ns)
    state = decode_state(data)
    if spliced is None:  # only states whose summary is not the stored JSON plus the closing fields
        assert "seen" in state or "held" in state or "held_overflow" in state
        return
    assert "seen" not in state and "held" not in state
    assert spliced == encode_summary(state, cause, closed_ns)
    assert orjson.loads(spliced[0]) == summary(state, cause, closed_ns)
