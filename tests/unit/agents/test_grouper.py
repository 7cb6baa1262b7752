"""TraceGrouper on an in-memory store: grouping, closing, restarts and replays.

A dict stands in for the RocksDB-backed TraceWindowTable (which needs a running faust App and is
exercised by tests/integration/worker); it persists at once, like a table whose outputs were acked.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, cast

import orjson

from agents.grouper import TraceGrouper, closed_upto
from agents.log_metrics import LogMetrics
from agents.routing import Router
from core.codec import compressor
from core.log_metric_series import LogMetricsCollector
from core.log_metric_settings import LogMetricSettings
from core.models import ParsedChunk, decode_closed_traces
from core.settings import Settings
from tables.deadline_index import DeadlineIndex
from tables.trace_table import CLOSED_UPTO_KEY, FIRST_TRACE_KEY, TraceWindowTable

S = 1_000_000_000
FAR = 4_000_000_000 * S  # a wall clock far past every deadline (still an int64)
SOURCES = [{"kind": "file", "pod": "p1"}]


class MemoryTraceTable:
    def __init__(self) -> None:
        self.stores: dict[int, dict[bytes, bytes]] = {}
        self.deadline_indexes: dict[int, DeadlineIndex] = {}
        self.held: list[Callable[[], object]] | None = None  # after_persisted callbacks not run yet

    def db(self, partition: int) -> dict[bytes, bytes]:
        return self.stores.setdefault(partition, {})

    def read(self, partition: int, key: bytes) -> bytes | None:
        return self.db(partition).get(key)

    def read_closing(self, partition: int, keys: list[bytes]) -> list[bytes | None]:
        return [self.read(partition, key) for key in keys]

    def scan(self, partition: int, prefix: bytes) -> Iterator[bytes]:
        return iter(sorted(k for k in self.db(partition) if k.startswith(prefix)))

    def traces(self, partition: int) -> Iterator[tuple[bytes, bytes]]:
        return iter([(k, v) for k, v in sorted(self.db(partition).items()) if k >= FIRST_TRACE_KEY])

    def commit_when_acked(self, partition: int, updates: dict[bytes, bytes | None], outputs: Any,
                          finalize: Any = None) -> None:
        store = self.db(partition)
        for key, value in updates.items():
            if value is None:
                store.pop(key, None)
            else:
                store[key] = value

    def after_persisted(self, partition: int, callback: Callable[[], object]) -> None:
        """Updates are stored at once: the callback runs now, unless `held` keeps it (a persist to come)."""
        if self.held is None:
            callback()
        else:
            self.held.append(callback)

    def forget_staged(self, partitions: list[int]) -> None:
        for partition in partitions:
            self.deadline_indexes.pop(partition, None)


class Done:
    def done(self) -> bool:
        return True


def make(table: MemoryTraceTable, **traces: Any) -> tuple[TraceGrouper, list[tuple[str, bytes]], list[bytes]]:
    settings = Settings(traces={"gap": 30, "allowed_lateness": 5, **traces})
    sent: list[tuple[str, bytes]] = []
    closed: list[bytes] = []
    grouper = TraceGrouper(cast(TraceWindowTable, table), Router(settings.routing, ["file"]), settings,
                           lambda sink, value, partition: (sent.append((sink, value)), Done())[1],
                           lambda value, partition: (closed.append(value), Done())[1])
    return grouper, sent, closed


def line(pos: int, trace: str, ts: int, level: str = "info", sid: str = "s1") -> list[Any]:
    return [0, sid, pos, ts, trace, level, "svc", f'{{"n":{pos}}}', "stdout"]


def summaries(closed: list[bytes]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for record in closed:
        for item in decode_closed_traces(record):
            assert item["trace"] not in out, "a trace was closed twice"
            out[item["trace"]] = item
    return out


def test_lines_grouped_routed_and_closed_when_idle() -> None:
    grouper, sent, closed = make(MemoryTraceTable())
    assert grouper.process_chunk(0, SOURCES, [line(1, "a", 10 * S), line(2, "b", 11 * S),
                                              line(3, "a", 12 * S, "error")]) == 3
    assert [len(ParsedChunk.decode(v).lines) for _, v in sent] == [3]
    assert grouper.open_traces() == 2
    assert grouper.close_overdue(0, now_ns=0) == 0
    assert grouper.close_overdue(0, now_ns=FAR) == 2
    got = summaries(closed)
    assert got["a"]["count"] == 2 and got["a"]["level"] == "error" and got["a"]["cause"] == "idle"
    assert got["a"]["first"] == 10 * S and got["a"]["last"] == 12 * S
    assert grouper.open_traces() == 0 and grouper.close_overdue(0, now_ns=FAR) == 0


def test_a_burst_of_closes_in_slices_closes_each_trace_once() -> None:
    grouper, _, closed = make(MemoryTraceTable())
    traces = [f"t{n}" for n in range(7)]
    assert grouper.process_chunk(0, SOURCES, [line(n, t, (10 + n) * S) for n, t in enumerate(traces)]) == 7
    assert not grouper.overdue_left(0)  # nothing is due yet by the wall clock
    counts = []
    while True:
        counts.append(grouper.close_overdue(0, now_ns=FAR, most=3))
        if not counts[-1]:
            break
    assert counts == [3, 3, 1, 0]
    assert sorted(summaries(closed)) == sorted(traces) and grouper.open_traces() == 0


def test_event_time_close_honours_the_allowed_lateness() -> None:
    grouper, _, closed = make(MemoryTraceTable())
    grouper.process_chunk(0, SOURCES, [line(1, "old", 100 * S)])
    grouper.process_chunk(0, SOURCES, [line(2, "new", 134 * S)])  # clock 134 s: old due at 130 + 5 lateness
    assert grouper.close_overdue(0) == 0
    grouper.process_chunk(0, SOURCES, [line(3, "newer", 136 * S)])
    assert grouper.close_overdue(0) == 1
    assert summaries(closed)["old"]["cause"] == "event_time"


def test_restart_rebuilds_the_index_and_closes_restored_traces_once() -> None:
    table = MemoryTraceTable()
    grouper, _, _ = make(table)
    grouper.process_chunk(0, SOURCES, [line(i, f"t{i}", 10 * S) for i in range(1, 6)])
    restarted, _, closed = make(table)  # same store, empty memory: as after a restart or rebalance
    table.deadline_indexes.clear()
    assert restarted.open_traces() == 0
    assert restarted.close_overdue(0, now_ns=FAR) == 5
    assert restarted.close_overdue(0, now_ns=FAR) == 0
    assert sorted(summaries(closed)) == [f"t{i}" for i in range(1, 6)]


class CountingTable(MemoryTraceTable):
    """Counts the reads of trace keys (what would be RocksDB gets past the read cache)."""

    def __init__(self) -> None:
        super().__init__()
        self.trace_reads: list[bytes] = []

    def read(self, partition: int, key: bytes) -> bytes | None:
        if key >= FIRST_TRACE_KEY:
            self.trace_reads.append(key)
        return super().read(partition, key)


def test_new_traces_are_not_read_from_the_store_and_known_ones_are() -> None:
    table = CountingTable()
    grouper, _, _ = make(table)
    grouper.process_chunk(0, SOURCES, [line(1, "a", 10 * S), line(2, "b", 11 * S)])
    assert table.trace_reads == []  # neither trace was in the index: both new, no read
    grouper.process_chunk(0, SOURCES, [line(3, "a", 12 * S), line(4, "c", 13 * S)])
    assert table.trace_reads == [b"a"]
    restarted, _, closed = make(table)  # same store, empty memory: the index is rebuilt from the store
    table.deadline_indexes.clear()
    restarted.process_chunk(0, SOURCES, [line(5, "a", 14 * S), line(6, "b", 15 * S), line(7, "d", 16 * S)])
    assert table.trace_reads == [b"a", b"a", b"b"]
    assert restarted.close_overdue(0, now_ns=FAR) == 4
    assert {trace: item["count"] for trace, item in summaries(closed).items()} == {"a": 3, "b": 2, "c": 1, "d": 1}


def test_a_closed_trace_seen_again_starts_a_new_state() -> None:
    table = CountingTable()
    grouper, _, closed = make(table)
    grouper.process_chunk(0, SOURCES, [line(1, "a", 10 * S), line(2, "a", 11 * S)])
    assert grouper.close_overdue(0, now_ns=FAR) == 1
    grouper.process_chunk(0, SOURCES, [line(3, "a", 12 * S)])
    assert table.trace_reads == [b"a"]  # the close read it; the new line did not
    assert grouper.close_overdue(0, now_ns=FAR) == 1
    assert [item["count"] for record in closed for item in decode_closed_traces(record)] == [2, 1]


def test_a_trace_id_with_a_nul_byte_is_always_read() -> None:
    """The real table's `traces` skips keys holding a NUL byte (faust's own offset key has one), so
    the rebuilt index misses such a trace: its stored state must still be read, not replaced."""
    table = CountingTable()
    grouper, _, _ = make(table)
    grouper.process_chunk(0, SOURCES, [line(1, "x\x00y", 10 * S)])
    table.deadline_indexes[0] = DeadlineIndex()  # rebuilt without it, as TraceWindowTable.traces does
    grouper.process_chunk(0, SOURCES, [line(2, "x\x00y", 11 * S)])
    assert table.trace_reads == [b"x\x00y", b"x\x00y"]
    assert orjson.loads(table.db(0)[b"x\x00y"])["count"] == 2


def test_summaries_sent_before_a_crash_are_not_sent_again() -> None:
    """The close ids read back from traces.closed after a rebalance: those traces are deleted only."""
    table = MemoryTraceTable()
    grouper, _, first_closed = make(table)
    grouper.process_chunk(0, SOURCES, [line(i, f"t{i}", 10 * S) for i in range(1, 6)])
    stored = dict(table.db(0))
    assert grouper.close_overdue(0, now_ns=FAR) == 5
    sent = {item["close_id"] for item in summaries(first_closed).values() if item["trace"] in ("t1", "t4")}
    table.stores[0] = stored  # the crash: summaries acked, the deletes never stored
    table.deadline_indexes.clear()
    restarted, _, closed = make(table)
    restarted.already_sent[0] = set(sent)
    assert restarted.close_overdue(0, now_ns=FAR) == 3
    assert sorted(summaries(closed)) == ["t2", "t3", "t5"]
    assert not [key for key in table.db(0) if key >= FIRST_TRACE_KEY], "every trace is gone from the table"


def test_closed_upto_is_the_offset_after_the_last_acked_summary() -> None:
    class Acked:
        def __init__(self, offset: int) -> None:
            self.offset = offset

        def result(self) -> Acked:
            return self

    assert closed_upto([Acked(7), Acked(41), Acked(12)]) == {CLOSED_UPTO_KEY: b"42"}
    assert closed_upto([]) == {}


def test_replayed_lines_are_not_counted_or_forwarded_twice() -> None:
    grouper, sent, closed = make(MemoryTraceTable())
    chunk = [line(1, "a", 10 * S), line(2, "a", 11 * S)]
    grouper.process_chunk(0, SOURCES, chunk)
    assert grouper.process_chunk(0, SOURCES, chunk + [line(3, "a", 12 * S)]) == 1
    grouper.close_overdue(0, now_ns=FAR)
    assert summaries(closed)["a"]["count"] == 3
    assert sum(len(ParsedChunk.decode(v).lines) for _, v in sent) == 3


def test_large_output_split_under_the_message_limit() -> None:
    grouper, sent, _ = make(MemoryTraceTable())
    grouper.limit = 2000
    grouper.process_chunk(0, SOURCES, [line(i, f"t{i}", 10 * S) for i in range(1, 41)])
    chunks = [ParsedChunk.decode(v) for _, v in sent]
    assert len(chunks) > 1 and all(len(v) <= 2000 for _, v in sent)
    assert [entry[2] for c in chunks for entry in c.lines] == list(range(1, 41))


def test_fresh_chunk_is_forwarded_as_received_and_a_replay_is_re_encoded() -> None:
    """With default routing the record goes to the sinks untouched (no encode or compression per sink);
    once any line is a replay, only the fresh lines are encoded and sent."""
    grouper, sent, _ = make(MemoryTraceTable())
    first = [line(1, "a", 10 * S), line(2, "b", 11 * S)]
    received = compressor("lz4")(ParsedChunk(SOURCES, first).encode())
    grouper.process_chunk(0, SOURCES, first, received)
    assert sent == [("file", received)]
    again = first + [line(3, "a", 12 * S)]
    grouper.process_chunk(0, SOURCES, again, compressor("lz4")(ParsedChunk(SOURCES, again).encode()))
    assert [entry[2] for entry in ParsedChunk.decode(sent[1][1]).lines] == [3]


def test_rules_turn_off_forwarding_as_received() -> None:
    settings = Settings(traces={"gap": 30}, routing={"rules": [{"name": "errors", "sinks": ["file"],
                                                                "level_at_least": "error"}]})
    sent: list[tuple[str, bytes]] = []
    grouper = TraceGrouper(cast(TraceWindowTable, MemoryTraceTable()), Router(settings.routing, ["file"]), settings,
                           lambda sink, value, partition: (sent.append((sink, value)), Done())[1],
                           lambda value, partition: Done())
    lines = [line(1, "a", 10 * S, "error"), line(2, "a", 11 * S, "info")]
    grouper.process_chunk(0, SOURCES, lines, ParsedChunk(SOURCES, lines).encode())
    assert [entry[2] for _, value in sent for entry in ParsedChunk.decode(value).lines] == [1]


def make_with_trace_rule(table: MemoryTraceTable, policy: str) -> tuple[TraceGrouper, list[tuple[str, bytes]],
                                                                          list[bytes]]:
    settings = Settings(traces={"gap": 30, "allowed_lateness": 5, "max_held_per_trace": 2, "held_overflow": policy},
                        routing={"rules": [{"name": "errors", "mode": "trace", "sinks": ["file"],
                                            "level_at_least": "error"}]})
    sent: list[tuple[str, bytes]] = []
    closed: list[bytes] = []
    grouper = TraceGrouper(cast(TraceWindowTable, table), Router(settings.routing, ["file"]), settings,
                           lambda sink, value, partition: (sent.append((sink, value)), Done())[1],
                           lambda value, partition: (closed.append(value), Done())[1])
    return grouper, sent, closed


def sent_positions(sent: list[tuple[str, bytes]]) -> list[int]:
    return sorted(line[2] for _, value in sent for line in ParsedChunk.decode(value).lines)


def test_overflow_is_released_by_default_and_said_in_the_summary(caplog: Any) -> None:
    assert Settings().traces.held_overflow == "release"
    grouper, sent, closed = make_with_trace_rule(MemoryTraceTable(), "release")
    grouper.process_chunk(0, SOURCES, [line(i, "hot", 10 * S) for i in range(1, 4)])
    grouper.process_chunk(0, SOURCES, [line(i, "hot", 10 * S) for i in range(4, 6)])
    assert sent_positions(sent) == [1, 2, 3, 4, 5]  # held lines and every later one, unselected
    assert grouper.holds.count(0) == 0
    grouper.close_overdue(0, now_ns=FAR)
    summary = summaries(closed)["hot"]
    assert summary["overflow"] == "released" and summary["held_overflow"] == 3 and summary["count"] == 5
    warnings = [r for r in caplog.records if "max_held_per_trace=2" in r.getMessage()]
    assert len(warnings) == 1 and "hot" in warnings[0].getMessage()  # once per trace


def test_drop_stays_an_explicit_choice() -> None:
    grouper, sent, closed = make_with_trace_rule(MemoryTraceTable(), "drop")
    grouper.process_chunk(0, SOURCES, [line(1, "hot", 10 * S, "error")] + [line(i, "hot", 10 * S) for i in range(2, 6)])
    assert sent == []
    grouper.close_overdue(0, now_ns=FAR)
    assert sent_positions(sent) == [1, 2]  # the held lines of an error trace; the rest were dropped
    summary = summaries(closed)["hot"]
    assert summary["overflow"] == "dropped" and summary["held_overflow"] == 3


def test_forward_is_read_as_release() -> None:
    assert Settings(traces={"held_overflow": "forward"}).traces.held_overflow == "release"


def test_log_metrics_count_each_fresh_line_once() -> None:
    """A replayed chunk (a parse stage redoing records after a crash) is not counted again."""
    collector = LogMetricsCollector()
    grouper, _, _ = make(MemoryTraceTable())
    grouper.log_metrics = LogMetrics(LogMetricSettings(rules=[
        {"name": "logweave_log_errors_total", "type": "counter", "match": {"level_at_least": "error"},
         "labels": ["service"]}]), collector)
    chunk = [line(1, "a", 10 * S, "error"), line(2, "a", 11 * S)]
    grouper.process_chunk(0, SOURCES, chunk)
    grouper.process_chunk(0, SOURCES, chunk + [line(3, "b", 12 * S, "fatal")])
    assert collector.stores["logweave_log_errors_total"].counts == {("svc",): 2}


def test_log_metrics_are_exposed_only_once_their_chunks_update_is_persisted() -> None:
    """A revoke drops the table updates not yet persisted, and the partition's next owner counts their lines
    again: counted at once, they would stay counted here too. They show once the update is persisted."""
    collector = LogMetricsCollector()
    table = MemoryTraceTable()
    table.held = []
    grouper, _, _ = make(table)
    grouper.log_metrics = LogMetrics(LogMetricSettings(rules=[
        {"name": "logweave_log_errors_total", "type": "counter", "match": {"level_at_least": "error"},
         "labels": ["service"]}]), collector)
    grouper.process_chunk(0, SOURCES, [line(1, "a", 10 * S, "error"), line(2, "a", 11 * S, "error")])
    assert collector.stores["logweave_log_errors_total"].counts == {}
    persisted = table.held
    table.held = []
    for callback in persisted:
        callback()
    assert collector.stores["logweave_log_errors_total"].counts == {("svc",): 2}
    grouper.process_chunk(0, SOURCES, [line(3, "a", 12 * S, "error")])
    table.held = []  # the revoke: its update (and the callback) dropped
    assert collector.stores["logweave_log_errors_total"].counts == {("svc",): 2}
