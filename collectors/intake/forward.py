"""Fluent forward over TCP: Fluent Bit's and Fluentd's `forward` outputs and the fluent-logger libraries.

A message that carries a `chunk` option becomes its own stream (`...:chunk:<id>`), and `{"ack": id}`
is written only after Kafka acknowledged it; a resend of the same chunk (the client heard no ack)
has the same identity, so the worker's dedupe absorbs it. If Kafka does not acknowledge, the
connection is closed without an ack and the client resends. Messages without `chunk` (fire and
forget, e.g. fluent-logger's Message mode) gather per connection into one stream for up to
`forward_linger`; they are retried until stored while reading pauses, so nothing is dropped short of
the process dying. Reading one message at a time is the backpressure: a slow Kafka slows the socket.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections import Counter
from typing import Any

import msgpack
import orjson

from collectors.intake.auth import ANONYMOUS, Caller
from collectors.intake.context import IntakeContext
from collectors.intake.delivery import BrokerUnavailable, Overloaded
from collectors.intake.forward_handshake import Handshake
from collectors.intake.forward_messages import BadMessage, Entry, decode_message, unpacker
from collectors.intake.limits import CorruptBody, LimitExceeded, decode_body
from collectors.intake.lines import RequestLines, build_chunk, dumped_objects, intake_source, shown_record, stream_id
from collectors.intake.linger_stream import LingerStream
from core.native import native_module

log = logging.getLogger(__name__)
PROTOCOL = "forward"


def _json_default(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, msgpack.ExtType):
        return value.data.hex()
    raise TypeError(f"{type(value).__name__} is not JSON")


def entry_lines(entries: list[Entry], first: int, max_line_bytes: int, out: RequestLines) -> None:
    """Each record as a JSON line at positions from `first`; what cannot be one is rejected.

    The common message (every record a map of JSON types, within the line limit) takes one C call
    per record and no other per-record Python work; anything else goes record by record."""
    texts = dumped_objects([record for _, record in entries], max_line_bytes)
    if texts is None:
        careful_entry_lines(entries, first, max_line_bytes, out)
        return
    pairs = zip(entries, texts, strict=True)
    out.lines.extend([[index, text.decode(), "", time_ns, 0]
                      for index, ((time_ns, _), text) in enumerate(pairs, first)])
    out.size += sum(map(len, texts))


def packed_lines(message: Any, first: int, max_decoded: int, max_line_bytes: int) -> tuple[str, dict[str, Any],
                                                                                       RequestLines] | None:
    """A (Compressed)PackedForward message whose records all convert plainly, in one C call
    (collectors/intake/_intakefast.c): its tag, options and lines at positions from `first`. None
    for anything else, which then takes decode_message and entry_lines, the reference."""
    fast = native_module("intake_lines")
    if (fast is None or type(message) is not list or len(message) != 3 or type(message[0]) is not str
            or type(message[1]) is not bytes or type(message[2]) is not dict):
        return None
    tag, packed, option = message
    if option.get("compressed") == "gzip":
        packed = decode_body(packed, "gzip", max_decoded)
    found = fast.forward_lines(packed, first, max_line_bytes)
    if found is None:
        return None
    lines = RequestLines()
    lines.lines, lines.size = found
    return tag, option, lines


def careful_entry_lines(entries: list[Entry], first: int, max_line_bytes: int, out: RequestLines) -> None:
    """Record by record: the reference for entry_lines' bulk path."""
    for index, (time_ns, record) in enumerate(entries, first):
        if not isinstance(record, dict):
            out.reject(index, "not_object", "record is not a map", shown_record(record))
            continue
        try:
            text = orjson.dumps(record, default=_json_default)
        except TypeError as exc:  # e.g. a map key that is not a string
            out.reject(index, "not_json", f"cannot be written as JSON ({exc})", shown_record(record))
            continue
        out.add_text(index, text, max_line_bytes, time_ns)


class ForwardConnection:
    def __init__(self, ctx: IntakeContext, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.ctx = ctx
        self.reader = reader
        self.writer = writer
        self.caller = Caller(ANONYMOUS, ANONYMOUS)
        self.stream: LingerStream | None = None  # messages without `chunk`, once the caller is known

    async def handshake(self, keys: list[Any]) -> bool:
        shake = Handshake(keys)
        self.writer.write(msgpack.packb(shake.helo()))
        feed = unpacker(64 * 1024)
        while True:
            data = await asyncio.wait_for(self.reader.read(4096), 30)
            if not data:
                return False
            feed.feed(data)
            for ping in feed:
                tenant, pong = shake.pong(ping)
                self.writer.write(msgpack.packb(pong))
                await self.writer.drain()
                if tenant is None:
                    self.ctx.metrics.reject(PROTOCOL, "unauthorized")
                    return False
                self.caller = self.ctx.tenants.shared_key_caller(tenant)
                return True

    async def run(self) -> None:
        cfg = self.ctx.settings
        keys = self.ctx.tenants.shared_keys()
        if keys and not await self.handshake(keys):
            return
        if not keys and not self.ctx.tenants.open:
            self.ctx.metrics.reject(PROTOCOL, "unauthorized")  # tenants, but none with a shared key
            return
        sid = stream_id(PROTOCOL, self.caller.tenant, "conn-" + uuid.uuid4().hex)
        self.stream = LingerStream(self.ctx, PROTOCOL, sid, cfg.forward_chunk_lines, cfg.forward_linger)
        feed = unpacker(cfg.max_body_bytes)
        while True:
            timeout = self.stream.seconds_left()
            try:
                data = await asyncio.wait_for(self.reader.read(256 * 1024), timeout)
            except TimeoutError:
                await self.flush_pending()
                continue
            if not data:
                break
            self.ctx.metrics.bytes.labels(PROTOCOL).inc(len(data))
            try:
                feed.feed(data)
            except msgpack.BufferFull:
                self.ctx.metrics.reject(PROTOCOL, "body_too_large")
                log.warning("forward: a message from %s is over intake.max_body_bytes; closing",
                            self.writer.get_extra_info("peername"))
                break
            for message in feed:
                if not await self.handle(message):
                    await self.flush_pending()
                    return
        await self.flush_pending()

    async def handle(self, message: Any) -> bool:
        """Store one message; False when the connection must close (unreadable, or Kafka away)."""
        cfg = self.ctx.settings
        assert self.stream is not None
        chunked = type(message) is list and len(message) == 3 and type(message[2]) is dict \
            and message[2].get("chunk") is not None  # lines of a chunk count from 0, else from the stream's
        try:
            fast = packed_lines(message, 0 if chunked else self.stream.position, cfg.max_decoded_bytes,
                                cfg.max_line_bytes)
            if fast is None:
                tag, entries, option = decode_message(message, cfg.max_decoded_bytes)
            else:
                tag, option, lines = fast
        except (BadMessage, CorruptBody, LimitExceeded, ValueError) as exc:
            self.ctx.metrics.reject(PROTOCOL, "bad_message", example=f"unreadable message: {exc}")
            log.warning("forward: unreadable message (%s); closing the connection", exc)
            return False
        chunk_id = option.get("chunk")
        if chunk_id is None:
            if fast is None:
                lines = RequestLines()
                entry_lines(entries, self.stream.take_positions(len(entries)), cfg.max_line_bytes, lines)
            else:
                self.stream.take_positions(len(lines.lines))
            self._count(lines)
            if lines.lines:
                await self._wait_rate(len(lines.lines))
            await self.stream.add(lines.lines, self._source(tag))
            return True
        await self.flush_pending()  # keep the connection's order
        if fast is None:
            lines = RequestLines()
            entry_lines(entries, 0, cfg.max_line_bytes, lines)
        self._count(lines)
        if lines.lines:
            await self._wait_rate(len(lines.lines))
        sid = stream_id(PROTOCOL, self.caller.tenant, f"chunk:{chunk_id}")
        try:
            await self.ctx.delivery.store([build_chunk(self._source(tag), sid, lines.lines)], PROTOCOL)
        except (BrokerUnavailable, Overloaded) as exc:
            self.ctx.metrics.reject(PROTOCOL, "unavailable")
            self.ctx.metrics.requests.labels(PROTOCOL, "unavailable").inc()
            log.warning("forward: chunk not acknowledged (%s); closing so the client resends", exc)
            return False
        self.writer.write(msgpack.packb({"ack": chunk_id}))
        await self.writer.drain()
        self.ctx.metrics.requests.labels(PROTOCOL, "acked").inc()
        return True

    def _count(self, lines: RequestLines) -> None:
        self.ctx.metrics.reject_records(PROTOCOL, lines.rejections)

    def _source(self, tag: str) -> dict[str, Any]:
        return intake_source(PROTOCOL, self.caller.tenant, tag=tag)

    async def _wait_rate(self, count: int) -> None:
        """Forward has no 429: over the rate, reading pauses until the bucket allows the lines."""
        while wait := self.ctx.rate_wait(self.caller, count):
            self.ctx.metrics.reject(PROTOCOL, "rate_limited")
            await asyncio.sleep(wait)

    async def flush_pending(self) -> None:
        if self.stream is not None:
            await self.stream.flush()


class ForwardServer:
    def __init__(self, ctx: IntakeContext) -> None:
        self.ctx = ctx
        self.server: asyncio.Server | None = None
        self.per_client: Counter[str] = Counter()
        self.connections: dict[asyncio.StreamWriter, tuple[asyncio.StreamReader, asyncio.Task[None]]] = {}

    async def start(self, host: str, port: int) -> None:
        self.server = await asyncio.start_server(self._serve, host, port, limit=256 * 1024)
        log.info("intake forward listening on %s:%d", host, port)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        client = str((writer.get_extra_info("peername") or ("?",))[0])
        gauge = self.ctx.metrics.connections.labels(PROTOCOL)
        if self.per_client[client] >= self.ctx.settings.max_connections_per_client:
            self.ctx.metrics.reject(PROTOCOL, "too_many_connections")
            writer.close()
            return
        self.per_client[client] += 1
        gauge.inc()
        task = asyncio.current_task()
        assert task is not None
        self.connections[writer] = (reader, task)
        try:
            await ForwardConnection(self.ctx, reader, writer).run()
        except (ConnectionError, TimeoutError, asyncio.IncompleteReadError) as exc:
            log.info("forward connection from %s ended: %s", client, exc)
        finally:
            self.connections.pop(writer, None)
            self.per_client[client] -= 1
            gauge.dec()
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def stop(self, timeout: float) -> None:
        """Stop accepting; each connection stores what it has read (bounded by `timeout`), then ends."""
        if self.server is not None:
            self.server.close()
        for reader, _ in self.connections.values():
            reader.feed_eof()
        tasks = [task for _, task in self.connections.values()]
        if tasks:
            _, late = await asyncio.wait(tasks, timeout=timeout)
            for task in late:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
