"""Syslog listeners: TCP (RFC 6587 octet counting or LF framing, detected per frame), TLS (RFC 5425,
optionally requiring client certificates whose common name names the tenant) and UDP.

What each can promise: TCP and TLS lines are stored before more is read from the socket (a Kafka
outage slows the sender, nothing is dropped while the intake runs), but syslog has no
acknowledgement, so lines in flight when a connection or the process dies can be lost. UDP is best
effort: datagrams the kernel or a full queue drops, and lines Kafka does not take, are counted.
A line that is not syslog (no <PRI>) is kept as `{"msg": ...}` and counted as `not_syslog`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import time
import uuid
from typing import Any

import orjson

from collectors.intake.context import IntakeContext
from collectors.intake.lines import EXAMPLE_BYTES, intake_source, stream_id
from collectors.intake.linger_stream import LingerStream
from collectors.intake.syslog_frames import FrameSplitter
from collectors.intake.syslog_parse import NotSyslog, parse_syslog
from core.models import RawLine, make_raw_line
from core.native import native_module

log = logging.getLogger(__name__)
PROTOCOL = "syslog"
_UDP_QUEUE = 10_000


def syslog_line(ctx: IntakeContext, position: int, data: bytes) -> RawLine | None:
    now = time.time_ns()
    try:
        text, time_ns = parse_syslog(data, now)
    except NotSyslog:
        ctx.metrics.reject(PROTOCOL, "not_syslog", example=data)  # stored all the same, as {"msg": ...}
        text, time_ns = orjson.dumps({"msg": data.decode("utf-8", "replace").rstrip("\r\n")}), now
    if len(text) > ctx.settings.max_line_bytes:
        ctx.metrics.reject(PROTOCOL, "line_too_long", example=text[:EXAMPLE_BYTES])
        return None
    return make_raw_line(position, text, "", time_ns)


def syslog_lines(ctx: IntakeContext, first: int, frames: list[bytes]) -> list[RawLine]:
    """The lines of `frames` at positions from `first`: the common RFC 5424 frame in C
    (collectors/intake/_intakefast.c), any other through syslog_line, the reference, in order."""
    fast = native_module("intake_lines")
    if fast is None:
        return [line for index, frame in enumerate(frames, first) if (line := syslog_line(ctx, index, frame))]
    found: list[RawLine | None] = fast.syslog_lines(frames, first, time.time_ns(), ctx.settings.max_line_bytes)
    if None not in found:
        return found  # type: ignore[return-value]
    return [line for index, (frame, done) in enumerate(zip(frames, found, strict=True), first)
            if (line := done or syslog_line(ctx, index, frame))]


class OverRateLog:
    """One warning per source address per LOG_EVERY seconds about lines over `syslog_rate_lines`."""

    LOG_EVERY = 10.0

    def __init__(self) -> None:
        self.pending: dict[tuple[str, str], int] = {}
        self.logged: dict[str, float] = {}

    def note(self, peer: str, lines: int, what: str) -> None:
        key = (peer, what)
        self.pending[key] = self.pending.get(key, 0) + lines
        now = time.monotonic()
        if now - self.logged.get(peer, -self.LOG_EVERY) >= self.LOG_EVERY:
            self.logged[peer] = now
            outcome = "dropped (UDP)" if what == "dropped" else "waited for (TCP reads slowed)"
            log.warning("syslog from %s is over intake.syslog_rate_lines: %d lines %s", peer,
                        self.pending.pop(key), outcome)


def tls_context(ctx: IntakeContext) -> ssl.SSLContext:
    cfg = ctx.settings
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    assert cfg.tls_cert_file and cfg.tls_key_file
    context.load_cert_chain(cfg.tls_cert_file, cfg.tls_key_file)
    if cfg.tls_client_ca_file:
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_verify_locations(cfg.tls_client_ca_file)
    return context


def _common_name(peercert: Any) -> str:
    for rdn in (peercert or {}).get("subject", ()):
        for key, value in rdn:
            if key == "commonName":
                return str(value)
    return ""


class SyslogServer:
    def __init__(self, ctx: IntakeContext) -> None:
        self.ctx = ctx
        self.servers: list[asyncio.Server] = []
        self.connections: dict[asyncio.StreamReader, asyncio.Task[None]] = {}
        self.udp: asyncio.DatagramTransport | None = None
        self.udp_task: asyncio.Task[None] | None = None
        self.queue: asyncio.Queue[bytes] = asyncio.Queue(_UDP_QUEUE)
        self.limited = OverRateLog()

    def plain_tenant(self) -> str | None:
        """Tenant of plain TCP/UDP syslog, or None when it is not accepted."""
        directory = self.ctx.tenants
        if self.ctx.settings.syslog_plain_tenant:
            return self.ctx.settings.syslog_plain_tenant
        return "anonymous" if directory.open else None

    def tls_tenant(self, writer: asyncio.StreamWriter) -> str | None:
        name = _common_name(writer.get_extra_info("peercert"))
        for tenant in self.ctx.tenants.tenants:
            if name and name in tenant.tls_client_names:
                return tenant.name
        return self.plain_tenant()  # no certificate that names a tenant: as trusted as plain syslog

    async def start(self, host: str) -> None:
        cfg = self.ctx.settings
        limit = cfg.max_line_bytes + 64
        if cfg.syslog_port and self.plain_tenant() is not None:
            self.servers.append(await asyncio.start_server(self._plain, host, cfg.syslog_port, limit=limit))
            if cfg.syslog_udp:
                loop = asyncio.get_running_loop()
                self.udp, _ = await loop.create_datagram_endpoint(lambda: _Datagrams(self),
                                                                  local_addr=(host, cfg.syslog_port))
                self.udp_task = asyncio.create_task(self._drain_udp())
            log.info("intake syslog listening on %s:%d (TCP%s)", host, cfg.syslog_port,
                     "+UDP" if cfg.syslog_udp else "")
        elif cfg.syslog_port:
            log.warning("plain syslog is off: tenants are configured and intake.syslog_plain_tenant is not set")
        if cfg.syslog_tls_port:
            self.servers.append(await asyncio.start_server(self._tls, host, cfg.syslog_tls_port, limit=limit,
                                                           ssl=tls_context(self.ctx)))
            log.info("intake syslog over TLS listening on %s:%d", host, cfg.syslog_tls_port)

    async def _plain(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await self._connection(reader, writer, self.plain_tenant(), "tcp")

    async def _tls(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await self._connection(reader, writer, self.tls_tenant(writer), "tls")

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, tenant: str | None,
                          transport: str) -> None:
        gauge = self.ctx.metrics.connections.labels(PROTOCOL)
        task = asyncio.current_task()
        assert task is not None
        self.connections[reader] = task
        gauge.inc()
        try:
            if tenant is None:
                self.ctx.metrics.reject(PROTOCOL, "unauthorized")
                return
            cfg = self.ctx.settings
            peer = str((writer.get_extra_info("peername") or ("?",))[0])
            stream = LingerStream(self.ctx, PROTOCOL, stream_id(PROTOCOL, tenant, "conn-" + uuid.uuid4().hex),
                                  cfg.forward_chunk_lines, cfg.syslog_linger)
            source = intake_source(PROTOCOL, tenant, transport=transport, peer=peer)
            splitter = FrameSplitter(cfg.max_line_bytes)
            while True:
                try:
                    data = await asyncio.wait_for(reader.read(256 * 1024), stream.seconds_left())
                except TimeoutError:
                    await stream.flush()
                    continue
                if not data:
                    last = splitter.close()
                    await self._store(stream, [last] if last else [], source, peer)
                    break
                self.ctx.metrics.bytes.labels(PROTOCOL).inc(len(data))
                await self._store(stream, splitter.feed(data), source, peer)
            await stream.flush()
        except (ConnectionError, asyncio.LimitOverrunError, ValueError, ssl.SSLError) as exc:
            self.ctx.metrics.reject(PROTOCOL, "bad_frame", example=f"syslog connection closed: {exc}")
            log.warning("syslog connection closed: %s", exc)
        finally:
            self.connections.pop(reader, None)
            gauge.dec()
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _store(self, stream: LingerStream, frames: list[bytes], source: dict[str, Any], peer: str) -> None:
        """The lines of `frames`, after a pause (no reading) when the sender is over its rate."""
        if not frames:
            return
        lines = syslog_lines(self.ctx, stream.take_positions(len(frames)), frames)
        cfg = self.ctx.settings
        wait = self.ctx.limiter.debit("syslog:" + peer, cfg.syslog_rate_lines, cfg.syslog_burst_lines, len(frames))
        if wait:  # stored (and the next read made) only once these lines keep to the rate
            self.ctx.metrics.reject(PROTOCOL, "rate_slowed", len(frames))
            self.limited.note(peer, len(frames), "slowed")
            await asyncio.sleep(wait)
        await stream.add(lines, source)

    async def _drain_udp(self) -> None:
        tenant = self.plain_tenant() or "anonymous"
        cfg = self.ctx.settings
        stream = LingerStream(self.ctx, PROTOCOL, stream_id(PROTOCOL, tenant, "udp-" + uuid.uuid4().hex),
                              cfg.forward_chunk_lines, cfg.syslog_linger, retry=False)
        source = intake_source(PROTOCOL, tenant, transport="udp")
        try:
            while True:
                try:
                    datagrams = [await asyncio.wait_for(self.queue.get(), stream.seconds_left())]
                except TimeoutError:
                    await stream.flush()
                    continue
                while not self.queue.empty() and len(datagrams) < cfg.forward_chunk_lines:
                    datagrams.append(self.queue.get_nowait())
                lines = syslog_lines(self.ctx, stream.take_positions(len(datagrams)), datagrams)
                await stream.add(lines, source)
        finally:
            await stream.flush()

    async def stop(self, timeout: float) -> None:
        for server in self.servers:
            server.close()
        if self.udp is not None:
            self.udp.close()
        for reader in self.connections:
            reader.feed_eof()
        tasks = list(self.connections.values())
        if self.udp_task is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(_queue_empty(self.queue), timeout)
            self.udp_task.cancel()
            tasks.append(self.udp_task)
        if tasks:
            _, late = await asyncio.wait(tasks, timeout=timeout)
            for task in late:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)


async def _queue_empty(queue: asyncio.Queue[bytes]) -> None:
    while not queue.empty():
        await asyncio.sleep(0.05)


class _Datagrams(asyncio.DatagramProtocol):
    def __init__(self, server: SyslogServer) -> None:
        self.server = server

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        ctx = self.server.ctx
        metrics = ctx.metrics
        metrics.bytes.labels(PROTOCOL).inc(len(data))
        peer = str(addr[0])
        cfg = ctx.settings
        if ctx.limiter.wait("syslog:" + peer, cfg.syslog_rate_lines, cfg.syslog_burst_lines, 1):
            metrics.reject(PROTOCOL, "rate_limited")
            self.server.limited.note(peer, 1, "dropped")
            return
        try:
            self.server.queue.put_nowait(data)
        except asyncio.QueueFull:
            metrics.reject(PROTOCOL, "udp_queue_full")
