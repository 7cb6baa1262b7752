"""Followed logs taken off their connections once a tick, by one poll over all of them.

A live node's pods write a few lines a second each, and the API server relays every write as a chunk
of its own. Read through aiohttp, each stream paid per tick a hold and a release of its socket
(read_hold.py), two timer wake-ups, the event loop's readiness callback, aiohttp's parser and stream
buffer per chunk, and a wake-up of its task: tests/bench/bench_pod_reads.py measured that reading
alone at 0.5-0.7 CPU s per 100K lines at 200 pods x 20 lines/s and 6 at 1,000 pods x 2 lines/s, as
much as the collector's whole target. Here the followed connections are not in the event loop's
selector at all. At every tick of `pods.flush_interval` one callback asks an epoll set of their own
which have bytes (one system call for all), reads those without blocking, decrypts them (TLS through
a memory BIO), takes the body out of its HTTP/1.1 chunks (a stream's usual tick: its streamer does that
and the scan in one C call, `chunk_consumer`), and wakes only the streams that got something; what
they got is due at that tick, as a paced stream's read was. So a line waits at most an interval, as
before, and a quiet stream costs nothing between ticks. A stream bringing more than `BUSY_BYTES` in a tick
is read as its data comes (registered with the event loop) until a tick's worth of its bytes falls below
that again, so a chatty pod's rate is not capped by what the kernel buffers in
an interval. A stream whose read bytes wait unread (its streamer holds back for the pending budget) is
not read until they are taken: the kernel and TCP then slow the server, as aiohttp's flow control did.

The request itself is plain HTTP/1.1 (`GET .../log?follow=true`), written here: status and headers
are read at once, an error status becomes the same errors the aiohttp client raises (client.py).
Proxies are left to aiohttp (client.py keeps that path).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import select
import socket
import ssl
import time
import weakref
from collections import deque
from collections.abc import Callable
from urllib.parse import quote, urlencode, urlsplit

from collectors.pods.batching import next_tick
from core.native import native_module

_log = logging.getLogger(__name__)

BUSY_BYTES = 16 * 1024  # a stream bringing this much in a tick is read as its data comes
HEAD_LIMIT = 64 * 1024  # bytes of status line and headers at most
ERROR_BODY_LIMIT = 64 * 1024  # bytes of an error answer's body kept for its message
SIZE_LINE_LIMIT = 1024  # bytes of a chunk-size line (hex size and extensions) at most
TLS_RECORD_BYTES = 16 * 1024  # the most plaintext one TLS record holds (RFC 8446 5.1, RFC 5246 6.2.1)
_HEX = re.compile(rb"[0-9A-Fa-f]{1,15}")


class LogStreamBroken(ConnectionError):
    """The log response broke off or is not valid HTTP/1.1; the streamer reconnects (an OSError)."""


class HttpAnswer:
    """The status and headers of a response; `body` holds what came after them in the same reads."""

    def __init__(self, status: int, reason: str, headers: dict[str, str], body: bytes) -> None:
        self.status = status
        self.reason = reason
        self.headers = headers
        self.body = body


def parse_head(data: bytes) -> HttpAnswer | None:
    """The answer once `data` holds its whole head (None before); LogStreamBroken if it is not HTTP/1.x."""
    end = data.find(b"\r\n\r\n")
    if end < 0:
        if len(data) > HEAD_LIMIT:
            raise LogStreamBroken(f"the log response's headers exceed {HEAD_LIMIT} bytes")
        return None
    status_line, *header_lines = data[:end].decode("latin-1").split("\r\n")
    parts = status_line.split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
        raise LogStreamBroken(f"not an HTTP/1.1 answer: {status_line[:80]!r}")
    headers: dict[str, str] = {}
    for line in header_lines:
        name, colon, value = line.partition(":")
        if not colon:
            raise LogStreamBroken(f"malformed header line in the log response: {line[:80]!r}")
        key = name.strip().lower()
        headers[key] = f"{headers[key]}, {value.strip()}" if key in headers else value.strip()
    return HttpAnswer(int(parts[1]), parts[2] if len(parts) > 2 else "", headers, data[end + 4:])


class BodyDecoder:
    """A response body from its bytes as they come: chunked, of a Content-Length, or up to the close.
    Chunks are taken out in C when it is built (`dechunk` in collectors/pods/_podscan.c), which answers
    only for well-formed input; `_dechunk_reference` is its reference and says what is malformed."""

    __slots__ = ("_buffer", "_fast", "_left", "_mode", "done")

    def __init__(self, headers: dict[str, str], native: bool = True) -> None:
        fast = native_module("pod_lines") if native else None
        self._fast: Callable[[bytearray, int], tuple[bytes, int, int, bool] | None] | None = getattr(
            fast, "dechunk", None)
        coding = headers.get("transfer-encoding", "").lower()
        length = headers.get("content-length")
        self._buffer = bytearray()
        self.done = False
        self._left = 0  # chunked: bytes left of the chunk being read (-1: its closing CRLF); length: of the body
        if "chunked" in coding:
            self._mode = "chunked"
        elif length is not None:
            if not length.strip().isdigit():
                raise LogStreamBroken(f"invalid Content-Length in the log response: {length[:40]!r}")
            self._mode, self._left = "length", int(length)
            self.done = self._left == 0
        else:
            self._mode = "close"

    @property
    def chunk_state(self) -> int | None:
        """Where a chunked body is when nothing of earlier bytes is held (the bytes left of the chunk being
        read, -1: its closing CRLF, 0: a size line comes next), else None: the next bytes may then be
        dechunked elsewhere from there (the pod streamer's one-call tick, blockscan.take_chunked_wire),
        which gives back where it left off (`resume_chunks`)."""
        return self._left if self._mode == "chunked" and not self._buffer and not self.done else None

    def resume_chunks(self, left: int) -> None:
        """Continue after bytes dechunked elsewhere from `chunk_state`, which ended at `left`."""
        self._left = left

    @property
    def until_close(self) -> bool:
        """Whether the body ends where the connection does (neither chunked nor of a length)."""
        return self._mode == "close"

    def feed(self, data: bytes) -> bytes:
        """The body bytes in `data` (and what earlier feeds left undecided)."""
        if self._mode == "close":
            return data
        if self._mode == "length":
            taken = data[:self._left]
            self._left -= len(taken)
            self.done = self._left == 0
            return taken
        return self._dechunk(data)

    def _dechunk(self, data: bytes) -> bytes:
        buffer = self._buffer
        buffer += data
        if self._fast is not None and not self.done:
            out = self._fast(buffer, self._left)
            if out is not None:
                body, consumed, self._left, self.done = out
                del buffer[:consumed]
                return body
        return self._dechunk_reference()

    def _dechunk_reference(self) -> bytes:
        buffer = self._buffer
        parts: list[bytes | bytearray] = []
        position, size = 0, len(buffer)
        while not self.done:
            if self._left > 0:  # inside a chunk's data
                take = min(self._left, size - position)
                if take <= 0:
                    break
                parts.append(buffer[position:position + take])
                position += take
                self._left -= take
                if self._left == 0:
                    self._left = -1
                continue
            line_end = buffer.find(b"\r\n", position)
            if line_end < 0:
                if size - position > SIZE_LINE_LIMIT:
                    raise LogStreamBroken(f"a chunk-size line of the log response exceeds {SIZE_LINE_LIMIT} bytes")
                break
            if self._left == -1:  # the CRLF closing a chunk's data
                if line_end != position:
                    raise LogStreamBroken("a chunk of the log response does not end where its size says")
                position, self._left = line_end + 2, 0
                continue
            size_field = bytes(buffer[position:line_end]).split(b";", 1)[0].strip()
            if not _HEX.fullmatch(size_field):  # 1*HEXDIG (RFC 9112), not all int() takes: no sign, 0x or _
                raise LogStreamBroken(f"invalid chunk size in the log response: {size_field[:40]!r}")
            chunk_size = int(size_field, 16)
            position = line_end + 2
            if chunk_size == 0:  # the last chunk: its trailers, if any, are of no use here
                self.done = True
                break
            self._left = chunk_size
        del buffer[:position]
        return b"".join(parts)


class PolledLog:
    """One followed log response, read by the TickPoller (or, while busy, as its data comes).

    The streamer reads it as it read aiohttp's response body: `read_nowait`, `read`, `close`. `polled_tick`
    is the tick the bytes read last came at (None when they were read as they came)."""

    def __init__(self, sock: socket.socket, tls: ssl.SSLObject | None, incoming: ssl.MemoryBIO | None,
                 outgoing: ssl.MemoryBIO | None, body: BodyDecoder, first: bytes, poller: TickPoller,
                 read_bytes: int) -> None:
        self.content = self  # as aiohttp's response: the streamer reads `resp.content`
        self.connection = None  # no aiohttp connection to hold (read_hold.py): this is read at ticks only
        self.polled_tick: float | None = None
        # takes a tick's body bytes itself when it can (the streamer, without waking its task); False: queued
        self.consumer: Callable[[bytes, float], bool] | None = None
        # takes a tick's bytes before they are dechunked, when it can (the same, in one call); False: as usual
        self.chunk_consumer: Callable[[BodyDecoder, bytes, float], bool] | None = None
        self._sock = sock
        self._fd = sock.fileno()
        self._tls, self._incoming, self._outgoing = tls, incoming, outgoing
        self._body = body
        self._poller = poller
        self._read_bytes = read_bytes
        self._ready: deque[tuple[bytes, float | None]] = deque()  # body bytes read, with their tick
        self._buffered = 0
        self._eof = False
        self._error: BaseException | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._tick_bytes = 0  # raw bytes read since the last tick
        self.closed = False
        if first:
            self._deliver(body.feed(first), None)
        if body.done:
            self._eof = True
        poller.add(self)

    @property
    def fileno(self) -> int:
        return self._fd

    @property
    def wants_bytes(self) -> bool:
        """Whether to read it now: not ended, and what it read before was taken (or is little)."""
        return not self._eof and not self.closed and self._buffered < self._read_bytes

    # -- what the streamer calls ------------------------------------------------------------------
    def read_nowait(self, limit: int) -> bytes:
        """Body bytes read so far, at most `limit` (b"" when none wait, or at the end)."""
        if not self._ready:
            if self._error is not None and not self._eof:
                error, self._error = self._error, None
                self._eof = True
                raise error
            return b""
        parts: list[bytes] = []
        tick: float | None = self._ready[0][1]
        while self._ready and limit > 0:
            data, tick = self._ready[0]
            if len(data) > limit:
                parts.append(data[:limit])
                self._ready[0] = (data[limit:], tick)
                limit = 0
                break
            parts.append(data)
            limit -= len(data)
            self._ready.popleft()
        taken = b"".join(parts)
        self._buffered -= len(taken)
        self.polled_tick = tick
        if self.wants_bytes:
            self._poller.resume_busy(self)  # a busy log stopped for the streamer to catch up reads on
        return taken

    async def read(self, limit: int) -> bytes:
        """Body bytes, waiting for the next tick's (or busy read's) when none wait; b"" at the end."""
        while True:
            data = self.read_nowait(limit)
            if data or self._eof or self.closed:
                return data
            waiter = self._waiter = asyncio.get_running_loop().create_future()
            try:
                await waiter
            finally:
                self._waiter = None

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.consumer = self.chunk_consumer = None
        self._poller.remove(self)
        with contextlib.suppress(OSError):
            self._sock.close()
        self._wake()

    # -- what the poller calls --------------------------------------------------------------------
    def take_bytes(self, tick: float | None) -> int:
        """Read what the socket holds (while the streamer keeps up); returns the raw bytes read."""
        total = 0
        parts: list[bytes] = []
        try:
            while self._buffered + total < 4 * self._read_bytes:
                data = self._sock.recv(self._read_bytes)
                if not data:
                    self._eof_from_peer()
                    break
                parts.append(data)
                total += len(data)
                if len(data) < self._read_bytes:
                    break
        except (BlockingIOError, InterruptedError):
            pass
        except OSError as exc:
            self._fail(exc)
        if parts:
            try:
                plain = self._decrypt(b"".join(parts))
                chunk_consumer = self.chunk_consumer
                if (tick is None or chunk_consumer is None or self._ready or not plain
                        or not chunk_consumer(self._body, plain, tick)):
                    self._deliver(self._body.feed(plain), tick)
            except (OSError, ssl.SSLError) as exc:  # LogStreamBroken is an OSError
                self._fail(exc)
            if self._body.done:
                self._eof = True
        self._tick_bytes += total
        if self.for_reader:
            self._wake()
        return total

    @property
    def for_reader(self) -> bool:
        """Whether its reader task has something to take (bytes no consumer took, the end, an error)."""
        return bool(self._ready) or self._eof or self._error is not None

    def tick_bytes(self) -> int:
        """Raw bytes read since the last call (the poller weighs busy streams once a tick)."""
        taken, self._tick_bytes = self._tick_bytes, 0
        return taken

    # -- inside -----------------------------------------------------------------------------------
    def _decrypt(self, data: bytes) -> bytes:
        if self._tls is None or self._incoming is None:
            return data
        self._incoming.write(data)
        plain, closed = drain_tls(self._tls, self._incoming)
        if closed:
            self._eof_from_peer()
        self._flush_tls()  # TLS 1.3 may have something to answer (a key update)
        return plain

    def _flush_tls(self) -> None:
        if self._outgoing is not None and self._outgoing.pending:
            with contextlib.suppress(BlockingIOError):
                self._sock.send(self._outgoing.read())

    def _deliver(self, body: bytes, tick: float | None) -> None:
        if not body:
            return
        consumer = self.consumer
        if tick is not None and consumer is not None and not self._ready and consumer(body, tick):
            return
        self._ready.append((body, tick))
        self._buffered += len(body)

    def _eof_from_peer(self) -> None:
        if not self._body.done and not self._body.until_close:
            self._fail(LogStreamBroken("the log response ended before its last chunk"))
        else:
            self._eof = True

    def _fail(self, exc: BaseException) -> None:
        if self._error is None:
            self._error = exc
        self._poller.remove(self)

    def fail(self, exc: BaseException) -> None:
        """End the response with `exc` (raised to the reader, which reconnects)."""
        self._fail(exc)
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)


class TickPoller:
    """Reads every followed log of one event loop at each tick of `interval` (one per loop and interval)."""

    @classmethod
    def of(cls, interval: float) -> TickPoller:
        loop = asyncio.get_running_loop()
        by_interval = _POLLERS.setdefault(loop, {})
        poller = by_interval.get(interval)
        if poller is None:
            poller = by_interval[interval] = cls(loop, interval)
        return poller

    def __init__(self, loop: asyncio.AbstractEventLoop, interval: float) -> None:
        self._loop = loop
        self._interval = interval
        self._epoll = select.epoll()
        self._logs: dict[int, PolledLog] = {}
        self._busy: set[PolledLog] = set()
        self._reading: set[PolledLog] = set()  # busy logs registered with the event loop
        self._timer: asyncio.TimerHandle | None = None
        self._tick_ends: list[Callable[[bool], None]] = []

    def on_tick_end(self, callback: Callable[[bool], None]) -> Callable[[], None]:
        """Call `callback` after each tick's reads, told whether any log was left to its reader task that
        tick (whose lines then come a moment later), a busy log read as its data comes included; returns what
        unregisters it. The pod collector flushes its partition batcher there when none was: every line of
        the tick is then in it already."""
        self._tick_ends.append(callback)
        return lambda: self._tick_ends.remove(callback)

    def add(self, log: PolledLog) -> None:
        fd = log.fileno
        self._logs[fd] = log
        self._epoll.register(fd, select.EPOLLIN)
        if self._timer is None:
            self._schedule()

    def remove(self, log: PolledLog) -> None:
        fd = log.fileno
        if self._logs.get(fd) is log:
            del self._logs[fd]
            with contextlib.suppress(OSError, ValueError):
                self._epoll.unregister(fd)
        self._stop_reading(log)
        self._busy.discard(log)

    def reading(self, log: PolledLog) -> bool:
        return log in self._reading

    def resume_busy(self, log: PolledLog) -> None:
        """A busy log whose reads stopped while its streamer caught up is read as its data comes again."""
        if log in self._busy and log not in self._reading:
            self.read_as_it_comes(log)

    def read_as_it_comes(self, log: PolledLog) -> None:
        if log in self._reading or log.closed or self._logs.get(log.fileno) is not log:
            return
        self._reading.add(log)
        self._loop.add_reader(log.fileno, self._readable, log)

    def _stop_reading(self, log: PolledLog) -> None:
        if log in self._reading:
            self._reading.discard(log)
            with contextlib.suppress(OSError, ValueError):
                self._loop.remove_reader(log.fileno)

    def _take(self, log: PolledLog, tick: float | None) -> None:
        """One log's bytes; a failure there (its consumer's included) ends that log's response, not the poll."""
        try:
            log.take_bytes(tick)
        except Exception as exc:
            _log.exception("reading a followed log failed; it is read again from its last line")
            log.fail(exc)

    def _readable(self, log: PolledLog) -> None:
        self._take(log, None)
        if not log.wants_bytes:  # the streamer is behind (or it ended): the kernel holds the rest
            self._stop_reading(log)

    def _schedule(self, after: float = 0.0) -> None:
        tick = next_tick(max(time.monotonic(), after), self._interval)
        self._timer = self._loop.call_at(tick, self._tick, tick)

    def _tick(self, tick: float) -> None:
        """Read every log with bytes waiting (what they bring is due at `tick`), then weigh who is busy."""
        self._timer = None
        if not self._logs:
            return  # started again by the next add
        logs, reading = self._logs, self._reading
        touched = set(self._busy)
        for_readers = bool(self._busy or reading)  # a busy log (read as its data comes): its reader takes its lines
        for fd, _ in self._epoll.poll(0):
            log = logs.get(fd)
            if log is not None and log not in reading and log.wants_bytes:
                self._take(log, tick)
                touched.add(log)
                for_readers = for_readers or log.for_reader
        for log in touched:
            self._weigh(log)
        self._schedule(after=tick)  # (a timer may fire a hair before its moment: not this tick again)
        for callback in list(self._tick_ends):
            try:
                callback(for_readers)
            except Exception:
                _log.exception("a tick-end callback failed")

    def _weigh(self, log: PolledLog) -> None:
        """Once a tick: a log that brought BUSY_BYTES since the last is read as its data comes, one that
        brought less is read at ticks again."""
        if log.tick_bytes() >= BUSY_BYTES and not log.closed:
            self._busy.add(log)
            if log.wants_bytes:
                self.read_as_it_comes(log)
        elif log in self._busy:
            self._busy.discard(log)
            self._stop_reading(log)


_POLLERS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[float, TickPoller]] = weakref.WeakKeyDictionary()


async def open_polled_log(server: str, context: ssl.SSLContext | bool, server_name: str | None, path: str,
                          query: list[tuple[str, str]], headers: dict[str, str], interval: float,
                          read_bytes: int, connect_timeout: float, head_timeout: float,
                          opening: asyncio.Semaphore | None = None) -> PolledLog | HttpAnswer:
    """Send the GET and read the answer's head: a PolledLog for a 2xx answer, else the HttpAnswer with up to
    ERROR_BODY_LIMIT of its body (for the error's message). `opening` bounds the connections being set up
    at once (the TCP connection and TLS handshake, not the wait for the head, which the API server may
    spend reaching a kubelet): a TLS handshake's buffers, freed afterwards, stay in the heap, so a node's
    streams all handshaking at once (1,000 at a start) left the collector at 260 MiB."""
    url = urlsplit(server)
    host = url.hostname or ""
    port = url.port or (443 if url.scheme == "https" else 80)
    unsafe = [name for name, value in headers.items() if "\r" in value or "\n" in value]
    if unsafe:  # (never the value: it may be a credential)
        raise ValueError(f"the {', '.join(unsafe)} header for the API server holds a line break")
    loop = asyncio.get_running_loop()
    async with opening or contextlib.nullcontext(), asyncio.timeout(connect_timeout):
        sock = await _connect(loop, host, port)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            tls = incoming = outgoing = None
            if url.scheme == "https":
                if context is True:
                    context = ssl.create_default_context()
                elif context is False:  # the kubeconfig asked to skip verification (apiconfig.py)
                    context = _unverified()
                assert isinstance(context, ssl.SSLContext)
                incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
                tls = context.wrap_bio(incoming, outgoing, server_hostname=server_name or host)
                await _handshake(loop, sock, tls, incoming, outgoing)
        except BaseException:
            sock.close()
            raise
    try:
        netloc = url.netloc.rpartition("@")[2]
        target = f"{quote(url.path.rstrip('/') + path, safe='/')}?{urlencode(query)}"
        lines = [f"GET {target} HTTP/1.1", f"Host: {netloc}", "Accept: text/plain", "User-Agent: logweave",
                 *(f"{name}: {value}" for name, value in headers.items() if name.lower() not in ("host", "accept"))]
        request = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        await _send(loop, sock, tls, outgoing, request)
        async with asyncio.timeout(head_timeout):
            received = b""
            answer = None
            while answer is None:
                data = await _receive(loop, sock, tls, incoming, outgoing)
                if not data:
                    raise LogStreamBroken("the API server closed the connection before answering")
                received += data
                answer = parse_head(received)
            if not 200 <= answer.status < 300:
                answer.body = await _error_body(loop, sock, tls, incoming, outgoing, answer)
                sock.close()
                return answer
        return PolledLog(sock, tls, incoming, outgoing, BodyDecoder(answer.headers), answer.body,
                         TickPoller.of(interval), read_bytes)
    except BaseException:
        sock.close()
        raise


async def _connect(loop: asyncio.AbstractEventLoop, host: str, port: int) -> socket.socket:
    """A non-blocking TCP connection to the first of the host's addresses that answers."""
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    failure: OSError | None = None
    for family, kind, protocol, _, address in infos:
        sock = socket.socket(family, kind, protocol)
        sock.setblocking(False)
        try:
            await loop.sock_connect(sock, address)
            return sock
        except OSError as exc:
            sock.close()
            failure = exc
        except BaseException:
            sock.close()
            raise
    raise failure or OSError(f"no address for {host}")


def _unverified() -> ssl.SSLContext:
    """The kubeconfig asked to skip verification (apiconfig.py): encrypted, not authenticated."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


async def _handshake(loop: asyncio.AbstractEventLoop, sock: socket.socket, tls: ssl.SSLObject,
                     incoming: ssl.MemoryBIO, outgoing: ssl.MemoryBIO) -> None:
    while True:
        try:
            tls.do_handshake()
            break
        except ssl.SSLWantReadError:
            if outgoing.pending:
                await loop.sock_sendall(sock, outgoing.read())
            data = await loop.sock_recv(sock, 65536)
            if not data:
                raise LogStreamBroken("the API server closed the connection during the TLS handshake") from None
            incoming.write(data)
    if outgoing.pending:
        await loop.sock_sendall(sock, outgoing.read())


async def _send(loop: asyncio.AbstractEventLoop, sock: socket.socket, tls: ssl.SSLObject | None,
                outgoing: ssl.MemoryBIO | None, data: bytes) -> None:
    if tls is not None and outgoing is not None:
        tls.write(data)
        data = outgoing.read()
    await loop.sock_sendall(sock, data)


async def _receive(loop: asyncio.AbstractEventLoop, sock: socket.socket, tls: ssl.SSLObject | None,
                   incoming: ssl.MemoryBIO | None, outgoing: ssl.MemoryBIO | None) -> bytes:
    """The next bytes of the answer (decrypted), b"" at its end."""
    while True:
        data = await loop.sock_recv(sock, 65536)
        if tls is None or incoming is None or outgoing is None or not data:
            return data
        incoming.write(data)
        plain, closed = drain_tls(tls, incoming)
        if outgoing.pending:
            await loop.sock_sendall(sock, outgoing.read())
        if plain or closed:
            return plain


def drain_tls(tls: ssl.SSLObject, incoming: ssl.MemoryBIO) -> tuple[bytes, bool]:
    """Every byte the TLS object can decrypt from what its BIO (`incoming`) holds, and whether the server
    closed TLS. OpenSSL takes one record per read and, without read-ahead (Python never sets it), takes
    from the BIO only the record it decrypts: once the BIO and the object hold nothing more, every whole
    record was read. So the usual tick (whole records) ends without asking once more for the
    SSLWantReadError that says so (an exception built with its message each time), and reads no more than
    a record holds (not 64 KiB per read). A partial record left in the BIO still ends in that error."""
    plain: list[bytes] = []
    try:
        while incoming.pending or tls.pending():
            piece = tls.read(TLS_RECORD_BYTES)
            if not piece:  # close_notify
                return b"".join(plain), True
            plain.append(piece)
    except ssl.SSLWantReadError:
        pass
    return b"".join(plain), False


async def _error_body(loop: asyncio.AbstractEventLoop, sock: socket.socket, tls: ssl.SSLObject | None,
                      incoming: ssl.MemoryBIO | None, outgoing: ssl.MemoryBIO | None, answer: HttpAnswer) -> bytes:
    """Up to ERROR_BODY_LIMIT of an error answer's body (what the head's reads brought included)."""
    decoder = BodyDecoder(answer.headers)
    body = decoder.feed(answer.body)
    while not decoder.done and len(body) < ERROR_BODY_LIMIT:
        data = await _receive(loop, sock, tls, incoming, outgoing)
        if not data:
            break
        body += decoder.feed(data)
    return body[:ERROR_BODY_LIMIT]
