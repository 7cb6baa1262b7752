"""The parse agent: logs.raw chunks -> logs.parsed chunks per trace partition, dead letters aside.

Records are taken many at a time: the lines of every record read within `parse.linger` (or until
`parse.batch_lines` lines or `parse.batch_records` records, or `parse.eager_lines` lines once no
further record waits) are merged into one chunk per trace partition (agents/parsed_merge.py), so
a few lines per raw record still make large `logs.parsed` records; faust's cost is per record.
Records are acked, and this stage's progress advanced, only once every chunk made from them is
acknowledged by Kafka (agents/batching.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Hashable
from typing import Any

from agents.backlog import SourceProgress
from agents.batching import InOrderAcks, Linger, SendNow, nothing_waiting
from agents.encoded_lines import EncodedChunk, EncodedLines
from agents.line_parser import LineParser
from agents.parsed_merge import MergedChunks
from agents.stage import StageContext
from core.codec import compressor
from core.errors import ChunkFormatError
from core.heartbeat_figures import note_dead_letter
from core.metrics import CHUNKS, DEAD_LETTERS, FLUSHES, LINES
from core.models import DeadLetter, decompressed, encode_dead_letters, raw_chunks_of
from core.settings import ParseSettings

CHUNKS_IN, LINES_IN, LINES_OUT = CHUNKS.labels("parse"), LINES.labels("parse_in"), LINES.labels("parse_out")
FLUSHED = FLUSHES.labels("parse")


def register(ctx: StageContext) -> None:
    """Attach the parse agent to the App."""
    live = ctx.rules
    parser: LineParser | Callable[[], LineParser] = (lambda: live.parser) if live is not None \
        else LineParser(ctx.settings.parse)
    settings = ctx.settings
    channels = ctx.channels

    @ctx.app.agent(channels.raw(), name="parse")
    async def parse(stream: Any) -> None:
        if live is not None:  # the versions published before this worker started are read first
            await live.wait_loaded("parse")
        stage = ParseStage(parser, channels.parsed(), channels.deadletter(), settings.parse,
                           compress=compressor(settings.kafka.payload_codec), partitions=settings.kafka.partitions,
                           limit_bytes=int(settings.kafka.max_message_bytes * 0.8), progress=ctx.progress,
                           epoch_of=(lambda point: live.at(point).name) if live is not None else None,
                           sent=SendNow(ctx.app).now)
        await stage.run(stream)


class ParseStage:
    """One parse agent's batch in progress: merged outputs, dead letters, and the events they came from.

    `parser` is the parser, or a function giving the live one: read once per record, so rules
    switch between records.
    """

    def __init__(self, parser: LineParser | Callable[[], LineParser], parsed_topic: Any, dead_topic: Any,
                 settings: ParseSettings, *, compress: Callable[[bytes], bytes], partitions: int, limit_bytes: int,
                 progress: SourceProgress | None = None,
                 epoch_of: Callable[[int | None], Hashable] | None = None,
                 sent: Callable[[], None] | None = None) -> None:
        self.parser_of: Callable[[], LineParser] = (lambda: parser) if isinstance(parser, LineParser) else parser
        self.parsed_topic, self.dead_topic = parsed_topic, dead_topic
        self.compress, self.partitions = compress, partitions
        self.batch_lines, self.batch_records = settings.batch_lines, settings.batch_records
        self.eager_lines = settings.eager_lines
        self.merged = MergedChunks(limit_bytes, settings.batch_lines, epoch_of)
        self.dead: dict[str, list[DeadLetter]] = {}  # per stream id ("" for records that are no chunk)
        self.events: list[Any] = []
        self.outputs: list[asyncio.Future[Any]] = []
        self.acks = InOrderAcks("parse", progress)
        self.linger = Linger(settings.linger, self.flush)
        self._sending = asyncio.Lock()  # sends go out one flush after another: per-partition order
        self.sent = sent  # called once a flush's records are all sent and no record waits (ends the linger)
        self.idle: Callable[[], bool] = lambda: True  # no further input record waits (set by run)

    async def run(self, stream: Any) -> None:
        lingering = asyncio.ensure_future(self.linger.run())
        waiting = self.idle = nothing_waiting(stream)
        try:
            async for event in stream.noack().events():
                self.add(event.value)
                self.events.append(event)
                self.linger.started()
                lines = self.merged.lines
                if lines >= self.batch_lines or len(self.events) >= self.batch_records or self.linger.due() \
                        or (lines >= self.eager_lines and waiting()):
                    await self.flush()
                elif self.merged.ready:  # a partition's chunk is full: send it, ack with the batch
                    await self.send_ready()
        finally:
            lingering.cancel()

    def add(self, payload: bytes) -> None:
        """Parse one `logs.raw` record into the batch: read from its bytes when it is as orjson writes
        one (`LineParser.parse_raw`), else decoded."""
        CHUNKS_IN.inc()
        parser, partitions = self.parser_of(), self.partitions
        try:
            data = decompressed(payload)
            parsed = parser.parse_raw(data, partitions)
            chunks = raw_chunks_of(data) if parsed is None else []
        except ChunkFormatError as exc:
            self.dead.setdefault("", []).append(
                DeadLetter("bad_chunk", str(exc), "parse", payload[:4096].decode("utf-8", "replace")))
            return
        if parsed is not None:
            LINES_IN.inc(parsed.line_count)
            for source, stream_id, encoded in parsed.segments:
                self.merged.add(source, stream_id, encoded, parsed.mark_ns)
            for item in parsed.dead:
                self.dead.setdefault(item.stream_id, []).append(item)
            return
        LINES_IN.inc(sum(len(chunk.lines) for chunk in chunks))  # once per record: a record holds ~50 streams' chunks
        for chunk in chunks:
            outputs, dead = parser.parse_chunk(chunk, partitions)
            marks = {out.collected_ns for out in outputs.values()}  # one: the version's time, or None
            self.merged.add(chunk.source, chunk.stream_id,
                            {part: EncodedLines.from_entries(out.lines) for part, out in outputs.items()},
                            marks.pop() if marks else None)
            if dead:
                self.dead.setdefault(chunk.stream_id, []).extend(dead)

    async def send_ready(self) -> None:
        async with self._sending:
            self.outputs.extend([await self._send(partition, chunk) for partition, chunk in self.merged.take_ready()])

    async def flush(self) -> None:
        """Send the batch and ack its records once all of it is acknowledged."""
        async with self._sending:
            events, outputs, dead = self.events, self.outputs, self.dead
            if events:
                FLUSHED.inc()
            chunks = self.merged.take()
            self.events, self.outputs, self.dead = [], [], {}
            self.linger.flushed()
            for partition, chunk in chunks:
                outputs.append(await self._send(partition, chunk))
            for stream_id, items in dead.items():
                for item in items:
                    DEAD_LETTERS.labels("parse", item.reason).inc()
                    note_dead_letter(item.reason, item.text)  # the latest example in this worker's heartbeat
                outputs.append(await self.dead_topic.send(value=self.compress(encode_dead_letters(items)),
                                                          key=stream_id.encode() if stream_id else None))
            if outputs and self.sent is not None and self.idle():  # under a backlog the next flush comes soon:
                self.sent()  # its records may share the produce requests still lingering
            self.acks.add(events, outputs)

    async def _send(self, partition: int, chunk: EncodedChunk) -> asyncio.Future[Any]:
        LINES_OUT.inc(chunk.line_count)
        sent: asyncio.Future[Any] = await self.parsed_topic.send(value=self.compress(chunk.encode()),
                                                                 partition=partition)
        return sent
