"""A heartbeat publisher ends when cancelled even if the cancel was lost inside a beat.

Python 3.11's `asyncio.wait_for` drops a cancel that lands in the turn its awaitable finishes
(CPython gh-86296). A collector refused by TLS hung at exit that way: asyncio.run cancelled the
heartbeat, a connect check's wait_for swallowed it, and the heartbeat beat on forever. The beat here
swallows the cancel on purpose, the same way; no broker is involved, as the send is replaced.
"""

from __future__ import annotations

import asyncio

from core.heartbeat import Heartbeat
from core.settings import load_settings
from kafka_io.heartbeat import HeartbeatPublisher


class SwallowingPublisher(HeartbeatPublisher):
    """Each beat takes a moment and, like wait_for in the race, returns normally when cancelled."""

    def __init__(self) -> None:
        super().__init__(load_settings(environ={}, heartbeats={"interval": 0.05}), self._no_beat)
        self.beats = 0
        self.in_beat = asyncio.Event()

    @staticmethod
    def _no_beat(now: float, state: str) -> Heartbeat:
        raise AssertionError("not called: _send is replaced")

    async def _send(self, state: str) -> None:
        self.beats += 1
        self.in_beat.set()
        try:
            await asyncio.sleep(0.2)
        except asyncio.CancelledError:
            return  # the cancel is lost, as in wait_for's race


async def test_a_cancel_lost_inside_a_beat_still_ends_the_heartbeat() -> None:
    publisher = SwallowingPublisher()
    stop = asyncio.Event()
    task = asyncio.create_task(publisher.run(stop))
    await publisher.in_beat.wait()
    task.cancel()
    done, _ = await asyncio.wait({task}, timeout=2.0)
    stop.set()  # lets a heartbeat that missed its cancel end, so a failure does not hang the suite
    await asyncio.wait({task}, timeout=2.0)
    assert task in done, f"the heartbeat went on after its cancel ({publisher.beats} beats)"
    assert task.cancelled()
