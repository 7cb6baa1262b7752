"""One drain agent per enabled sink: sink.<name> -> the sink, acking only confirmed writes.

faust's `take()` acks in a `finally` even when the body raises, so drains use `noack_take` and
ack each record only after DrainRunner.deliver returned (written or dead-lettered). Concurrency
stays 1 per agent: a second actor would let later offsets commit before earlier writes.
"""

from __future__ import annotations

import logging
from typing import Any

from agents.drain_runner import DrainRunner, SinkRecord
from app import channels, topics
from app.codec import compressor
from app.faust_app import get_app, get_settings
from app.models import DeadLetter, encode_dead_letters
from sinks import create_sink

log = logging.getLogger(__name__)
app = get_app()
settings = get_settings()
RUNNERS: dict[str, DrainRunner] = {}
compress = compressor(settings.kafka.payload_codec)


async def _send_dead_letters(items: list[DeadLetter]) -> None:
    future = await channels.deadletter().send(value=compress(encode_dead_letters(items)))
    await future


def _make_drain(sink_name: str) -> Any:
    topic = channels.sink(sink_name)
    runner = RUNNERS[sink_name] = DrainRunner(create_sink(sink_name, settings), settings,
                                              settings.topic(topics.sink_topic(sink_name)), _send_dead_letters)
    max_records = max(1, min(1000, runner.max_lines // 50))

    async def drain(stream: Any) -> None:
        await runner.start()
        try:
            async for events in stream.noack_take(max_records, within=runner.max_wait):
                records = [SinkRecord(e.message.partition, e.message.offset, e.value) for e in events]
                await runner.deliver(records)
                for event in events:
                    await stream.ack(event)
        finally:
            await runner.stop()

    drain.__name__ = f"drain_{sink_name}"
    return app.agent(topic, name=f"drain_{sink_name}", concurrency=1)(drain)


DRAINS = {name: _make_drain(name) for name in settings.sinks.enabled}
