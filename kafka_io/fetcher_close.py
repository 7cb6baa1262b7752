"""Makes an aiokafka consumer's stop() end when it comes as the fetcher puts away a lost assignment.

aiokafka 0.14's fetch routine, once its assignment is gone, cancels each fetch in flight and awaits
it inside `contextlib.suppress(asyncio.CancelledError)`. `Fetcher.close()` cancels the routine and
awaits it; if that cancel lands while the routine awaits a cancelled fetch, the suppress swallows it,
the routine goes on to wait for an assignment that never comes, and `close()` (so `consumer.stop()`,
so a worker's or collector's shutdown) waits forever. A rebalance just before a stop opens the
window: a make test run hung ten minutes in it (aio-libs/aiokafka#983 names the pattern).

`close_fetchers_reliably()` replaces `Fetcher.close` with one that cancels the routine again until
it has ended (a second cancel lands outside the suppress, where the routine ends as aiokafka means
it to), then does what the original does. Its own caller's cancellation is never swallowed.
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiokafka.consumer.fetcher import Fetcher

RECANCEL_EVERY = 0.05  # seconds between cancels of a routine that has not ended yet
_ORIGINAL = "_logweave_original_close"


def close_fetchers_reliably() -> None:
    """Patch aiokafka's Fetcher.close once per process (idempotent)."""
    if hasattr(Fetcher, _ORIGINAL):
        return
    original = Fetcher.close

    async def close(self: Any) -> None:
        task: asyncio.Task[None] = self._fetch_task
        while not task.done():
            task.cancel()
            await asyncio.wait({task}, timeout=RECANCEL_EVERY)
        await original(self)  # the routine has ended: its await returns at once

    setattr(Fetcher, _ORIGINAL, original)
    Fetcher.close = close  # type: ignore[method-assign]
