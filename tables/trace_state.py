"""The summary of one open trace and how lines update it: pure logic, no faust, no RocksDB.

Replayed lines never reach it: tables/stream_positions.py drops them first, per partition and
source stream, so the dedupe survives the trace closing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from app.models import P_LEVEL, P_SERVICE, P_SRC, P_TEXT, P_TIME
from app.settings import TraceSettings

_LEVEL_RANK = {"trace": 0, "debug": 1, "info": 2, "warn": 3, "error": 4, "fatal": 5}
_MAX_NAMES = 16
_NS = 1_000_000_000
_SAMPLE_CHARS = 512  # sampled lines are cut here: the state is rewritten on every update


@dataclass(frozen=True, slots=True)
class Deadlines:
    """When a trace closes: by processing time (no line for `gap`) or by event time.

    The event deadline is compared with the partition's event clock minus the allowed lateness,
    so lines up to `allowed_lateness` late still join their trace.
    """

    wall_ns: int
    event_ns: int


def deadlines(state: dict[str, Any], settings: TraceSettings) -> Deadlines:
    gap, longest = int(settings.gap * _NS), int(settings.max_duration * _NS)
    wall = min(state["updated"] + gap, state["opened"] + longest)
    event = min(state["last"] + gap, state["first"] + longest)
    return Deadlines(wall, event)


def new_state(trace_id: str, now_ns: int) -> dict[str, Any]:
    return {"trace": trace_id, "first": 0, "last": 0, "count": 0, "services": [], "pods": [],
            "level": "", "errors": 0, "sample": [], "opened": now_ns, "updated": now_ns}


def apply_lines(state: dict[str, Any], lines: list[list[Any]], sources: list[dict[str, Any]],
                settings: TraceSettings, now_ns: int) -> list[list[Any]]:
    """Fold `lines` (fresh parsed entries of one trace) into `state`; return them."""
    for line in lines:
        ts = line[P_TIME]
        if state["count"] == 0 or ts < state["first"]:
            state["first"] = ts
        if ts > state["last"]:
            state["last"] = ts
        state["count"] += 1
        level = line[P_LEVEL]
        if _LEVEL_RANK.get(level, -1) > _LEVEL_RANK.get(state["level"], -1):
            state["level"] = level
        if level in ("error", "fatal"):
            state["errors"] += 1
        service = line[P_SERVICE]
        if service and service not in state["services"] and len(state["services"]) < _MAX_NAMES:
            state["services"].append(service)
        pod = sources[line[P_SRC]].get("pod")
        if pod and pod not in state["pods"] and len(state["pods"]) < _MAX_NAMES:
            state["pods"].append(pod)
        if len(state["sample"]) < settings.sample_lines:
            state["sample"].append(line[P_TEXT][:_SAMPLE_CHARS])
    if lines:
        state["updated"] = now_ns
    return lines


def summary(state: dict[str, Any], cause: str, closed_ns: int) -> dict[str, Any]:
    """The record emitted to `traces.closed` (the dedupe map stays internal)."""
    out = {k: v for k, v in state.items() if k != "seen"}
    out.update(cause=cause, closed=closed_ns, duration_ns=state["last"] - state["first"],
               close_id=f"{state['trace']}@{state['opened']}")
    return out


def encode_state(state: dict[str, Any]) -> bytes:
    return orjson.dumps(state)


def decode_state(data: bytes) -> dict[str, Any]:
    value: dict[str, Any] = orjson.loads(data)
    return value
