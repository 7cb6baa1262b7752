"""Holding a paced stream's bytes in the kernel until its lines are due, with the socket's SO_RCVLOWAT.

A paced stream (streamer.py) is not read while it waits for its tick: the pod's writes gather in the
kernel and one socket read takes them. Pausing the transport (aiohttp's `pause_reading`) does that by
taking the socket out of the event loop's epoll set and putting it back: two `epoll_ctl` calls plus the
selector's and both protocols' Python bookkeeping, per stream per tick, about a fifth of the pod
collector's CPU on a live node. Raising the socket's receive low-water mark instead leaves the socket
registered: epoll does not report it readable until that many bytes wait (or the peer closes), and
lowering the mark again makes Linux (4.18+, `tcp_set_rcvlowat`) signal the waiting bytes at once. A pod
that writes more than the mark during a wait is read as its data comes, as a busy stream should be.

Correctness rests on that signal (without it, bytes below the mark would wait for the pod's next write),
so it is probed once per process on a loopback TCP connection; where it does not hold (or the socket is
gone), `hold_reads` pauses the transport instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import selectors
import socket
import time
from collections.abc import Callable
from typing import Any

RELEASED = 1  # the kernel's default mark: readable with one byte


@functools.cache
def holds_reads() -> bool:
    """Whether a raised SO_RCVLOWAT keeps buffered bytes from the event loop's selector and lowering it
    reports them at once (probed once, on a loopback TCP connection)."""
    if not hasattr(socket, "SO_RCVLOWAT"):
        return False
    try:
        with socket.create_server(("127.0.0.1", 0)) as server, \
                socket.create_connection(server.getsockname(), timeout=1) as client:
            peer, _ = server.accept()
            with peer, selectors.DefaultSelector() as selector:
                client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT, 1 << 16)
                selector.register(client, selectors.EVENT_READ)
                peer.sendall(b"x")
                if not _arrives(client):
                    return False
                held = selector.select(0)
                client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT, RELEASED)
                released = selector.select(0)
                return not held and bool(released)
    except OSError:
        return False


def _arrives(sock: socket.socket, tries: int = 100) -> bool:
    """Whether a byte sent over loopback reached `sock`'s receive queue (peeked, so left there; a
    non-blocking peek, since polling for it would itself wait for the mark)."""
    sock.setblocking(True)
    for _ in range(tries):
        with contextlib.suppress(BlockingIOError):
            if sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT):
                return True
        time.sleep(0.001)
    return False


def hold_reads(protocol: Any, mark: int) -> Callable[[], None]:
    """Keep the event loop from reading an aiohttp connection's `protocol` (its bytes held in the kernel
    below `mark`, else its transport paused); returns what lets it read again."""
    sock = transport_socket(protocol.transport) if holds_reads() else None
    if sock is not None and hold(sock, mark):
        return functools.partial(release, sock)
    protocol.pause_reading()
    resume: Callable[[], None] = protocol.resume_reading
    return resume


def transport_socket(transport: asyncio.BaseTransport | None) -> Any:
    """The socket under a transport (TLS included), or None when it has none or is closing."""
    if transport is None or transport.is_closing():
        return None
    return transport.get_extra_info("socket")


def hold(sock: Any, mark: int) -> bool:
    """Keep the event loop from reading `sock` until `mark` bytes wait; False if it could not (closed)."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT, mark)
    except OSError:
        return False
    return True


def release(sock: Any) -> None:
    """Let the event loop read `sock` again; what waits is reported readable at once."""
    with contextlib.suppress(OSError):  # closed meanwhile: nothing to read any more
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT, RELEASED)
