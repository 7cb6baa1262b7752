"""The group agent: logs.parsed -> trace table -> sink topics; a timer closes overdue traces."""

from __future__ import annotations

import logging
from typing import Any

from faust.types import TP

from agents.closed_tail import close_ids_after
from agents.grouper import TraceGrouper
from agents.routing import Router
from agents.stage import StageContext
from core import topics
from core.codec import compressor, is_compressed
from core.metrics import CHUNKS
from core.models import ParsedChunk
from tables.trace_table import CLOSED_UPTO_KEY

log = logging.getLogger(__name__)


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

    @app.agent(channels.parsed(), name="group")
    async def group(stream: Any) -> None:
        """Acks each chunk only once its table update is persisted (which waits for its outputs' acks):
        faust would otherwise commit the input offset first, and a crash in between would lose the
        update (a trace summary missing lines) although its lines reached the sinks."""
        async for event in stream.noack().events():
            CHUNKS.labels("group").inc()
            chunk = ParsedChunk.decode(event.value)
            partition = event.message.partition
            if live is not None:  # the version in effect when the chunk was collected, as on every worker
                grouper.router = live.router_at(chunk.collected_ns)
            grouper.process_chunk(partition, chunk.sources, chunk.lines, event.value if chunk.ordered else None)
            table.after_persisted(partition, event.ack)
            ctx.progress.processed(event.message.tp, event.message.offset)

    @app.timer(settings.traces.close_check_interval, name="close_overdue_traces")
    async def close_overdue_traces() -> None:
        """Close overdue traces of the partitions this worker actively owns (startup included)."""
        if not ctx.recovery_completed():
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
            grouper.close_overdue(partition)

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
