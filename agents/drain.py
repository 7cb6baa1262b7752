"""One drain agent per enabled sink: sink.<name> -> the sink, acking only confirmed writes.

faust's `take()` acks in a `finally` even when the body raises, so drains use `noack_take` and
ack each record only after DrainRunner.deliver returned (written or dead-lettered). Concurrency
stays 1 per agent: a second actor would let later offsets commit before earlier writes.
"""

from __future__ import annotations

import logging
from typing import Any

from agents.drain_runner import DrainRunner, SinkRecord
from agents.stage import StageContext
from core import topics
from core.codec import compressor
from core.models import DeadLetter, encode_dead_letters
from sinks import create_sink

log = logging.getLogger(__name__)


def register(ctx: StageContext) -> dict[str, DrainRunner]:
    """Attach one drain agent per enabled sink; returns their runners by sink name."""
    settings, channels = ctx.settings, ctx.channels
    compress = compressor(settings.kafka.payload_codec)

    async def send_dead_letters(items: list[DeadLetter]) -> None:
        future = await channels.deadletter().send(value=compress(encode_dead_letters(items)))
        await future

    runners: dict[str, DrainRunner] = {}
    for sink_name in settings.sinks.enabled:
        runner = runners[sink_name] = DrainRunner(create_sink(sink_name, settings), settings,
                                                  settings.topic(topics.sink_topic(sink_name)), send_dead_letters)
        agent = make_drain_agent(runner)
        ctx.app.agent(channels.sink(sink_name), name=f"drain_{sink_name}", concurrency=1)(agent)
        if runner.sink.accepts_closed_traces:
            ctx.app.agent(channels.traces_closed(), name=f"drain_{sink_name}_traces",
                          concurrency=1)(make_closed_traces_agent(runner))
    return runners


def make_drain_agent(runner: DrainRunner) -> Any:
    """The agent body for one sink: take batches without acking, deliver, then ack."""
    max_records = max(1, min(1000, runner.max_lines // 50))

    async def drain(stream: Any) -> None:
        # The sink starts in the background while records are taken: while it cannot start, the records
        # in hand wait in DrainRunner.deliver and their age is `logweave_sink_oldest_unwritten_seconds`.
        runner.start_soon()
        try:
            async for events in stream.noack_take(max_records, within=runner.max_wait):
                records = [SinkRecord(e.message.partition, e.message.offset, e.value, e.message.timestamp)
                           for e in events]
                await runner.deliver(records)
                for event in events:
                    await stream.ack(event)
        finally:
            await runner.stop()

    drain.__name__ = f"drain_{runner.name}"
    return drain


def make_closed_traces_agent(runner: DrainRunner) -> Any:
    """The agent body feeding `traces.closed` summaries to a sink that stores them; acks after the write.
    The line drain owns the sink's stop."""

    async def drain_traces(stream: Any) -> None:
        async for events in stream.noack_take(100, within=runner.max_wait):
            await runner.deliver_closed_traces([e.value for e in events])
            for event in events:
                await stream.ack(event)

    drain_traces.__name__ = f"drain_{runner.name}_traces"
    return drain_traces
