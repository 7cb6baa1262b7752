"""The one way tests wait: poll a condition until it holds or a deadline passes.

Tests never sleep a fixed time to let something happen; they wait for the thing itself, and a
timeout fails with what was awaited (and, when given, what was last seen), so a slow machine only
makes a test slower, never wrong. Deadlines are generous because they only bound a failure.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

T = TypeVar("T")


async def wait_for(check: Callable[[], Awaitable[T] | T], *, timeout: float = 60.0, what: str,
                   interval: float = 0.1, last_seen: Callable[[], Any] | None = None) -> T:
    """Await `check()` (sync or async) until it returns a truthy value, and return that value."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        result = check()
        if asyncio.iscoroutine(result) or isinstance(result, Awaitable):
            result = await result
        if result:
            return result  # type: ignore[return-value]
        if loop.time() > deadline:
            seen = f"; last seen: {last_seen()!r}" if last_seen is not None else ""
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}{seen}")
        await asyncio.sleep(interval)


def wait_for_sync(check: Callable[[], T], *, timeout: float = 60.0, what: str, interval: float = 0.1,
                  last_seen: Callable[[], Any] | None = None) -> T:
    """The same for synchronous tests and fixtures."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            seen = f"; last seen: {last_seen()!r}" if last_seen is not None else ""
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}{seen}")
        time.sleep(interval)
