"""What reading a node's followed pod logs costs, by how the connections are read: the pod collector's floor.

The pod collector follows every pod's log as a long HTTP response (`follow=true`), each line a chunk of
its own, and its CPU per line on a live node (tests/bench/bench_live.py, `--pod-rows`) is far above the
file collector's on the same shape. This measures the part no change to the collector's line handling
can remove: taking the bytes off the connections. Per design, in a process of its own, with nothing done
to the lines but dechunking and counting them (no timestamps, cursor, batching or Kafka):

- `aiohttp, paced` - as the pod collector reads today: an aiohttp response and a task per stream, its
  bytes held in the kernel (SO_RCVLOWAT) between shared ticks and read once a tick (streamer.py);
- `protocol, paced` - an asyncio protocol per connection gathering its bytes, the same hold and ticks,
  one callback a tick for every stream (no task, no aiohttp);
- `poll per tick` - no event-loop registration at all: one callback a tick reads every socket without
  blocking (most answer EAGAIN or the few lines written since the last tick) and dechunks what came.

Each over plain HTTP and TLS, against a server process writing each of N connections RATE lines a second,
one chunk per line as the API server relays them, ticks of 0.4 s (the collector's `pods.flush_interval`).
Printed: lines/s, reads a second (stream-ticks that brought bytes), CPU s per 100K lines and per read,
beside the pod collector's target of 0.6 CPU s/100K for all of its work.

Run: `python -m tests.bench.bench_pod_reads [--shapes 200x20,1000x2] [--seconds 15]`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import resource
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp

from collectors.pods import read_hold
from collectors.pods.shared_sleep import sleep_until

TICK = 0.4  # seconds: pods.flush_interval
AHEAD = 0.01  # a held connection is released this long before its tick (streamer.RESUME_AHEAD_SECONDS)
HOLD_BYTES = 16 * 1024  # streamer.PACE_MAX_BYTES
READ_BYTES = 32 * 1024  # bytes per socket read (pods.read_bufsize; client._bound_socket_reads)
TARGET = 0.6  # CPU s per 100K lines: the pod collector's target, for all of its work
MODES = ("aiohttp", "protocol", "poll")
LABELS = {"aiohttp": "aiohttp, paced", "protocol": "protocol, paced", "poll": "poll per tick"}
LINE = b' {"level":"info","trace_id":"%032x","service":"checkout","msg":"' + b"x" * 150 + b'"}\n'


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def next_tick(now: float) -> float:
    return (now // TICK + 1) * TICK


# -- the server ------------------------------------------------------------------------------------
async def serve(port: int, rate: float, cert: str | None, key: str | None) -> None:
    """Answer every request with a chunked body, one `<timestamp> <json>` line per chunk, `rate` a second."""
    context = None
    if cert and key:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(cert, key)

    async def follow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while (await reader.readline()) not in (b"\r\n", b""):
            pass
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n")
        await asyncio.sleep(random.random() / rate)  # every stream on its own schedule
        number, start = 0, time.monotonic()
        try:
            while not writer.is_closing():
                line = b"2026-12-06T06:00:00.%09dZ" % number + (LINE % number)
                writer.write(b"%x\r\n%s\r\n" % (len(line), line))
                number += 1
                await asyncio.sleep(max(0.0, start + number / rate - time.monotonic()))
        except (ConnectionError, RuntimeError):
            pass

    server = await asyncio.start_server(follow, "127.0.0.1", port, backlog=4096, ssl=context)
    async with server:
        await server.serve_forever()


# -- dechunking ------------------------------------------------------------------------------------
class Dechunker:
    """The body of a chunked HTTP/1.1 response, from its bytes as they come (the head skipped first)."""

    __slots__ = ("buffer", "head_done")

    def __init__(self) -> None:
        self.buffer = bytearray()
        self.head_done = False

    def feed(self, data: bytes) -> bytes:
        buffer = self.buffer
        buffer += data
        if not self.head_done:
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                return b""
            del buffer[:end + 4]
            self.head_done = True
        parts: list[bytearray] = []
        position, size = 0, len(buffer)
        while True:
            line_end = buffer.find(b"\r\n", position)
            if line_end < 0:
                break
            end = line_end + 2 + int(buffer[position:line_end], 16)
            if end + 2 > size:
                break
            parts.append(buffer[line_end + 2:end])
            position = end + 2
        del buffer[:position]
        return b"".join(parts)


class Counts:
    def __init__(self) -> None:
        self.lines = 0
        self.reads = 0

    def take(self, body: bytes) -> None:
        if body:
            self.lines += body.count(b"\n")
            self.reads += 1


# -- the three ways of reading -----------------------------------------------------------------------
def bound_reads(transport: asyncio.BaseTransport) -> None:
    """At most READ_BYTES per socket read, as the pod collector has it (client._bound_socket_reads): asyncio's
    default, 256 KiB, costs an allocation that size per read."""
    if hasattr(transport, "max_size"):
        transport.max_size = READ_BYTES


def request(stream: int) -> bytes:
    return b"GET /api/v1/namespaces/demo/pods/p%d/log?follow=true&timestamps=true HTTP/1.1\r\n" \
           b"Host: 127.0.0.1\r\nAccept: text/plain\r\n\r\n" % stream


async def read_aiohttp(port: int, streams: int, context: ssl.SSLContext | None, counts: Counts) -> Callable[[], Any]:
    """A task per stream, as collectors/pods/streamer.py paces it: read what is buffered, hold the
    connection in the kernel until shortly before the next tick, wait for the tick."""
    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0, ssl=context or False),
                                    read_bufsize=16 * 1024, auto_decompress=False)
    scheme = "https" if context else "http"

    async def follow(stream: int) -> None:
        resp = await session.get(f"{scheme}://127.0.0.1:{port}/api/v1/namespaces/demo/pods/p{stream}/log",
                                 params={"follow": "true", "timestamps": "true"})
        content = resp.content
        assert resp.connection is not None and resp.connection.protocol is not None
        protocol = resp.connection.protocol
        if protocol.transport is not None:
            bound_reads(protocol.transport)
        while True:
            data = content.read_nowait(64 * 1024)
            if not data:
                data = await content.read(64 * 1024)
            counts.take(data)
            until = next_tick(time.monotonic())
            resume = read_hold.hold_reads(protocol, HOLD_BYTES)
            await sleep_until(until - AHEAD)
            resume()
            await sleep_until(until)

    tasks = [asyncio.create_task(follow(stream)) for stream in range(streams)]

    async def stop() -> None:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await session.close()
    return stop


class _Gathering(asyncio.Protocol):
    """A connection's bytes, gathered until its tick."""

    def __init__(self) -> None:
        self.pending: list[bytes] = []
        self.dechunker = Dechunker()
        self.socket: Any = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.socket = read_hold.transport_socket(transport)

    def data_received(self, data: bytes) -> None:
        self.pending.append(data)


async def read_protocol(port: int, streams: int, context: ssl.SSLContext | None, counts: Counts) -> Callable[[], Any]:
    """A protocol per connection; one callback a tick takes every connection's bytes, then holds them all in
    the kernel until shortly before the next tick (a second callback releases them)."""
    loop = asyncio.get_running_loop()
    connections: list[tuple[asyncio.Transport, _Gathering]] = []
    for stream in range(streams):
        transport, protocol = await loop.create_connection(_Gathering, "127.0.0.1", port, ssl=context)
        bound_reads(transport)
        transport.write(request(stream))
        connections.append((transport, protocol))
    handles: list[asyncio.TimerHandle] = []

    def release() -> None:
        for _, protocol in connections:
            read_hold.release(protocol.socket)

    def tick() -> None:
        for _, protocol in connections:
            if protocol.pending:
                data = b"".join(protocol.pending)
                protocol.pending.clear()
                counts.take(protocol.dechunker.feed(data))
            read_hold.hold(protocol.socket, HOLD_BYTES)
        upcoming = next_tick(loop.time())
        handles[:] = [loop.call_at(upcoming - AHEAD, release), loop.call_at(upcoming, tick)]

    handles[:] = [loop.call_at(next_tick(loop.time()), tick)]

    async def stop() -> None:
        for handle in handles:
            handle.cancel()
        for transport, _ in connections:
            transport.close()
    return stop


class _Polled:
    """A non-blocking socket read at ticks only, with TLS through a memory BIO when asked."""

    def __init__(self, sock: socket.socket, tls: ssl.SSLObject | None, incoming: ssl.MemoryBIO | None) -> None:
        self.sock = sock
        self.tls = tls
        self.incoming = incoming
        self.dechunker = Dechunker()

    def read(self) -> bytes:
        parts: list[bytes] = []
        try:
            while True:
                data = self.sock.recv(READ_BYTES)
                if not data:
                    break
                parts.append(data)
                if len(data) < READ_BYTES:
                    break
        except BlockingIOError:
            pass
        if not parts:
            return b""
        raw = b"".join(parts)
        if self.tls is None or self.incoming is None:
            return raw
        self.incoming.write(raw)
        plain: list[bytes] = []
        try:
            while True:
                plain.append(self.tls.read(READ_BYTES))
        except ssl.SSLWantReadError:
            pass
        return b"".join(plain)


def _open_polled(port: int, stream: int, context: ssl.SSLContext | None) -> _Polled:
    sock = socket.create_connection(("127.0.0.1", port))
    if context is None:
        sock.sendall(request(stream))
        sock.setblocking(False)
        return _Polled(sock, None, None)
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = context.wrap_bio(incoming, outgoing, server_hostname="127.0.0.1")
    while True:  # the handshake, blocking (set-up, not measured)
        try:
            tls.do_handshake()
            break
        except ssl.SSLWantReadError:
            sock.sendall(outgoing.read())
            incoming.write(sock.recv(65536))
    tls.write(request(stream))
    sock.sendall(outgoing.read())
    sock.setblocking(False)
    return _Polled(sock, tls, incoming)


async def read_poll(port: int, streams: int, context: ssl.SSLContext | None, counts: Counts) -> Callable[[], Any]:
    """No event-loop registration: one callback a tick reads every socket without blocking."""
    loop = asyncio.get_running_loop()
    polled = [_open_polled(port, stream, context) for stream in range(streams)]
    handles: list[asyncio.TimerHandle] = []

    def tick() -> None:
        for connection in polled:
            data = connection.read()
            if data:
                counts.take(connection.dechunker.feed(data))
        handles[:] = [loop.call_at(next_tick(loop.time()), tick)]

    handles[:] = [loop.call_at(next_tick(loop.time()), tick)]

    async def stop() -> None:
        for handle in handles:
            handle.cancel()
        for connection in polled:
            connection.sock.close()
    return stop


async def measure(mode: str, port: int, streams: int, seconds: float, ca: str | None) -> dict[str, float]:
    context = ssl.create_default_context(cafile=ca) if ca else None
    counts = Counts()
    reader = {"aiohttp": read_aiohttp, "protocol": read_protocol, "poll": read_poll}[mode]
    stop = await reader(port, streams, context, counts)
    await asyncio.sleep(2 * TICK + 1.0)  # every stream followed and past its first ticks
    cpu, lines, reads, wall = cpu_seconds(), counts.lines, counts.reads, time.monotonic()
    await asyncio.sleep(seconds)
    cpu, lines, reads, wall = (cpu_seconds() - cpu, counts.lines - lines, counts.reads - reads,
                               time.monotonic() - wall)
    await stop()
    return {"lines_per_s": lines / wall, "reads_per_s": reads / wall, "cpu_per_100k": cpu / max(lines, 1) * 1e5,
            "us_per_read": cpu / max(reads, 1) * 1e6, "cpu_ms_per_s": cpu / wall * 1e3}


# -- the run ---------------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def wait_listening(port: int, deadline: float = 10.0) -> None:
    give_up = time.monotonic() + deadline
    while time.monotonic() < give_up:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"the log server did not listen on {port}")


def tls_files(directory: Path) -> tuple[str, str, str]:
    import trustme  # a test dependency, needed only here

    authority = trustme.CA()
    server = authority.issue_cert("127.0.0.1")
    paths = [str(directory / name) for name in ("ca.pem", "cert.pem", "key.pem")]
    authority.cert_pem.write_to_path(paths[0])
    server.cert_chain_pems[0].write_to_path(paths[1])
    server.private_key_pem.write_to_path(paths[2])
    return paths[0], paths[1], paths[2]


def run_row(streams: int, rate: float, tls: bool, seconds: float, directory: Path) -> dict[str, dict[str, float]]:
    ca = cert = key = None
    if tls:
        ca, cert, key = tls_files(directory)
    port = free_port()
    server_args = [sys.executable, "-m", "tests.bench.bench_pod_reads", "--serve", str(port), "--rate", str(rate)]
    if cert and key:
        server_args += ["--cert", cert, "--key", key]
    server = subprocess.Popen(server_args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    results: dict[str, dict[str, float]] = {}
    try:
        wait_listening(port)
        for mode in MODES:
            args = [sys.executable, "-m", "tests.bench.bench_pod_reads", "--read", mode, "--port", str(port),
                    "--streams", str(streams), "--seconds", str(seconds)]
            if ca:
                args += ["--ca", ca]
            done = subprocess.run(args, capture_output=True, text=True, check=True, timeout=seconds + 120)
            results[mode] = json.loads(done.stdout.strip().splitlines()[-1])
    finally:
        server.terminate()
        server.wait(10)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shapes", default="200x20,1000x2", help="PODSxRATE, comma-separated")
    parser.add_argument("--seconds", type=float, default=15.0, help="measured window per design")
    parser.add_argument("--out", type=Path, help="write the figures as JSON here")
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--rate", type=float, default=20.0, help=argparse.SUPPRESS)
    parser.add_argument("--cert", help=argparse.SUPPRESS)
    parser.add_argument("--key", help=argparse.SUPPRESS)
    parser.add_argument("--read", choices=MODES, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--streams", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--ca", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        asyncio.run(serve(args.serve, args.rate, args.cert, args.key))
        return
    if args.read:
        print(json.dumps(asyncio.run(measure(args.read, args.port, args.streams, args.seconds, args.ca))))
        return
    report: dict[str, Any] = {}
    print(f"{'pods x lines/s':>16} {'transport':>9} {'design':<16} {'lines/s':>8} {'reads/s':>8} {'CPU s/100K':>11} "
          f"{'us/read':>8}   (pod collector target, all of its work: {TARGET} CPU s/100K)")
    with tempfile.TemporaryDirectory(prefix="logweave-pod-reads-") as tmp:
        for shape in args.shapes.split(","):
            pods, rate = shape.split("x")
            for tls in (False, True):
                row = run_row(int(pods), float(rate), tls, args.seconds, Path(tmp))
                transport = "TLS" if tls else "HTTP"
                report[f"{shape} {transport}"] = row
                for mode, figures in row.items():
                    print(f"{pods + ' x ' + rate:>16} {transport:>9} {LABELS[mode]:<16} {figures['lines_per_s']:8,.0f} "
                          f"{figures['reads_per_s']:8,.0f} {figures['cpu_per_100k']:11.3f} "
                          f"{figures['us_per_read']:8.1f}", flush=True)
    if args.out:
        args.out.write_text(json.dumps(report, indent=2))
    print(f"load average: {os.getloadavg()[0]:.1f} (a shared machine: compare designs within one run)")


if __name__ == "__main__":
    main()
