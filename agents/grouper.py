"""Folds parsed chunks into the trace table, forwards routed lines, and closes overdue traces.

Per chunk: one read and one staged write per trace (never per line), one changelog record, and
the table update is persisted only after the forwarded lines are acked (tables/trace_table.py).
Closing scans the deadline index in the store, so traces restored after a restart still close.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

from orjson import dumps

from agents.forwarding import forward
from agents.routing import Router
from app.metrics import DUPLICATES, HELD_LINES, HELD_OVERFLOW, LINES, OPEN_TRACES, TRACES_CLOSED
from app.models import P_SRC, P_TIME, P_TRACE, encode_closed_traces
from app.settings import Settings
from tables.stream_positions import STREAM_PREFIX, expired, fresh_lines
from tables.trace_state import (
    Deadlines,
    apply_lines,
    deadlines,
    decode_state,
    encode_state,
    new_state,
    summary,
)
from tables.trace_table import (
    CLOCK_KEY,
    EVENT_INDEX,
    HELD_KEY,
    WALL_INDEX,
    TraceWindowTable,
    index_key,
    trace_of_index_key,
)

SendToSink = Callable[[str, bytes, int], Any]
SendClosed = Callable[[bytes, int], Any]


class TraceGrouper:
    """The group stage's logic, bound to one worker's trace table."""

    def __init__(self, table: TraceWindowTable, router: Router, settings: Settings,
                 send_to_sink: SendToSink, send_closed: SendClosed) -> None:
        self.table = table
        self.router = router
        self.traces = settings.traces
        self.limit = int(settings.kafka.max_message_bytes * 0.8)
        self.send_to_sink = send_to_sink
        self.send_closed = send_closed
        self.open_traces: dict[int, int] = {}
        self.held: dict[int, int] = {}
        self._marks_swept: dict[int, float] = {}

    def clock(self, partition: int) -> int:
        raw = self.table.read(partition, CLOCK_KEY)
        return int(raw) if raw else 0

    def process_chunk(self, partition: int, sources: list[dict[str, Any]], lines: list[list[Any]]) -> int:
        """Apply one parsed chunk of `partition`; return the number of lines forwarded."""
        now = time.time_ns()
        updates: dict[bytes, bytes | None] = {}
        fresh_all = fresh_lines(lines, lambda key: self.table.read(partition, key), now // 1_000_000_000, updates)
        if len(fresh_all) < len(lines):
            DUPLICATES.labels("group").inc(len(lines) - len(fresh_all))
        by_trace: dict[str, list[list[Any]]] = defaultdict(list)
        for line in fresh_all:
            by_trace[line[P_TRACE]].append(line)
        routed: dict[str, list[list[Any]]] = defaultdict(list)
        self._route(fresh_all, sources, routed)  # in arrival order: sinks rely on per-stream order
        early: dict[str, list[list[Any]]] = defaultdict(list)  # held-overflow lines, out of stream order
        clock = max_time = self.clock(partition)
        opened = 0
        for trace_id, trace_lines in by_trace.items():
            if not trace_id:  # untraced lines (parse.untraced=pass) are routed, not grouped
                continue
            key = trace_id.encode()
            stored = self.table.read(partition, key)
            state = decode_state(stored) if stored else new_state(trace_id, now)
            before = deadlines(state, self.traces) if stored else None
            fresh = apply_lines(state, trace_lines, sources, self.traces, now)
            opened += stored is None
            max_time = max(max_time, max(line[P_TIME] for line in fresh))
            if self.router.trace_rules:
                self._hold(partition, state, fresh, sources, early)
            self._index(updates, trace_id, before, deadlines(state, self.traces))
            updates[key] = encode_state(state)
        if max_time > clock:
            updates[CLOCK_KEY] = str(max_time).encode()
        if self.router.trace_rules:
            updates[HELD_KEY] = str(self.held_lines(partition)).encode()
        count = sum(len(v) for v in routed.values())
        outputs = forward(routed, sources, partition, self.send_to_sink, self.limit) if routed else []
        if early:
            outputs += forward(early, sources, partition, self.send_to_sink, self.limit, ordered=False)
        self.table.commit_when_acked(partition, updates, outputs)
        LINES.labels("grouped").inc(len(lines))
        LINES.labels("routed").inc(count)
        if partition in self.open_traces:
            self.open_traces[partition] += opened
        self._publish_open()
        return count

    def _route(self, lines: list[list[Any]], sources: list[dict[str, Any]],
               routed: dict[str, list[list[Any]]]) -> None:
        for line in lines:
            for sink_name in self.router.line_sinks(line, sources):
                routed[sink_name].append(line)

    def held_lines(self, partition: int) -> int:
        """Lines held in `partition` (kept in its store, so the bound survives restarts)."""
        if partition not in self.held:
            raw = self.table.read(partition, HELD_KEY)
            self.held[partition] = int(raw) if raw else 0
        return self.held[partition]

    def _hold(self, partition: int, state: dict[str, Any], fresh: list[list[Any]], sources: list[dict[str, Any]],
              routed: dict[str, list[list[Any]]]) -> None:
        """Keep lines for trace rules until the trace closes, bounded per trace and per partition.

        Past a bound the line is not held: `held_overflow=drop` counts it, `forward` sends it to the
        trace rules' sinks at once (selection is lost for it, the line is not).
        """
        held: list[Any] = state.setdefault("held", [])
        matched: list[str] = state.setdefault("matched", [])
        total = self.held_lines(partition)
        for line in fresh:
            for name in self.router.trace_rule_hits(line, sources):
                if name not in matched:
                    matched.append(name)
            bound = ("trace" if len(held) >= self.traces.max_held_per_trace
                     else "partition" if total >= self.traces.max_held_per_partition else "")
            if not bound:
                held.append([sources[line[P_SRC]], line])
                total += 1
            else:
                state["held_overflow"] = state.get("held_overflow", 0) + 1
                HELD_OVERFLOW.labels(bound, self.traces.held_overflow).inc()
                if self.traces.held_overflow == "forward":
                    for rule in self.router.trace_rules:
                        for sink_name in rule.sinks:
                            routed[sink_name].append(line)
        self.held[partition] = total
        HELD_LINES.set(sum(self.held.values()))

    def _index(self, updates: dict[bytes, bytes | None], trace_id: str, before: Deadlines | None,
               after: Deadlines) -> None:
        if before is not None:
            if before.wall_ns != after.wall_ns:
                updates[index_key(WALL_INDEX, before.wall_ns, trace_id)] = None
            if before.event_ns != after.event_ns:
                updates[index_key(EVENT_INDEX, before.event_ns, trace_id)] = None
        updates[index_key(WALL_INDEX, after.wall_ns, trace_id)] = b""
        updates[index_key(EVENT_INDEX, after.event_ns, trace_id)] = b""

    # -- closing ---------------------------------------------------------------------------
    def close_overdue(self, partition: int, now_ns: int | None = None) -> int:
        """Close every trace of `partition` past its deadline; return how many closed."""
        now = time.time_ns() if now_ns is None else now_ns
        if partition not in self.open_traces:
            self.open_traces[partition] = sum(1 for _ in self.table.scan(partition, WALL_INDEX))
        watermark = self.clock(partition) - int(self.traces.allowed_lateness * 1e9)
        candidates = {trace_of_index_key(k): k for k in
                      self.table.scan(partition, WALL_INDEX, index_key(WALL_INDEX, now, ""))}
        for key in self.table.scan(partition, EVENT_INDEX, index_key(EVENT_INDEX, watermark, "")):
            candidates.setdefault(trace_of_index_key(key), key)
        updates: dict[bytes, bytes | None] = {}
        summaries: list[dict[str, Any]] = []
        routed: dict[str, list[list[Any]]] = defaultdict(list)
        held_sources: list[dict[str, Any]] = []
        closed = 0
        for trace_id, index_entry in candidates.items():
            stored = self.table.read(partition, trace_id.encode())
            if stored is None:
                updates[index_entry] = None  # stale entry of a trace already closed
                continue
            state = decode_state(stored)
            due = deadlines(state, self.traces)
            cause = "idle" if due.wall_ns <= now else "event_time" if due.event_ns <= watermark else ""
            if not cause:
                live = (index_key(WALL_INDEX, due.wall_ns, trace_id), index_key(EVENT_INDEX, due.event_ns, trace_id))
                if index_entry not in live:
                    updates[index_entry] = None
                continue
            updates[trace_id.encode()] = None
            updates[index_key(WALL_INDEX, due.wall_ns, trace_id)] = None
            updates[index_key(EVENT_INDEX, due.event_ns, trace_id)] = None
            self._release_held(partition, state, routed, held_sources)
            summaries.append(summary(state, cause, now))
            closed += 1
            TRACES_CLOSED.labels(cause).inc()
        if self.router.trace_rules and closed:
            updates[HELD_KEY] = str(self.held_lines(partition)).encode()
        self._sweep_stream_marks(partition, now, updates)
        outputs = self._emit_closed(partition, summaries)
        if routed:  # released held lines: trace by trace, so not in per-stream order
            outputs.extend(forward(routed, held_sources, partition, self.send_to_sink, self.limit, ordered=False))
        self.table.commit_when_acked(partition, updates, outputs)
        self.open_traces[partition] = max(0, self.open_traces[partition] - closed)
        self._publish_open()
        return closed

    def _emit_closed(self, partition: int, summaries: list[dict[str, Any]]) -> list[Any]:
        """Send closed-trace summaries as few records as the message size allows (never one per trace)."""
        outputs: list[Any] = []
        batch: list[dict[str, Any]] = []
        size = 0
        for item in summaries:
            cost = len(dumps(item))
            if batch and size + cost > self.limit:
                outputs.append(self.send_closed(encode_closed_traces(batch), partition))
                batch, size = [], 0
            batch.append(item)
            size += cost
        if batch:
            outputs.append(self.send_closed(encode_closed_traces(batch), partition))
        return outputs

    def _release_held(self, partition: int, state: dict[str, Any], routed: dict[str, list[list[Any]]],
                      sources: list[dict[str, Any]]) -> None:
        """Queue a closing trace's held lines for the sinks of the trace rules it matched."""
        held = state.pop("held", None)
        matched = state.pop("matched", [])
        if held:
            self.held[partition] = max(0, self.held_lines(partition) - len(held))
            HELD_LINES.set(sum(self.held.values()))
        if not held or not matched:
            return
        sinks = self.router.trace_sinks(matched)
        for src, line in held:
            sources.append(src)
            entry = list(line)
            entry[P_SRC] = len(sources) - 1
            for sink_name in sinks:
                routed[sink_name].append(entry)

    def _sweep_stream_marks(self, partition: int, now: int, updates: dict[bytes, bytes | None]) -> None:
        """Once a minute, forget the dedupe marks of streams idle past `traces.stream_retention`."""
        if now / 1e9 - self._marks_swept.get(partition, 0.0) < 60:
            return
        self._marks_swept[partition] = now / 1e9
        db = self.table.db(partition)
        marks = ((key, db[key]) for key in self.table.scan(partition, STREAM_PREFIX))
        for key in expired(marks, now // 1_000_000_000, self.traces.stream_retention):
            updates[key] = None

    def forget(self, partitions: list[int]) -> None:
        for partition in partitions:
            self.open_traces.pop(partition, None)
            self.held.pop(partition, None)
        self._publish_open()

    def _publish_open(self) -> None:
        OPEN_TRACES.set(sum(self.open_traces.values()))
