"""The parse agent: logs.raw chunks -> logs.parsed chunks per trace partition, dead letters aside."""

from __future__ import annotations

from typing import Any

from agents.line_parser import LineParser
from app import channels
from app.codec import compressor
from app.errors import ChunkFormatError
from app.faust_app import get_app, get_settings
from app.metrics import CHUNKS, DEAD_LETTERS, LINES
from app.models import DeadLetter, RawChunk, encode_dead_letters

app = get_app()
settings = get_settings()
parser = LineParser(settings.parse)
PARTITIONS = settings.kafka.partitions
compress = compressor(settings.kafka.payload_codec)


@app.agent(channels.raw(), name="parse")
async def parse(stream: Any) -> None:
    parsed_topic, dead_topic = channels.parsed(), channels.deadletter()
    async for event in stream.events():
        CHUNKS.labels("parse").inc()
        try:
            chunk = RawChunk.decode(event.value)
        except ChunkFormatError as exc:
            await dead_topic.send(value=encode_dead_letters(
                [DeadLetter("bad_chunk", str(exc), "parse", event.value[:4096].decode("utf-8", "replace"))]))
            DEAD_LETTERS.labels("parse", "bad_chunk").inc()
            continue
        LINES.labels("parse_in").inc(len(chunk.lines))
        outputs, dead = parser.parse_chunk(chunk, PARTITIONS)
        for partition, out in outputs.items():
            await parsed_topic.send(value=compress(out.encode()), partition=partition)
            LINES.labels("parse_out").inc(len(out.lines))
        if dead:
            for item in dead:
                DEAD_LETTERS.labels("parse", item.reason).inc()
            await dead_topic.send(value=compress(encode_dead_letters(dead)), key=chunk.stream_id.encode())
