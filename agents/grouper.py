"""Folds parsed chunks into the trace table, forwards routed lines, and closes overdue traces.

Per chunk: one read and one staged write per trace (never per line), one changelog record, and
the table update is persisted only after the forwarded lines are acked (tables/trace_table.py).
Closing asks the partition's deadline index, rebuilt from the stored traces after every rebalance,
so traces restored after a restart still close. A close whose summary reached `traces.closed` but
whose table delete was not yet stored (a crash in between) is not sent again: after a rebalance the
group agent reads those summaries back (`already_sent`) and the close only deletes the trace.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from typing import Any

from agents.folded_chunk import FoldedChunk
from agents.forwarding import forward
from agents.held_lines import HeldLines
from agents.idle_clock import IdleClock
from agents.log_metrics import Counted, LogMetrics
from agents.routing import Router
from core.metrics import DUPLICATES, LINES, OPEN_TRACES, TRACES_CLOSED
from core.models import join_closed_traces
from core.settings import Settings
from tables.deadline_index import DeadlineIndex
from tables.stream_positions import STREAM_PREFIX, decode_mark, expired, fresh_lines, stream_key
from tables.trace_state import (
    Fold,
    apply_fold,
    deadlines_ns,
    decode_state,
    encode_state,
    encode_summary,
    fold_traces,
    lines_by_trace,
    new_state,
    open_new_traces,
    spliced_summary,
)
from tables.trace_table import CLOCK_KEY, CLOSED_UPTO_KEY, HELD_KEY, TraceWindowTable

GROUP_DUPLICATES = DUPLICATES.labels("group")
LINES_GROUPED, LINES_ROUTED = LINES.labels("grouped"), LINES.labels("routed")

SendToSink = Callable[[str, bytes, int], Any]  # (sink name, chunk record, partition): plain or compressed
SendClosed = Callable[[bytes, int], Any]


class TraceGrouper:
    """The group stage's logic, bound to one worker's trace table."""

    def __init__(self, table: TraceWindowTable, router: Router, settings: Settings,
                 send_to_sink: SendToSink, send_closed: SendClosed) -> None:
        self.table = table
        self._router = router
        self.traces = settings.traces
        self._gap_ns = int(settings.traces.gap * 1e9)
        self._longest_ns = int(settings.traces.max_duration * 1e9)
        self.limit = int(settings.kafka.max_message_bytes * 0.8)
        self.send_to_sink = send_to_sink
        self.send_closed = send_closed
        self.holds = HeldLines(table, router, settings.traces)
        self._marks_swept: dict[int, float] = {}
        self.already_sent: dict[int, set[str]] = {}  # close ids found in traces.closed after a rebalance
        self.idle = IdleClock(int(2 * settings.traces.close_check_interval * 1e9))
        self.log_metrics: LogMetrics | None = None  # metrics from logs of the rules in effect (agents/group.py)

    @property
    def router(self) -> Router:
        return self._router

    @router.setter
    def router(self, router: Router) -> None:
        """Live rules (agents/live_rules.py) switch the router between chunks; the held lines follow it."""
        self._router = router
        self.holds.router = router

    def clock(self, partition: int) -> int:
        raw = self.table.read(partition, CLOCK_KEY)
        return int(raw) if raw else 0

    def process_chunk(self, partition: int, sources: list[dict[str, Any]], lines: list[list[Any]],
                      payload: bytes | None = None) -> int:
        """Apply one parsed chunk of `partition`; return the number of lines forwarded.

        `payload` is the chunk's record as received (an ordered chunk). When every line goes to
        every sink and none was a replay, the sinks get that record as it is instead of a re-encoded
        copy: the same lines, sources and order, with no encode or compression per sink.
        """
        now = time.time_ns()
        read = self.table.read
        updates: dict[bytes, bytes | None] = {}
        fresh_all = fresh_lines(lines, lambda key: read(partition, key), now // 1_000_000_000, updates)
        if len(fresh_all) < len(lines):
            GROUP_DUPLICATES.inc(len(lines) - len(fresh_all))
        # each fresh line once, by this partition's one owner, exposed once its stream mark is stored
        counted = self.log_metrics.observe(fresh_all, sources) if self.log_metrics is not None else None
        routed = self._route(fresh_all, sources)  # in arrival order: sinks rely on per-stream order
        early: dict[str, list[list[Any]]] = defaultdict(list)  # held-overflow lines, out of stream order
        trace_rules = self.router.trace_rules
        by_trace = lines_by_trace(fresh_all) if trace_rules else {}
        self._apply_folds(partition, fold_traces(fresh_all, self.traces.sample_lines), sources, now, updates,
                          by_trace, early)
        count = sum(len(v) for v in routed.values())
        if payload is not None and self.router.default_all and len(fresh_all) == len(lines):
            outputs = [self.send_to_sink(sink_name, payload, partition) for sink_name in routed]
        else:
            outputs = forward(routed, sources, partition, self.send_to_sink, self.limit) if routed else []
        if early:
            outputs += forward(early, sources, partition, self.send_to_sink, self.limit, ordered=False)
        self._commit(partition, updates, outputs, counted, len(lines), count)
        return count

    def process_folded(self, partition: int, chunk: FoldedChunk, payload: bytes) -> int | None:
        """`process_chunk` of a record read for its folds alone (agents/folded_chunk.py), forwarded as
        received; None, with nothing done, when that does not apply: rules that route line by line or
        metrics read from lines (they need the lines), or a stream whose mark is at or past its first
        line in the chunk (a replay: the lines are deduped one by one). The caller then passes the lines
        to `process_chunk`, which gives the same result for the chunks this takes."""
        router = self.router
        if not router.default_all or self.log_metrics is not None:
            return None
        now = time.time_ns()
        now_s, read = now // 1_000_000_000, self.table.read
        updates: dict[bytes, bytes | None] = {}
        for stream_id, first, last in chunk.encoded.streams:  # `fresh_lines` when every line is fresh
            key = stream_key(stream_id)
            stored = read(partition, key)
            if stored and first <= decode_mark(stored)[0]:
                return None
            updates[key] = b"%d:%d" % (last, now_s)
        self._apply_folds(partition, chunk.encoded.folds, chunk.sources, now, updates, {}, {})
        lines = chunk.line_count
        outputs = [self.send_to_sink(sink_name, payload, partition) for sink_name in router.enabled] if lines else []
        count = lines * len(outputs)
        self._commit(partition, updates, outputs, None, lines, count)
        return count

    def _apply_folds(self, partition: int, folds: dict[str, Fold], sources: list[dict[str, Any]], now: int,
                     updates: dict[bytes, bytes | None], by_trace: dict[str, list[list[Any]]],
                     early: dict[str, list[list[Any]]]) -> None:
        """Add each trace's fold to its stored state (one read and one staged write per trace), and
        advance the partition's event clock."""
        index = self.deadline_index(partition)
        idle_now = self.idle.now(partition, now)  # `updated` is stamped on the idle clock
        read = self.table.read
        clock = max_time = self.clock(partition)
        trace_rules, sample_lines = self.router.trace_rules, self.traces.sample_lines
        gap_ns, longest_ns = self._gap_ns, self._longest_ns
        known = index.due  # every trace the partition stores or has staged (`deadline_index`)
        left: Iterable[str] = folds.keys()
        if not trace_rules:  # the traces new here are opened in C; held lines take this loop
            left, latest = open_new_traces(folds, index, sources, sample_lines, now, idle_now, gap_ns, longest_ns,
                                           updates)
            if latest is not None and latest > max_time:
                max_time = latest
        for trace_id in left:  # untraced lines are not grouped
            fold = folds[trace_id]
            key = trace_id.encode()
            # a trace the index does not hold is new: no store read (about 400 a second on a live node)
            stored = read(partition, key) if trace_id in known or b"\x00" in key else None
            state = decode_state(stored) if stored else new_state(trace_id, now)
            apply_fold(state, fold, sources, sample_lines, idle_now)
            if state["last"] > max_time:
                max_time = state["last"]
            if trace_rules:
                self.holds.hold(partition, state, by_trace[trace_id], sources, early)
            index.set(trace_id, *deadlines_ns(state, gap_ns, longest_ns))
            updates[key] = encode_state(state)
        if max_time > clock:
            updates[CLOCK_KEY] = str(max_time).encode()
        if trace_rules:
            updates[HELD_KEY] = str(self.holds.count(partition)).encode()

    def _commit(self, partition: int, updates: dict[bytes, bytes | None], outputs: list[Any],
                counted: Counted | None, lines: int, routed: int) -> None:
        self.table.commit_when_acked(partition, updates, outputs)
        if counted is not None and counted.tallies:  # a revoke dropping the update drops them too
            self.table.after_persisted(partition, counted)
        LINES_GROUPED.inc(lines)
        LINES_ROUTED.inc(routed)
        self._publish_open()

    def deadline_index(self, partition: int) -> DeadlineIndex:
        """The partition's deadline index, rebuilt from its stored traces when missing.

        It holds every trace the partition stores or has staged: it is built from them (keys with a
        NUL byte aside, which `traces` skips and `process_chunk` therefore always reads), every
        update sets its trace, and only a close, which stages the trace's delete, discards one.
        Writes that bypass it (changelog recovery, a standby's replication) drop the partition's
        index (TraceWindowTable.apply_changelog_batch), and closes wait until recovery is over
        (app/faust_app.py, `table_restored`), so it is never built from a half-restored store."""
        index = self.table.deadline_indexes.get(partition)
        if index is None:
            states = [(key.decode(), decode_state(value)) for key, value in self.table.traces(partition)]
            gap_ns, longest_ns = self._gap_ns, self._longest_ns
            index = self.table.deadline_indexes[partition] = DeadlineIndex(
                (trace_id, *deadlines_ns(state, gap_ns, longest_ns)) for trace_id, state in states)
            if states:  # the time a worker was down, or the partition elsewhere, is not idle time
                self.idle.resume(partition, max(state["updated"] for _, state in states))
        return index

    def _route(self, lines: list[list[Any]], sources: list[dict[str, Any]]) -> dict[str, list[list[Any]]]:
        if not lines:
            return {}
        if self.router.default_all:
            return dict.fromkeys(self.router.enabled, lines)
        routed: dict[str, list[list[Any]]] = defaultdict(list)
        for line in lines:
            for sink_name, entry in self.router.line_deliveries(line, sources):  # after the rule's transforms
                routed[sink_name].append(entry)
        return routed

    # -- closing ---------------------------------------------------------------------------
    def close_overdue(self, partition: int, now_ns: int | None = None, most: int | None = None) -> int:
        """Close the traces of `partition` past their deadline (at most `most`, the earliest first: a
        caller closing a burst in slices leaves the event loop to others between them); return how
        many closed.

        Idle deadlines are compared with the partition's idle clock (or `now_ns`), event deadlines
        with its stream time: the highest event time seen, less the allowed lateness.
        """
        now = time.time_ns()
        index = self.deadline_index(partition)
        idle_now, watermark = self._deadlines_now(partition, now, now_ns)
        updates: dict[bytes, bytes | None] = {}
        summaries: list[bytes] = []
        routed: dict[str, list[list[Any]]] = defaultdict(list)
        held_sources: list[dict[str, Any]] = []
        causes: dict[str, int] = defaultdict(int)
        sent_before = self.already_sent.get(partition, set())
        overdue = index.overdue(idle_now, watermark, most)
        keys = [trace_id.encode() for trace_id in overdue]
        for (trace_id, cause), key, stored in zip(overdue.items(), keys, self.table.read_closing(partition, keys),
                                                  strict=True):
            index.discard(trace_id)
            if stored is None:  # closed already (an index rebuilt from a store with staged deletes)
                continue
            updates[key] = None
            closing = spliced_summary(stored, trace_id, cause, now)
            if closing is None:
                state = decode_state(stored)
                self.holds.release(partition, state, routed, held_sources)
                closing = encode_summary(state, cause, now)
            record, close_id = closing
            if close_id in sent_before:  # sent before a crash; its delete was never stored
                sent_before.discard(close_id)
                continue
            summaries.append(record)
            causes[cause] += 1
        for cause, count in causes.items():
            TRACES_CLOSED.labels(cause).inc(count)
        if self.router.trace_rules and summaries:
            updates[HELD_KEY] = str(self.holds.count(partition)).encode()
        self._sweep_stream_marks(partition, now, updates)
        closed = self._emit_closed(partition, summaries)
        outputs = list(closed)
        if routed:  # released held lines: trace by trace, so not in per-stream order
            outputs.extend(forward(routed, held_sources, partition, self.send_to_sink, self.limit, ordered=False))
        self.table.commit_when_acked(partition, updates, outputs, finalize=lambda: closed_upto(closed))
        self._publish_open()
        return len(summaries)

    def overdue_left(self, partition: int) -> bool:
        """Whether `close_overdue` (no `now_ns`) may find a trace of `partition` to close now."""
        return self.deadline_index(partition).any_overdue(*self._deadlines_now(partition, time.time_ns()))

    def _deadlines_now(self, partition: int, now: int, now_ns: int | None = None) -> tuple[int, int]:
        """(idle clock, event-time watermark) of `partition` that deadlines are compared with."""
        idle_now = self.idle.now(partition, now) if now_ns is None else now_ns
        return idle_now, self.clock(partition) - int(self.traces.allowed_lateness * 1e9)

    def _emit_closed(self, partition: int, summaries: list[bytes]) -> list[Any]:
        """Send encoded closed-trace summaries as few records as the message size allows (never one
        per trace)."""
        outputs: list[Any] = []
        batch: list[bytes] = []
        size = 0
        for item in summaries:
            if batch and size + len(item) + 1 > self.limit:
                outputs.append(self.send_closed(join_closed_traces(batch), partition))
                batch, size = [], 0
            batch.append(item)
            size += len(item) + 1
        if batch:
            outputs.append(self.send_closed(join_closed_traces(batch), partition))
        return outputs

    def _sweep_stream_marks(self, partition: int, now: int, updates: dict[bytes, bytes | None]) -> None:
        """Once a minute, forget the dedupe marks of streams idle past `traces.stream_retention`."""
        if now / 1e9 - self._marks_swept.get(partition, 0.0) < 60:
            return
        self._marks_swept[partition] = now / 1e9
        read = self.table.read  # a mark staged since its last persist is as fresh as its staged value
        stored = ((key, read(partition, key)) for key in list(self.table.scan(partition, STREAM_PREFIX)))
        marks = ((key, value) for key, value in stored if value is not None)
        for key in expired(marks, now // 1_000_000_000, self.traces.stream_retention):
            updates[key] = None

    def forget(self, partitions: list[int]) -> None:
        self.holds.forget(partitions)
        for partition in partitions:
            self.already_sent.pop(partition, None)
        self.idle.forget(partitions)
        self.table.forget_staged(partitions)
        self._publish_open()

    def open_traces(self) -> int:
        return sum(len(index) for index in self.table.deadline_indexes.values())

    def _publish_open(self) -> None:
        OPEN_TRACES.set(self.open_traces())


def closed_upto(closed: list[Any]) -> dict[bytes, bytes | None]:
    """CLOSED_UPTO_KEY for a close whose summary records are all acked: the offset after the last."""
    offsets = [getattr(fut.result(), "offset", None) for fut in closed]
    known = [offset for offset in offsets if isinstance(offset, int)]
    return {CLOSED_UPTO_KEY: str(max(known) + 1).encode()} if known else {}
