"""The summary of one open trace and how lines update it: pure logic, no faust, no RocksDB.

A chunk's lines are folded per trace (`fold_traces`, its loop in C) and each fold is added to the
trace's stored state (`apply_fold`); a close appends its fields to the stored JSON rather than
decoding it (`spliced_summary`). Replayed lines never reach it: tables/stream_positions.py drops
them first, per partition and source stream, so the dedupe survives the trace closing.
"""

from __future__ import annotations

from collections.abc import Iterable
from operator import itemgetter
from typing import TYPE_CHECKING, Any, NamedTuple

import orjson

from core.models import LEVEL_NAMES, LEVEL_RANK, P_LEVEL, P_SERVICE, P_SRC, P_TEXT, P_TIME, P_TRACE
from core.native import native_module
from core.settings import TraceSettings

if TYPE_CHECKING:
    from tables.deadline_index import DeadlineIndex

_MAX_NAMES = 16
_NS = 1_000_000_000
_SAMPLE_CHARS = 512  # sampled lines are cut here: the state is rewritten on every update


class Deadlines(NamedTuple):
    """When a trace closes: by processing time (no line for `gap`) or by event time.

    The event deadline is compared with the partition's event clock minus the allowed lateness,
    so lines up to `allowed_lateness` late still join their trace.
    """

    wall_ns: int
    event_ns: int


def deadlines(state: dict[str, Any], settings: TraceSettings) -> Deadlines:
    return Deadlines(*deadlines_ns(state, int(settings.gap * _NS), int(settings.max_duration * _NS)))


def deadlines_ns(state: dict[str, Any], gap_ns: int, longest_ns: int) -> tuple[int, int]:
    """`deadlines` with the settings already in nanoseconds (the group stage's hot path)."""
    updated, last = state["updated"], state["last"]
    return (min(updated + gap_ns, state["opened"] + longest_ns), min(last + gap_ns, state["first"] + longest_ns))


def new_state(trace_id: str, now_ns: int) -> dict[str, Any]:
    return {"trace": trace_id, "first": 0, "last": 0, "count": 0, "services": [], "pods": [],
            "level": "", "errors": 0, "sample": [], "opened": now_ns, "updated": now_ns}


# What one chunk's lines of a trace add to its state: [count, first, last, highest level rank,
# errors, services (distinct, non-empty, first seen first, at most 2 x _MAX_NAMES: the state may
# already hold up to _MAX_NAMES of them), source indices (distinct), sample (the first texts, cut)]
Fold = list[Any]


def fold_traces(lines: list[list[Any]], sample_lines: int) -> dict[str, Fold]:
    """One fold per trace id of `lines`, in first-seen order; untraced lines are left out.

    The loop over lines runs in C (tables/_tracefold.c) when it is built; the C loop declines any
    chunk holding a line it was not written for, and the reference folds that chunk.
    """
    tracefold = native_module("trace_fold")
    if tracefold is not None:
        folded: dict[str, Fold] | None = tracefold.fold(lines, sample_lines, _SAMPLE_CHARS, 2 * _MAX_NAMES)
        if folded is not None:
            return folded
    return fold_reference(lines, sample_lines)


class EncodedFolds(NamedTuple):
    """`fold_traces` of a parsed chunk's lines read from its bytes, with what deduping them needs."""

    line_count: int
    streams: list[list[Any]]  # per stream id, first seen first: [stream id, first position, last position]
    folds: dict[str, Fold]


def fold_encoded(payload: bytes, lines_start: int, lines_end: int, sources: int,
                 sample_lines: int) -> EncodedFolds | None:
    """The folds of the lines in payload[lines_start:lines_end] (a parsed chunk's `lines` array as orjson
    wrote it), read in C without a Python object per line (tables/_tracefold.c, fold_raw).

    None without the C loop, or when the chunk is not one it reads (not orjson's exact form, a source
    index outside [0, sources), a stream whose positions do not rise strictly): decode the chunk and fold
    its lines instead. Otherwise the folds encode as `fold_traces` of the decoded lines do (a sampled text
    may be an orjson Fragment of its literal)."""
    tracefold = native_module("trace_fold")
    if tracefold is None:
        return None
    read = tracefold.fold_raw(payload, lines_start, lines_end, sources, sample_lines, _SAMPLE_CHARS,
                              2 * _MAX_NAMES)
    return EncodedFolds(*read) if read is not None else None


def fold_reference(lines: list[list[Any]], sample_lines: int) -> dict[str, Fold]:
    return {trace_id: fold_lines(trace_lines, sample_lines)
            for trace_id, trace_lines in lines_by_trace(lines).items() if trace_id}


def lines_by_trace(lines: list[list[Any]]) -> dict[str, list[list[Any]]]:
    """Lines per trace id, in first-seen order (untraced lines under "")."""
    by_trace: dict[str, list[list[Any]]] = {}
    for line in lines:
        trace_lines = by_trace.get(line[P_TRACE])
        if trace_lines is None:
            by_trace[line[P_TRACE]] = [line]
        else:
            trace_lines.append(line)
    return by_trace


def fold_lines(lines: list[list[Any]], sample_lines: int) -> Fold:
    """The fold of one trace's lines (at least one)."""
    times = list(map(_time_of, lines))
    levels = list(map(_level_of, lines))
    services = [name for name in dict.fromkeys(map(_service_of, lines)) if name][:2 * _MAX_NAMES]
    return [len(lines), min(times), max(times), max(map(_rank, set(levels))),
            levels.count("error") + levels.count("fatal"), services, list(dict.fromkeys(map(_source_of, lines))),
            [line[P_TEXT][:_SAMPLE_CHARS] for line in lines[:sample_lines]]]


def open_new_traces(folds: dict[str, Fold], index: DeadlineIndex, sources: list[dict[str, Any]], sample_lines: int,
                    opened_ns: int, updated_ns: int, gap_ns: int, longest_ns: int,
                    updates: dict[bytes, bytes | None]) -> tuple[Iterable[str], int | None]:
    """The traces of `folds` that `index` does not hold, each opened in C (tables/_newstates.h): its state
    `apply_fold(new_state(trace_id, opened_ns), fold, ..., updated_ns)` encoded into `updates` under its key,
    and its deadlines set in `index`, as the caller's reference step would.

    Returns the trace ids left to that step (known traces, and any the C loop is not sure of), in order,
    and the highest `last` of the states it wrote (None: none). Without the C loop every trace is left."""
    tracefold = native_module("trace_fold")
    if tracefold is None:
        return folds.keys(), None
    pods = [source.get("pod") for source in sources]
    due, wall, event = index.parts()
    opened: tuple[list[str], int | None] = tracefold.new_states(folds, due, pods, sample_lines, opened_ns, updated_ns,
                                                                gap_ns, longest_ns, updates, wall, event)
    return opened


def apply_fold(state: dict[str, Any], fold: Fold, sources: list[dict[str, Any]], sample_lines: int,
               now_ns: int) -> None:
    """Add one chunk's fold of a trace to its state."""
    count, first, last, rank, errors, services, source_indices, sample = fold
    if state["count"] == 0 or first < state["first"]:
        state["first"] = first
    if last > state["last"]:
        state["last"] = last
    state["count"] += count
    if rank > _rank(state["level"]):
        state["level"] = LEVEL_NAMES[rank]
    state["errors"] += errors
    _add_names(state["services"], services)
    pods = [sources[index].get("pod") for index in source_indices]
    if not set(pods).issubset(state["pods"]):
        _add_names(state["pods"], pods)
    room = sample_lines - len(state["sample"])
    if room > 0:
        state["sample"].extend(sample[:room])
    state["updated"] = now_ns


_time_of, _level_of = itemgetter(P_TIME), itemgetter(P_LEVEL)
_service_of, _source_of = itemgetter(P_SERVICE), itemgetter(P_SRC)


def _rank(level: str) -> int:
    return LEVEL_RANK.get(level, -1)


def _add_names(names: list[str], candidates: list[Any]) -> None:
    """Append new non-empty names in first-seen order, up to _MAX_NAMES."""
    for name in candidates:
        if len(names) >= _MAX_NAMES:
            return
        if name and name not in names:
            names.append(name)


def summary(state: dict[str, Any], cause: str, closed_ns: int) -> dict[str, Any]:
    """The record emitted to `traces.closed` (the dedupe map stays internal)."""
    out = {k: v for k, v in state.items() if k != "seen"}
    out.update(cause=cause, closed=closed_ns, duration_ns=state["last"] - state["first"],
               close_id=f"{state['trace']}@{state['opened']}")
    return out


def encode_summary(state: dict[str, Any], cause: str, closed_ns: int) -> tuple[bytes, str]:
    """`summary` encoded, with its close id."""
    item = summary(state, cause, closed_ns)
    return orjson.dumps(item), item["close_id"]


def spliced_summary(stored: bytes, trace_id: str, cause: str, closed_ns: int) -> tuple[bytes, str] | None:
    """`encode_summary(decode_state(stored), ...)` without decoding the state: the closing fields are
    appended to the stored JSON, since decoding the sampled lines only to encode them again is a
    large share of the group stage's cost.

    None unless the state is shaped as encode_state writes new_state's keys, with nothing between
    the sample and `opened` (the first releases kept a dedupe map there, which summaries drop) and
    nothing after `updated` (held lines, which the close must release): the caller then decodes it.
    """
    prefix = b'{"trace":%s,"first":' % orjson.dumps(trace_id)
    opened_at = stored.rfind(b',"opened":')
    updated_at = stored.find(b',"updated":', opened_at)
    last_at = stored.find(b',"last":', len(prefix))
    count_at = stored.find(b',"count":', last_at)
    if (not stored.startswith(prefix) or min(opened_at, updated_at, last_at, count_at) < 0
            or stored[opened_at - 1:opened_at] != b"]" or stored[-1:] != b"}"):
        return None
    try:
        first, last = int(stored[len(prefix):last_at]), int(stored[last_at + 8:count_at])
        opened = int(stored[opened_at + 10:updated_at])
        int(stored[updated_at + 11:-1])  # `updated` is the last key
    except ValueError:
        return None
    close_id = f"{trace_id}@{opened}"
    closing = b',"cause":%s,"closed":%d,"duration_ns":%d,"close_id":%s}' % (
        orjson.dumps(cause), closed_ns, last - first, orjson.dumps(close_id))
    return stored[:-1] + closing, close_id


def encode_state(state: dict[str, Any]) -> bytes:
    return orjson.dumps(state)


def decode_state(data: bytes) -> dict[str, Any]:
    value: dict[str, Any] = orjson.loads(data)
    return value
