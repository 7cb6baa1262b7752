"""New traces opened in C (tables/_newstates.h) get exactly the state and deadlines of the reference step.

Differential: each generated set of folds is applied by `open_new_traces` and, trace by trace, by the
reference (`new_state`, `apply_fold`, `deadlines_ns`, `DeadlineIndex.set`, `encode_state`, as the
group stage's loop does). Every trace the C loop writes must be byte-equal to the reference's, with the
same deadlines in the index; known traces are left to the caller. The generators aim at what the C loop
decides itself: strings it escapes as orjson does (non-ASCII, quotes, backslashes, control
characters), names repeated, empty or None past the name bound, pods missing, sample bounds, sampled
texts as orjson Fragments, times and levels at their edges.
"""

from __future__ import annotations

import heapq
import os
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.native import native_module
from tables.deadline_index import DeadlineIndex
from tables.trace_state import apply_fold, deadlines_ns, encode_state, new_state, open_new_traces

pytest.importorskip("tables._tracefold", reason="C extension not built (pure-Python install)")
if native_module("trace_fold") is None:
    pytest.skip("the C loop is off in this process (LOGWEAVE_PURE=1)", allow_module_level=True)

INT64 = 2**63
EXAMPLES = int(os.environ.get("NEW_STATES_EXAMPLES", "300"))
GAP, LONGEST = 30 * 10**9, 300 * 10**9
KEPT = b"\x00kept before the call"  # an update made before it (as the stream marks are); no generated id is as long
NAME = st.one_of(st.sampled_from(["", "svc", "db", "checkout", 'q"uote', "back\\slash", "tab\t", "ü", "🎉", "\x7f"]),
                 st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=6))
TEXT = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=12)
SAMPLE = st.one_of(TEXT, st.builds(lambda text: orjson.Fragment(orjson.dumps(text)), TEXT))
TIME = st.one_of(st.integers(-INT64, INT64 - 1), st.sampled_from([0, -1, 1, 1_749_543_941_000_000_000]))


def reference(folds: dict[str, Any], index: DeadlineIndex, sources: list[dict[str, Any]], sample_lines: int,
              opened: int, updated: int) -> tuple[dict[bytes, bytes | None], int | None]:
    updates: dict[bytes, bytes | None] = {}
    latest = None
    for trace_id, fold in folds.items():
        if trace_id in index.due:
            continue
        state = new_state(trace_id, opened)
        apply_fold(state, fold, sources, sample_lines, updated)
        index.set(trace_id, *deadlines_ns(state, GAP, LONGEST))
        updates[trace_id.encode()] = encode_state(state)
        latest = state["last"] if latest is None else max(latest, state["last"])
    return updates, latest


def index_of(traces: list[str]) -> DeadlineIndex:
    return DeadlineIndex((trace_id, n, n + 1) for n, trace_id in enumerate(traces))


def same_index(a: DeadlineIndex, b: DeadlineIndex) -> bool:
    a_due, a_wall, a_event = a.parts()
    b_due, b_wall, b_event = b.parts()
    return a_due == b_due and sorted(a_wall) == sorted(b_wall) and sorted(a_event) == sorted(b_event)


@st.composite
def cases(draw: st.DrawFn) -> tuple[dict[str, Any], list[str], list[dict[str, Any]], int]:
    sources = draw(st.lists(st.one_of(st.builds(lambda pod: {"kind": "file", "pod": pod}, NAME),
                                      st.just({"kind": "file"}), st.just({"pod": None})), min_size=1, max_size=5))
    fold = st.builds(lambda count, first, last, rank, errors, services, indices, sample:
                     [count, first, last, rank, errors, services, indices, sample],
                     st.integers(0, 10**6), TIME, TIME, st.integers(-1, 5), st.integers(0, 10**6),
                     st.lists(NAME, max_size=40), st.lists(st.integers(0, len(sources) - 1), max_size=8),
                     st.lists(SAMPLE, max_size=6))
    trace_ids = st.one_of(st.builds(lambda n: f"trace-{n:09d}", st.integers(0, 50)), NAME.filter(bool))
    folds = draw(st.dictionaries(trace_ids, fold, max_size=30))
    known = draw(st.lists(st.sampled_from(sorted(folds) or ["none"]), max_size=5, unique=True))
    return folds, known, sources, draw(st.integers(-1, 5))


def fits(value: int) -> bool:
    return -INT64 <= value < INT64


@settings(max_examples=EXAMPLES, deadline=None)
@given(cases(), st.integers(0, 2**62), st.integers(0, 2**62))
def test_new_traces_are_written_as_the_reference_writes_them(case: Any, opened: int, updated: int) -> None:
    """What the C loop leaves, the caller's reference step completes: together they equal the reference."""
    folds, known, sources, sample_lines = case
    index, expected_index = index_of(known), index_of(known)
    updates: dict[bytes, bytes | None] = {KEPT: b"1"}
    left, latest = open_new_traces(folds, index, sources, sample_lines, opened, updated, GAP, LONGEST, updates)
    written = [key for key in updates if key != KEPT]
    expected, expected_latest = reference(folds, expected_index, sources, sample_lines, opened, updated)
    left = [trace_id for trace_id in left if trace_id not in known]
    for trace_id in left:  # only ids holding a NUL (the caller reads the store) and deadlines past 64 bits
        if "\x00" in trace_id:
            continue
        state = {"updated": updated, "opened": opened, "first": folds[trace_id][1], "last": max(folds[trace_id][2], 0)}
        assert not all(map(fits, deadlines_ns(state, GAP, LONGEST))), trace_id
    rest, _ = reference({trace_id: folds[trace_id] for trace_id in left}, index, sources, sample_lines, opened,
                        updated)
    assert {**updates, **rest} == {KEPT: b"1", **expected}
    assert written == [key for key in expected if key.decode() not in left]  # in the folds' order
    if not left:
        assert latest == expected_latest
    assert same_index(index, expected_index)


def open_one(trace_id: str, fold: list[Any], sources: list[dict[str, Any]] | None = None,
             opened: int = 10, updated: int = 20) -> tuple[list[str], dict[bytes, bytes | None], DeadlineIndex]:
    index, updates = DeadlineIndex(), dict[bytes, bytes | None]()
    left, _ = open_new_traces({trace_id: fold}, index, sources or [{"pod": "p"}], 3, opened, updated, GAP, LONGEST,
                              updates)
    return list(left), updates, index


@pytest.mark.parametrize(("trace_id", "fold", "sources"), [
    ("t\x00nul", [1, 5, 5, 2, 0, [], [0], []], None),  # a NUL: the caller reads the store for it
    ("t", [1, 5, 5, 6, 0, [], [0], []], None),  # a rank past the names: the reference raises
    ("t", [1, 5, 5, 2, 0, [7], [0], []], None),  # a service that is not a str
    ("t", [1, 5, 5, 2, 0, [], [0], []], [{"pod": 12}]),  # a pod that is not a str
    ("t", [1, 5, 5, 2, 0, [], [3], []], None),  # a source index past the sources
    ("t", [1, 5, 5, 2, 0, [], [-1], []], None),  # a negative one (Python would wrap it)
    ("t", [1, INT64 - 1, INT64 - 1, 2, 0, [], [0], []], None),  # a deadline past 64 bits
    ("t", [1, 5, 5, 2, 0, [], [0], ["\ud800"]], None),  # a text orjson refuses
    ("\ud800", [1, 5, 5, 2, 0, [], [0], []], None),  # an id that does not encode
    ("t", [1, 5, 5, 2, 0, [], [0]], None),  # not a fold
    ("t", (1, 5, 5, 2, 0, [], [0], []), None),
    ("t", [1.0, 5, 5, 2, 0, [], [0], []], None),
    ("t", [1, 5, 2**64, 2, 0, [], [0], []], None),
])
def test_a_trace_it_is_not_sure_of_is_left_untouched(trace_id: str, fold: Any,
                                                     sources: list[dict[str, Any]] | None) -> None:
    left, updates, index = open_one(trace_id, fold, sources)
    assert left == [trace_id]
    assert updates == {}
    assert index.parts() == ({}, [], [])


def test_known_traces_are_left_and_new_ones_enter_the_index() -> None:
    index = index_of(["old"])
    updates: dict[bytes, bytes | None] = {}
    fold = [2, 100, 200, 4, 1, ["svc", "svc", ""], [0, 0], [orjson.Fragment(b'"a\\"b"'), "c"]]
    left, latest = open_new_traces({"old": fold, "new": fold}, index, [{"pod": "p1"}], 1, 7, 9, GAP, LONGEST, updates)
    assert list(left) == ["old"]
    assert latest == 200
    assert orjson.loads(updates[b"new"] or b"") == {
        "trace": "new", "first": 100, "last": 200, "count": 2, "services": ["svc"], "pods": ["p1"], "level": "error",
        "errors": 1, "sample": ['a"b'], "opened": 7, "updated": 9}
    due, wall, event = index.parts()
    assert due["new"] == (min(9 + GAP, 7 + LONGEST), min(200 + GAP, 100 + LONGEST))
    assert heapq.nsmallest(1, wall) == [(0, "old")]
    assert (due["new"][0], "new") in wall and (due["new"][1], "new") in event


def test_without_the_c_loop_every_trace_is_left(monkeypatch: pytest.MonkeyPatch) -> None:
    import tables.trace_state as trace_state_module

    monkeypatch.setattr(trace_state_module, "native_module", lambda name: None)
    updates: dict[bytes, bytes | None] = {}
    left, latest = open_new_traces({"a": [1, 5, 5, 2, 0, [], [0], []]}, DeadlineIndex(), [{}], 3, 1, 2, GAP, LONGEST,
                                   updates)
    assert list(left) == ["a"] and latest is None and updates == {}
