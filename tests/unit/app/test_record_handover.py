"""faust's record loop with the inline hand-over: every record reaches its stream in order, a full queue
still holds the loop back, a suspended flow still abandons a blocked hand-over, and a record whose
queue has room costs no task. The loop runs on a real faust App's aiokafka Consumer; only its fetch
(`getmany`) is replaced by a list of records, as no broker is what is tested here."""

from __future__ import annotations

import asyncio
import hashlib
import inspect
from collections.abc import AsyncIterator
from typing import Any

import pytest
from faust.transport.consumer import Consumer as FaustConsumer
from faust.types import TP
from mode import Service

from app import record_handover
from app.faust_app import create_app
from app.record_handover import FAUST_LOOP_SHA256, hand_over
from core.settings import Settings

TOPIC = TP("logs.raw", 0)


class Record:
    def __init__(self, offset: int) -> None:
        self.offset, self.topic, self.tp = offset, TOPIC.topic, TOPIC


def test_faust_record_loop_is_the_one_the_copy_was_made_from() -> None:
    """A faust upgrade that changes `_drain_messages` fails here: review app/record_handover.py's copy."""
    source = inspect.getsource(FaustConsumer._drain_messages)
    assert hashlib.sha256(source.encode()).hexdigest() == FAUST_LOOP_SHA256


def test_the_app_installs_the_inline_loop() -> None:
    app = create_app(Settings())
    assert type(app.consumer)._drain_messages is record_handover._drain_messages


class Loop:
    """A real faust Consumer whose fetch yields `records` once, then nothing, and whose callback puts
    each record on a queue of `room` (an agent's stream buffer)."""

    def __init__(self, records: int, room: int) -> None:
        self.consumer: Any = create_app(Settings()).consumer
        self.queue: asyncio.Queue[int] = asyncio.Queue(maxsize=room)
        self.fetcher = Service()
        pending = [Record(offset) for offset in range(records)]

        async def getmany(timeout: float) -> AsyncIterator[tuple[TP, Record]]:
            batch, pending[:] = list(pending), []
            if not batch:
                await asyncio.sleep(0.01)
            for record in batch:
                yield record.tp, record

        async def callback(record: Record) -> None:
            await self.queue.put(record.offset)

        self.consumer.getmany = getmany
        self.consumer.callback = callback
        self.consumer._commit_every = None
        self.task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.task = asyncio.create_task(self.consumer._drain_messages(self.fetcher))

    async def stop(self) -> None:
        self.fetcher._stopped.set()
        assert self.task is not None
        await asyncio.wait_for(self.task, 5)


async def test_every_record_reaches_its_queue_in_order_and_a_full_queue_holds_the_loop() -> None:
    loop = Loop(records=500, room=16)
    loop.start()
    taken: list[int] = []
    while len(taken) < 500:
        await asyncio.sleep(0.001)  # a slow stream: the queue fills, the loop waits for room
        assert loop.queue.qsize() <= 16
        while not loop.queue.empty():
            taken.append(loop.queue.get_nowait())
    await loop.stop()
    assert taken == list(range(500))
    assert loop.consumer._read_offset[TOPIC] == 499


async def test_records_with_room_in_their_queue_are_handed_over_without_a_task() -> None:
    loop = Loop(records=50, room=100)
    created: list[Any] = []
    event_loop = asyncio.get_running_loop()
    factory = event_loop.get_task_factory()
    event_loop.set_task_factory(lambda lp, coro, **kw: created.append(coro) or asyncio.Task(coro, loop=lp, **kw))
    try:
        loop.start()
        while loop.queue.qsize() < 50:
            await asyncio.sleep(0.001)
    finally:
        event_loop.set_task_factory(factory)
    await loop.stop()
    assert created[0].__qualname__ == "_drain_messages"
    assert len(created) == 1, [getattr(coro, "__qualname__", coro) for coro in created]  # faust's loop: 4 a record


async def test_a_suspended_flow_abandons_a_hand_over_blocked_on_a_full_queue() -> None:
    loop = Loop(records=3, room=1)
    loop.start()
    while loop.queue.qsize() < 1:
        await asyncio.sleep(0.001)
    await asyncio.sleep(0.01)  # record 1 waits for room
    loop.consumer.suspend_flow.set()  # a rebalance began: the stream's queue will be cleared
    await asyncio.sleep(0.05)
    assert loop.queue.get_nowait() == 0
    await asyncio.sleep(0.05)
    assert loop.queue.empty(), "a hand-over abandoned by the suspended flow went on"
    await loop.stop()


class Owner(Service):  # the consumer's part hand_over uses: wait_first and the suspend-flow event
    def __init__(self) -> None:
        super().__init__()
        self.suspend_flow = asyncio.Event()


async def test_a_hand_over_that_suspends_finishes_with_what_it_awaited() -> None:
    owner, room = Owner(), asyncio.get_running_loop().create_future()
    got: list[str] = []

    async def callback() -> None:
        got.append(await room)

    handing = asyncio.create_task(hand_over(owner, callback()))
    await asyncio.sleep(0.01)
    assert not handing.done()
    room.set_result("room")
    await asyncio.wait_for(handing, 1)
    assert got == ["room"]


async def test_a_failing_callback_raises_out_of_the_hand_over_inline_or_after_suspending() -> None:
    owner = Owner()

    async def at_once() -> None:
        raise ValueError("at once")

    with pytest.raises(ValueError, match="at once"):
        await hand_over(owner, at_once())

    async def later() -> None:
        await asyncio.sleep(0.01)
        raise ValueError("later")

    with pytest.raises(ValueError, match="later"):
        await hand_over(owner, later())


async def test_a_cancelled_hand_over_cancels_its_callback() -> None:
    owner, cancelled = Owner(), asyncio.Event()

    async def callback() -> None:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    handing = asyncio.create_task(hand_over(owner, callback()))
    await asyncio.sleep(0.01)
    handing.cancel()
    await asyncio.gather(handing, return_exceptions=True)
    assert cancelled.is_set()
