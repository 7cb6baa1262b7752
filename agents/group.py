"""The group agent: logs.parsed -> trace table -> sink topics; a timer closes overdue traces."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from faust.types import TP

from agents.backlog import SourceProgress
from agents.batching import Linger, SendNow, nothing_waiting
from agents.closed_tail import close_ids_after
from agents.folded_chunk import FoldedChunk, read_parsed
from agents.grouper import TraceGrouper
from agents.log_metrics import LogMetrics, log_metrics_for
from agents.routing import Router
from agents.stage import StageContext
from core import topics
from core.codec import compressor, is_compressed
from core.metrics import CHUNKS, FLUSHES, GROUP_FOLDED
from core.models import P_SRC, ParsedChunk
from tables.trace_table import CLOSED_UPTO_KEY

log = logging.getLogger(__name__)
GroupChunk = ParsedChunk | FoldedChunk  # a logs.parsed record as read (agents/folded_chunk.py)
CHUNKS_IN, FLUSHED = CHUNKS.labels("group"), FLUSHES.labels("group")


def register(ctx: StageContext) -> TraceGrouper:
    """Attach the group agent and its closing timer to the App; returns the grouper it drives."""
    app, settings, channels = ctx.app, ctx.settings, ctx.channels
    table = ctx.trace_table()
    compress = compressor(settings.kafka.payload_codec)

    def send_to_sink(sink_name: str, value: bytes, partition: int) -> Any:
        """Send a chunk record to a sink topic, compressing it unless it is a record forwarded as received."""
        return channels.sink(sink_name).send_soon(value=value if is_compressed(value) else compress(value),
                                                  partition=partition)

    def send_closed(value: bytes, partition: int) -> Any:
        return channels.traces_closed().send_soon(value=compress(value), partition=partition)

    live = ctx.rules
    router = live.router if live is not None else Router(settings.routing, settings.sinks.enabled)
    grouper = TraceGrouper(table, router, settings, send_to_sink, send_closed)
    grouper.log_metrics = live.metrics_at(None) if live is not None else log_metrics_for(settings.log_metrics)

    @app.agent(channels.parsed(), name="group")
    async def group(stream: Any) -> None:
        """Acks each chunk only once its table update is persisted (which waits for its outputs' acks):
        faust would otherwise commit the input offset first, and a crash in between would lose the
        update (a trace summary missing lines) although its lines reached the sinks."""
        if live is not None:  # the versions published before this worker started are read first
            await live.wait_loaded("group")
        # the rules version in effect when a chunk was collected, as on every worker (docs/rules.md)
        router_for = (lambda chunk: live.router_at(chunk.collected_ns)) if live is not None else None
        metrics_for = (lambda chunk: live.metrics_at(chunk.collected_ns)) if live is not None else None
        def let_go(event: Any) -> None:  # no longer awaited by faust's revoke, and never acked
            app.consumer.unacked.discard(event.message)

        batch = GroupBatch(grouper, ctx.progress, settings.worker.group_batch_lines, router_for, metrics_for,
                           sent=SendNow(app).after_buffer, let_go=let_go)
        linger = Linger(settings.worker.group_linger, batch.flush_soon)
        batch.linger = linger
        table.fence_listeners.append(batch.drop)  # a revoke: records held here are read again by their next owner
        lingering = asyncio.ensure_future(linger.run())
        waiting = batch.idle = nothing_waiting(stream)
        try:
            async for event in stream.noack().events():
                batch.add(event)
                linger.started()
                if batch.lines >= batch.batch_lines or linger.due() or waiting():
                    batch.flush()
        finally:
            lingering.cancel()

    @app.timer(settings.traces.close_check_interval, name="close_overdue_traces")
    async def close_overdue_traces() -> None:
        """Close overdue traces of the partitions this worker actively owns (startup included)."""
        if not ctx.table_restored() or table.fenced:  # closes wait for the rebalance and the restore
            return
        if live is not None and not live.loaded:  # and for the rules versions published before the start
            return
        parsed_name = settings.topic(topics.PARSED)
        actives = app.assignor.assigned_actives()
        owned = sorted(tp.partition for tp in actives if tp.topic == parsed_name)
        stale = [p for p in table.deadline_indexes if p not in owned]
        if stale:
            grouper.forget(stale)
        grouper.idle.tick(caught_up_partitions(ctx, actives, owned))
        if live is not None:  # closing has no chunk: the version in effect now, the same on every worker
            grouper.router = live.router
        for partition in owned:
            if partition not in table.tail_checked:
                await read_back_sent_summaries(ctx, grouper, partition)
            if not await close_in_slices(grouper, partition, lambda: table.fenced or table.rebalance_unhandled()):
                return  # ownership is changing: the next tick closes what this one owns then

    return grouper


def caught_up_partitions(ctx: StageContext, actives: set[TP], owned: list[int]) -> list[int]:
    """The owned logs.parsed partitions with no backlog: every record up to the high watermark is
    processed there and in every logs.raw partition this worker parses (their lines may be on the way)."""
    consumer, progress = ctx.app.consumer, ctx.progress
    raw_name, parsed_name = ctx.settings.topic(topics.RAW), ctx.settings.topic(topics.PARSED)
    if not progress.caught_up(consumer, [tp for tp in actives if tp.topic == raw_name]):
        return []
    return [p for p in owned if progress.lag(consumer, TP(parsed_name, p)) == 0]


async def read_back_sent_summaries(ctx: StageContext, grouper: TraceGrouper, partition: int) -> None:
    """After a rebalance: the close ids sent but not stored as closed (agents/closed_tail.py)."""
    settings, table = ctx.settings, ctx.trace_table()
    upto = table.read(partition, CLOSED_UPTO_KEY)
    found = await close_ids_after(settings, settings.topic(topics.TRACES_CLOSED), partition,
                                  int(upto) if upto else None)
    if found:
        log.info("partition %d: %d trace summaries were sent before a crash; not sending them again",
                 partition, len(found))
    grouper.already_sent[partition] = found
    table.tail_checked.add(partition)


CLOSE_SLICE = 2_000  # traces closed per turn of the event loop: ~40 ms of closing at ~20 us a trace


async def close_in_slices(grouper: TraceGrouper, partition: int, changing: Callable[[], bool],
                          slice_traces: int = CLOSE_SLICE) -> bool:
    """Close the partition's overdue traces, at most `slice_traces` per turn of the event loop: a burst (a
    restart, a quiet spell after a busy one: 100,000 traces took 1.6 s) leaves fetches, acks and drains to
    run between slices. False when ownership began `changing` before all were closed."""
    grouper.close_overdue(partition, most=slice_traces)
    while grouper.overdue_left(partition):
        await asyncio.sleep(0)
        if changing():
            return False
        grouper.close_overdue(partition, most=slice_traces)
    return True

MERGE_BELOW = 500  # lines: a parsed chunk this large is applied on its own (and may be forwarded as received)


class GroupBatch:
    """The logs.parsed records the group agent read back to back, per partition.

Parse already lingers, so group does not wait for more: it applies what it holds as soon as no
further record waits, or after `worker.group_linger` or `worker.group_batch_lines` under a backlog.

    Consecutive small chunks of a partition are applied as one (one table write, one changelog
    record and one record per sink instead of one each); lines keep their order, and their source
    indexes move to the merged source list. Each record is acked once the table update it took part
    in is persisted, which waits for its outputs' acks and the table's persist interval. The stage's
    progress (what the idle clock asks: do lines wait to be applied?) advances once its lines are in
    the trace states, staged: a crash before the persist re-applies them to the stored states, and
    the idle clock resumes from the stored stamps (agents/idle_clock.py).
    """

    def __init__(self, grouper: TraceGrouper, progress: SourceProgress, batch_lines: int,
                 router_for: Callable[[GroupChunk], Router] | None = None,
                 metrics_for: Callable[[GroupChunk], LogMetrics | None] | None = None,
                 sent: Callable[[], None] | None = None, let_go: Callable[[Any], object] = lambda event: None) -> None:
        self.grouper, self.progress, self.batch_lines = grouper, progress, batch_lines
        # an input record dropped unacked by a revoke: faust's revoke waits for every record a stream
        # took to be acked, and these never will be (their next owner reads them again)
        self.let_go = let_go
        self.sent = sent  # called after a flush's sends when no record waits (ends the producer's linger)
        self.idle: Callable[[], bool] = lambda: True  # no further logs.parsed record waits (set by the agent)
        self.router_for = router_for  # live rules: the version a chunk is routed by; None: settings only
        self.metrics_for = metrics_for  # and the metric rules it is counted by (the same version)
        self.pending: dict[int, list[tuple[Any, GroupChunk]]] = {}
        self.lines = 0
        self.linger: Linger | None = None

    def add(self, event: Any) -> None:
        CHUNKS_IN.inc()
        chunk = read_parsed(event.value, self.grouper.traces.sample_lines)
        self.pending.setdefault(event.message.partition, []).append((event, chunk))
        self.lines += chunk.line_count

    def drop(self) -> None:
        """Forget the records held for the next flush, unacked: a revoke began, and whoever owns their
        partitions next reads them again from the committed offsets (tables/trace_table.py, `fence`)."""
        for items in self.pending.values():
            for event, _ in items:
                self.let_go(event)
        self.pending, self.lines = {}, 0
        if self.linger is not None:
            self.linger.flushed()

    async def flush_soon(self) -> None:
        self.flush()

    def flush(self) -> None:
        pending, self.pending, self.lines = self.pending, {}, 0
        if self.linger is not None:
            self.linger.flushed()
        if pending:
            FLUSHED.inc()
        for partition, items in pending.items():
            for run in runs(items, self.router_for):
                self._apply(partition, run)
        if pending and self.sent is not None and self.idle():  # under a backlog the next flush comes soon
            self.sent()

    def _apply(self, partition: int, run: list[tuple[Any, GroupChunk]]) -> None:
        if self.router_for is not None:  # a run never spans two rules versions (runs())
            self.grouper.router = self.router_for(run[0][1])
        if self.metrics_for is not None:
            self.grouper.log_metrics = self.metrics_for(run[0][1])
        if len(run) == 1:
            event, chunk = run[0]
            folded = self.grouper.process_folded(partition, chunk, event.value) \
                if isinstance(chunk, FoldedChunk) else None
            if folded is not None:
                GROUP_FOLDED.inc()
            else:
                self.grouper.process_chunk(partition, chunk.sources, chunk.lines,
                                           event.value if chunk.ordered else None)
        else:
            sources, lines = merge_chunks([chunk for _, chunk in run])
            self.grouper.process_chunk(partition, sources, lines)
        events = [event for event, _ in run]
        for event in events:
            self.progress.processed(event.message.tp, event.message.offset)
        self.grouper.table.after_persisted(partition, InputAcks(events, self.let_go))


def runs(items: list[tuple[Any, GroupChunk]],
         router_for: Callable[[GroupChunk], Router] | None = None) -> list[list[tuple[Any, GroupChunk]]]:
    """Consecutive small ordered chunks routed by the same rules version together; a large or
    unordered chunk on its own."""
    out: list[list[tuple[Any, GroupChunk]]] = []
    current: list[tuple[Any, GroupChunk]] = []
    current_router: Router | None = None
    for item in items:
        chunk = item[1]
        router = router_for(chunk) if router_for is not None else None
        if current and router is not current_router:
            out.append(current)
            current = []
        current_router = router
        if chunk.line_count >= MERGE_BELOW or not chunk.ordered:
            if current:
                out.append(current)
                current = []
            out.append([item])
        else:
            current.append(item)
    if current:
        out.append(current)
    return out


def merge_chunks(chunks: list[GroupChunk]) -> tuple[list[dict[str, Any]], list[list[Any]]]:
    """One source list and the lines of every chunk in order, source indexes moved (lines mutated)."""
    sources: list[dict[str, Any]] = []
    lines: list[list[Any]] = []
    for chunk in chunks:
        base = len(sources)
        if base:
            for line in chunk.lines:
                line[P_SRC] += base
        sources.extend(chunk.sources)
        lines.extend(chunk.lines)
    return sources, lines


class InputAcks:
    """Acks a run's input records once its table update is persisted; if a revoke drops the update
    instead (`dropped`), lets them go unacked."""

    __slots__ = ("events", "let_go")

    def __init__(self, events: list[Any], let_go: Callable[[Any], object]) -> None:
        self.events, self.let_go = events, let_go

    def __call__(self) -> None:
        for event in self.events:
            event.ack()

    def dropped(self) -> None:
        for event in self.events:
            self.let_go(event)
