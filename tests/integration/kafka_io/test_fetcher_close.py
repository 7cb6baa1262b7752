"""On a real broker: a consumer stopped while its fetcher is putting away the fetches of an assignment
it just lost stops, instead of hanging forever (kafka_io/fetcher_close.py).

aiokafka's fetch routine, on losing its assignment, cancels each fetch in flight and awaits it with
CancelledError suppressed; `Fetcher.close()` cancelling the routine at that moment is swallowed
there, the routine then waits for an assignment that never comes, and `close()` awaits it forever
(a make test run hung 10 minutes in `consumer.stop()` after a rebalance). The window is one fetch's
cancellation; the test holds it open: a cancelled fetch in flight ends only once `close()` has
cancelled the fetch routine (at most UNWIND s), and empty fetches are held as Kafka does (the embedded
broker answers them at once): faults injected into the fetch request, so that the race is hit on
every run, however long the consumer's stop takes to reach `close()` on a busy machine (a fixed 1 s
unwind was over before it did, and the original close then returned).
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.consumer.fetcher import Fetcher

from commands.broker import EmbeddedBroker
from core.settings import KafkaSettings
from kafka_io.fetcher_close import close_fetchers_reliably
from kafka_io.topic_admin import ensure_topics
from tests.support.polling import wait_for

UNWIND = 10.0  # seconds a cancelled fetch waits at most for the fetch routine's own cancel
HOLD = 5.0  # seconds an empty fetch is held (the embedded broker answers at once)


class Fetches:
    def __init__(self) -> None:
        self.running = 0
        self.unwinding = asyncio.Event()  # a fetch was cancelled and is unwinding


@pytest.fixture
def slow_to_cancel_fetches(monkeypatch: pytest.MonkeyPatch) -> Fetches:
    """Fetch requests that, once cancelled, end only once the fetch routine awaiting them is cancelled
    too (Fetcher.close), or after UNWIND seconds."""
    fetches = Fetches()
    original = Fetcher._proc_fetch_request

    async def _proc_fetch_request(self: Any, assignment: Any, node_id: Any, request: Any) -> Any:
        fetches.running += 1
        task = asyncio.current_task()
        assert task is not None
        try:
            has_data = await original(self, assignment, node_id, request)
            if not has_data and not task.cancelling():  # held, as Kafka holds an empty fetch (fetch.max.wait.ms)
                await asyncio.sleep(HOLD)
            if task.cancelling():  # the idle pause (kafka_io/kafka_compat.py), if installed, ends on the cancel
                raise asyncio.CancelledError
            return has_data
        except asyncio.CancelledError:
            fetches.unwinding.set()
            routine = self._fetch_task
            deadline = asyncio.get_running_loop().time() + UNWIND
            while not routine.cancelling() and asyncio.get_running_loop().time() < deadline:
                await asyncio.sleep(0.005)
            raise
        finally:
            fetches.running -= 1

    monkeypatch.setattr(Fetcher, "_proc_fetch_request", _proc_fetch_request)
    return fetches


async def stop_while_unassigning(broker: EmbeddedBroker, fetches: Fetches, within: float) -> bool:
    """Whether `consumer.stop()`, called as the fetcher puts away its fetches, returned within `within` s."""
    await ensure_topics(KafkaSettings(brokers=broker.bootstrap, partitions=1), ["close.me"])
    consumer = AIOKafkaConsumer(bootstrap_servers=broker.bootstrap, group_id=None, fetch_max_wait_ms=5000)
    await consumer.start()
    consumer.assign([TopicPartition("close.me", 0)])
    await wait_for(lambda: fetches.running > 0, timeout=20, what="a fetch in flight", interval=0.005)
    consumer.assign([])  # the fetcher loses its assignment and cancels the fetch in flight
    await asyncio.wait_for(fetches.unwinding.wait(), 20)  # its routine now awaits the cancelled fetch
    stopping = asyncio.ensure_future(consumer.stop())
    done, _ = await asyncio.wait({stopping}, timeout=within)
    if not done:  # unstick it for the next test: a second cancel reaches the routine outside the suppress
        consumer._fetcher._fetch_task.cancel()
        await stopping
    return bool(done)


async def test_a_consumer_stopped_while_its_fetches_unwind_stops(
        broker: EmbeddedBroker, slow_to_cancel_fetches: Fetches) -> None:
    close_fetchers_reliably()
    assert await stop_while_unassigning(broker, slow_to_cancel_fetches, within=10 + UNWIND)


async def test_without_the_fix_the_same_stop_hangs(
        broker: EmbeddedBroker, slow_to_cancel_fetches: Fetches, monkeypatch: pytest.MonkeyPatch) -> None:
    """The scenario really reaches the race: aiokafka's own close() never returns from it."""
    monkeypatch.setattr(Fetcher, "close", getattr(Fetcher, "_logweave_original_close", Fetcher.close))
    assert not await stop_while_unassigning(broker, slow_to_cancel_fetches, within=5)
