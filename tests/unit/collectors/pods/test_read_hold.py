"""Holding a socket's bytes in the kernel (read_hold.py), on real loopback TCP under the running event
loop: held bytes below the mark are not read, are read at once on release, and a held socket that
gets more than the mark is read as it comes."""

from __future__ import annotations

import asyncio
import socket
import sys
import time
from collections.abc import AsyncIterator

import pytest

from collectors.pods import read_hold

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="the kernel's low-water signal is Linux's")


class Recorder(asyncio.Protocol):
    def __init__(self) -> None:
        self.received: list[tuple[float, int]] = []
        self.transport: asyncio.BaseTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.received.append((time.monotonic(), len(data)))

    def total(self) -> int:
        return sum(size for _, size in self.received)


@pytest.fixture
async def connected() -> AsyncIterator[tuple[Recorder, socket.socket]]:
    """A client transport read by the event loop, and the server side's socket that writes to it."""
    loop = asyncio.get_running_loop()
    with socket.create_server(("127.0.0.1", 0)) as server:
        recorder = Recorder()
        transport, _ = await loop.create_connection(lambda: recorder, *server.getsockname()[:2])
        peer, _ = server.accept()
        try:
            yield recorder, peer
        finally:
            transport.close()
            peer.close()


async def wait_total(recorder: Recorder, size: int, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while recorder.total() < size and time.monotonic() < deadline:
        await asyncio.sleep(0.005)


def test_this_kernel_signals_held_bytes_on_release() -> None:
    assert read_hold.holds_reads()


async def test_held_bytes_are_not_read_until_released_then_at_once(
        connected: tuple[Recorder, socket.socket]) -> None:
    recorder, peer = connected
    sock = read_hold.transport_socket(recorder.transport)
    assert sock is not None and read_hold.hold(sock, 16 * 1024)
    for _ in range(5):  # five writes below the mark, as a slow pod's lines come
        peer.sendall(b"line\n" * 10)
        await asyncio.sleep(0.04)
    assert recorder.total() == 0, f"read while held: {recorder.received}"
    released = time.monotonic()
    read_hold.release(sock)
    await wait_total(recorder, 250, 2.0)
    assert recorder.total() == 250
    assert len(recorder.received) == 1  # the five writes in one read
    assert recorder.received[0][0] - released < 0.5  # at once, not at the next write


async def test_a_held_socket_that_gets_more_than_the_mark_is_read_as_it_comes(
        connected: tuple[Recorder, socket.socket]) -> None:
    recorder, peer = connected
    sock = read_hold.transport_socket(recorder.transport)
    assert sock is not None and read_hold.hold(sock, 1024)
    peer.sendall(b"z" * 4096)
    await wait_total(recorder, 4096, 2.0)
    assert recorder.total() == 4096
    read_hold.release(sock)


async def test_the_peer_closing_is_seen_while_held() -> None:
    loop = asyncio.get_running_loop()
    closed = loop.create_future()

    class Closing(asyncio.Protocol):
        def connection_lost(self, exc: Exception | None) -> None:
            closed.set_result(True)

    with socket.create_server(("127.0.0.1", 0)) as server:
        transport, _ = await loop.create_connection(Closing, *server.getsockname()[:2])
        peer, _ = server.accept()
        assert read_hold.hold(read_hold.transport_socket(transport), 16 * 1024)
        peer.close()
        assert await asyncio.wait_for(closed, 2.0)


def test_a_closed_socket_is_not_held_and_its_release_is_harmless() -> None:
    sock = socket.socket()
    sock.close()
    assert not read_hold.hold(sock, 1024)
    read_hold.release(sock)
    assert read_hold.transport_socket(None) is None
