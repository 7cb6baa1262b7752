"""`logweave replay --deadletters`: send parse-stage dead letters back through the pipeline after a fix.

Each dead letter kept its raw line, source and stream position, so the lines are re-published to
`logs.raw` as raw chunks, one stream per original stream and replayed range
(`<stream id>#replay-<partition>-<start offset>`). Their original stream cannot be used: its
position mark in the trace table has moved past them, so the group stage would drop them as
already applied. Replaying the same range twice reuses the same stream ids and positions, so the
second replay is dropped as a duplicate. Lines that are still bad are dead-lettered again.

Sink-stage dead letters (documents a sink rejected) and undecodable chunks are not lines of a
source stream; they are counted and left in the topic.
"""

from __future__ import annotations

import base64
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from commands.replay import Progress, ReplayPlan
from core.models import FLAG_BASE64, RawChunk, decode_dead_letters
from core.settings import Settings
from core.topics import RAW
from kafka_io.publisher import ChunkPublisher
from kafka_io.range_reader import range_consumer, read_range

_CHUNK_LINES = 1000


@dataclass(slots=True)
class DeadLetterReplay:
    republished: int = 0
    skipped: dict[str, int] = field(default_factory=lambda: defaultdict(int))


async def replay_dead_letters(settings: Settings, plan: ReplayPlan, progress: Progress) -> DeadLetterReplay:
    result = DeadLetterReplay()
    publisher = ChunkPublisher(settings.kafka, settings.topic(RAW), 64 << 20, create_topics=[])
    consumer = range_consumer(settings)
    await publisher.start()
    await consumer.start()
    try:
        for part in plan.ranges:
            pending: dict[str, RawChunk] = {}
            acks: list[Any] = []
            async for batch in read_range(consumer, plan.topic, part.partition, part.start, part.end, 500):
                for message in batch:
                    for item in decode_dead_letters(message.value):
                        _add(item, f"#replay-{part.partition}-{part.start}", pending, result)
                    for sid in [s for s, c in pending.items() if len(c.lines) >= _CHUNK_LINES]:
                        acks.append(await publisher.publish(pending.pop(sid)))
                    progress(1)
            for chunk in pending.values():
                acks.append(await publisher.publish(chunk))
            for ack in acks:
                await ack
    finally:
        await consumer.stop()
        await publisher.stop()
    return result


def _add(item: dict[str, Any], suffix: str, pending: dict[str, RawChunk], result: DeadLetterReplay) -> None:
    stage, sid, pos = item.get("stage", ""), item.get("sid", ""), item.get("pos", -1)
    if stage != "parse" or not sid or not isinstance(pos, int) or pos < 0:
        result.skipped["sink stage" if str(stage).startswith("sink:") else "not a source line"] += 1
        return
    text = item.get("line", "")
    flags = FLAG_BASE64 if item.get("b64") else 0
    if flags:
        base64.b64decode(text, validate=True)  # kept as base64 of the raw bytes: must still decode
    replay_sid = sid + suffix
    chunk = pending.get(replay_sid)
    if chunk is None:
        chunk = pending[replay_sid] = RawChunk(item.get("src") or {}, replay_sid, time.time_ns())
    if chunk.lines and chunk.lines[-1][0] >= pos:  # positions must rise within a stream
        result.skipped["out of order"] += 1
        return
    chunk.lines.append([pos, text, item.get("stream", ""), 0, flags])
    result.republished += 1
