"""The summary of one open trace and how lines update it: pure logic, no faust, no RocksDB.

Replayed lines never reach it: tables/stream_positions.py drops them first, per partition and
source stream, so the dedupe survives the trace closing.
"""

from __future__ import annotations

from operator import itemgetter
from typing import Any, NamedTuple

import orjson

from app.models import P_LEVEL, P_SERVICE, P_SRC, P_TEXT, P_TIME
from app.settings import TraceSettings

_LEVEL_RANK = {"trace": 0, "debug": 1, "info": 2, "warn": 3, "error": 4, "fatal": 5}
_MAX_NAMES = 16
_NS = 1_000_000_000
_ERROR_LEVELS = frozenset({"error", "fatal"})
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


def apply_lines(state: dict[str, Any], lines: list[list[Any]], sources: list[dict[str, Any]],
                settings: TraceSettings, now_ns: int) -> list[list[Any]]:
    """Fold `lines` (fresh parsed entries of one trace) into `state`; return them.

    Built from comprehensions over the trace's lines rather than one pass of per-line field
    updates: this runs for every trace of every chunk.
    """
    if not lines:
        return lines
    times = list(map(_time_of, lines))
    first, last = min(times), max(times)
    if state["count"] == 0 or first < state["first"]:
        state["first"] = first
    if last > state["last"]:
        state["last"] = last
    state["count"] += len(lines)
    levels = list(map(_level_of, lines))
    distinct = set(levels)
    top = max(distinct, key=_rank) if len(distinct) > 1 else levels[0]
    if top != state["level"] and _rank(top) > _rank(state["level"]):
        state["level"] = top
    if top in _ERROR_LEVELS:
        state["errors"] += levels.count("error") + levels.count("fatal")
    services = list(map(_service_of, lines))
    if not set(services).issubset(state["services"]):
        _add_names(state["services"], services)
    pods = [sources[index].get("pod") for index in set(map(_source_of, lines))]
    if not set(pods).issubset(state["pods"]):
        _add_names(state["pods"], [sources[index].get("pod") for index in dict.fromkeys(map(_source_of, lines))])
    sample = state["sample"]
    room = settings.sample_lines - len(sample)
    if room > 0:
        sample.extend([line[P_TEXT][:_SAMPLE_CHARS] for line in lines[:room]])
    state["updated"] = now_ns
    return lines


_time_of, _level_of = itemgetter(P_TIME), itemgetter(P_LEVEL)
_service_of, _source_of = itemgetter(P_SERVICE), itemgetter(P_SRC)


def _rank(level: str) -> int:
    return _LEVEL_RANK.get(level, -1)


def _add_names(names: list[str], candidates: list[Any]) -> None:
    """Append new non-empty names in first-seen order, up to _MAX_NAMES."""
    for name in dict.fromkeys(candidates):
        if name and name not in names and len(names) < _MAX_NAMES:
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
    appended to the stored JSON. Closing is once per trace, and decoding the sampled lines only to
    encode them again cost about a quarter of the group stage.

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
