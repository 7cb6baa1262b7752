"""The parse agent: logs.raw chunks -> logs.parsed chunks per trace partition, dead letters aside."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from agents.backlog import SourceProgress
from agents.line_parser import LineParser
from agents.stage import StageContext
from core.codec import compressor
from core.errors import ChunkFormatError
from core.heartbeat_figures import note_dead_letter
from core.metrics import CHUNKS, DEAD_LETTERS, LINES
from core.models import DeadLetter, decode_raw_chunks, encode_dead_letters


def register(ctx: StageContext) -> None:
    """Attach the parse agent to the App."""
    live = ctx.rules
    parser: LineParser | Callable[[], LineParser] = (lambda: live.parser) if live is not None \
        else LineParser(ctx.settings.parse)
    compress = compressor(ctx.settings.kafka.payload_codec)
    partitions = ctx.settings.kafka.partitions
    channels = ctx.channels

    @ctx.app.agent(channels.raw(), name="parse")
    async def parse(stream: Any) -> None:
        await parse_stream(stream, parser, channels.parsed(), channels.deadletter(), compress, partitions,
                           ctx.progress)


async def parse_stream(stream: Any, parser: LineParser | Callable[[], LineParser], parsed_topic: Any,
                       dead_topic: Any, compress: Any, partitions: int, progress: SourceProgress | None = None) -> None:
    """`parser`, or a function giving the live one: read once per chunk, so rules switch between chunks."""
    parser_of: Callable[[], LineParser] = (lambda: parser) if isinstance(parser, LineParser) else parser
    async for event in stream.events():
        await parse_event(event, parser_of(), parsed_topic, dead_topic, compress, partitions)
        if progress is not None:
            progress.processed(event.message.tp, event.message.offset)


async def parse_event(event: Any, parser: LineParser, parsed_topic: Any, dead_topic: Any,
                      compress: Any, partitions: int) -> None:
    CHUNKS.labels("parse").inc()
    try:
        chunks = decode_raw_chunks(event.value)
    except ChunkFormatError as exc:
        await dead_topic.send(value=encode_dead_letters(
            [DeadLetter("bad_chunk", str(exc), "parse", event.value[:4096].decode("utf-8", "replace"))]))
        DEAD_LETTERS.labels("parse", "bad_chunk").inc()
        return
    for chunk in chunks:
        LINES.labels("parse_in").inc(len(chunk.lines))
        outputs, dead = parser.parse_chunk(chunk, partitions)
        for partition, out in outputs.items():
            await parsed_topic.send(value=compress(out.encode()), partition=partition)
            LINES.labels("parse_out").inc(len(out.lines))
        if dead:
            for item in dead:
                DEAD_LETTERS.labels("parse", item.reason).inc()
                note_dead_letter(item.reason, item.text)  # the latest example in this worker's heartbeat
            await dead_topic.send(value=compress(encode_dead_letters(dead)), key=chunk.stream_id.encode())
