"""records_landed: acks are counted on the fetchers of their topic, and only a pausing fetcher gets a
cross-thread wake-up (kafka_io/kafka_compat.py); an ack is never missed, whichever side goes first."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest

from kafka_io import kafka_compat
from kafka_io.kafka_compat import FIRST_IDLE_PAUSE, records_landed


class CountingLoop:
    """The fetcher's loop, counting the cross-thread calls made to it."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop, self.calls = loop, 0

    def call_soon_threadsafe(self, callback: Any, *args: Any) -> Any:
        self.calls += 1
        return self.loop.call_soon_threadsafe(callback, *args)


class Fetcher:
    """What the patched aiokafka Fetcher carries for wake-ups (weakly referenced, like the real one)."""


@pytest.fixture
def fetcher() -> Any:
    made = Fetcher()
    yield made
    kafka_compat._FETCHERS.discard(made)


def register(fetcher: Any, loop: asyncio.AbstractEventLoop, topics: set[str]) -> CountingLoop:
    kafka_compat._pause_of(fetcher)
    fetcher._logweave_topics = frozenset(topics)
    fetcher._logweave_loop = counting = CountingLoop(loop)
    kafka_compat._FETCHERS.add(fetcher)
    return counting


async def test_an_ack_between_the_answer_and_the_pause_ends_the_pause_at_once(fetcher: Any) -> None:
    register(fetcher, asyncio.get_running_loop(), {"t"})
    seen = fetcher._logweave_landed  # the fetcher has read its answer
    records_landed("t")  # no waiter yet: nothing is woken, the ack is only counted
    started = time.monotonic()
    await asyncio.wait_for(kafka_compat._pause(fetcher, 5.0, seen), timeout=2.0)
    assert time.monotonic() - started < 1.0
    assert kafka_compat._pause_of(fetcher).next == FIRST_IDLE_PAUSE  # the doubling starts over


async def test_acks_while_not_pausing_make_no_cross_thread_call(fetcher: Any) -> None:
    counting = register(fetcher, asyncio.get_running_loop(), {"t"})
    for _ in range(1000):
        records_landed("t")
        records_landed("other")  # a topic it does not fetch: not even counted
    assert fetcher._logweave_landed == 1000
    assert counting.calls == 0


async def test_acks_from_another_thread_wake_a_pausing_fetcher_once(fetcher: Any) -> None:
    counting = register(fetcher, asyncio.get_running_loop(), {"t"})
    pausing = asyncio.ensure_future(kafka_compat._pause(fetcher, 30.0, fetcher._logweave_landed))
    while not fetcher._logweave_waiters:
        await asyncio.sleep(0.001)

    def acks() -> None:
        for _ in range(200):
            records_landed("t")

    started = time.monotonic()
    thread = threading.Thread(target=acks)
    thread.start()
    await asyncio.wait_for(pausing, timeout=5.0)
    thread.join()
    assert time.monotonic() - started < 2.0
    assert counting.calls == 1  # one wake-up in flight at a time
    await asyncio.sleep(0.01)
    assert not fetcher._logweave_wake_pending


def test_no_ack_from_another_thread_is_missed_by_back_to_back_pauses(fetcher: Any) -> None:
    """A fetcher loop pausing over and over and a producer thread acking every half millisecond:
    no pause that acks landed in waits out its seconds (wake-ups keep coming after the first)."""
    loop = asyncio.new_event_loop()
    register(fetcher, loop, {"t"})
    slow: list[float] = []
    done = threading.Event()

    async def pauses() -> None:
        while not done.is_set():
            seen = fetcher._logweave_landed
            await asyncio.sleep(0)  # an answer arriving: acks may land from here on
            started = time.monotonic()
            await kafka_compat._pause(fetcher, 2.0, seen)
            if fetcher._logweave_landed != seen and time.monotonic() - started > 1.0:
                slow.append(time.monotonic() - started)

    runner = threading.Thread(target=loop.run_until_complete, args=(pauses(),))
    runner.start()
    try:
        deadline = time.monotonic() + 1.5
        while time.monotonic() < deadline:
            records_landed("t")
            time.sleep(0.0005)
    finally:
        done.set()
        records_landed("t")  # ends the last pause
        runner.join(timeout=5)
        loop.close()
    assert not runner.is_alive()
    assert slow == []
