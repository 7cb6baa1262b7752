"""InOrderAcks: a batch of input events is acked, and progress advanced, only after all its outputs."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from faust.types import TP

from agents.backlog import SourceProgress
from agents.batching import InOrderAcks, Linger

RAW = TP("logs.raw", 0)


@dataclass
class Message:
    tp: TP
    offset: int


@dataclass
class Event:
    """What InOrderAcks uses of a faust event: its message and ack()."""

    message: Message
    acked: list[int] = field(default_factory=list)

    def ack(self) -> bool:
        self.acked.append(self.message.offset)
        return True


def events(*offsets: int, log: list[int]) -> list[Event]:
    return [Event(Message(RAW, offset), log) for offset in offsets]


async def test_acks_wait_for_every_output_and_keep_batch_order() -> None:
    loop = asyncio.get_running_loop()
    acked: list[int] = []
    progress = SourceProgress()
    acks = InOrderAcks("parse", progress)
    first, second = [loop.create_future() for _ in range(2)], [loop.create_future()]
    acks.add(events(0, 1, log=acked), first)
    acks.add(events(2, log=acked), second)
    second[0].set_result(None)
    first[0].set_result(None)
    await asyncio.sleep(0)
    assert acked == [] and RAW not in progress.next_offset, "nothing acked before the first batch's last output"
    first[1].set_result(None)
    await asyncio.sleep(0)
    assert acked == [0, 1, 2] and progress.next_offset[RAW] == 3
    assert acks.pending == 0


async def test_a_failed_output_leaves_its_batch_and_later_ones_unacked() -> None:
    loop = asyncio.get_running_loop()
    acked: list[int] = []
    progress = SourceProgress()
    acks = InOrderAcks("parse", progress)
    failing, later = loop.create_future(), loop.create_future()
    acks.add(events(0, log=acked), [failing])
    acks.add(events(1, log=acked), [later])
    failing.set_exception(RuntimeError("broker refused"))
    later.set_result(None)
    await asyncio.sleep(0)
    assert acked == [] and RAW not in progress.next_offset and acks.pending == 2


async def test_outputs_already_done_ack_at_once() -> None:
    loop = asyncio.get_running_loop()
    done = loop.create_future()
    done.set_result(None)
    acked: list[int] = []
    InOrderAcks("group").add(events(5, log=acked), [done])
    assert acked == [5]


async def test_linger_flushes_a_batch_nothing_else_flushed() -> None:
    flushed = asyncio.Event()
    linger: Linger

    async def flush() -> None:
        linger.flushed()
        flushed.set()

    linger = Linger(0.05, flush)
    task = asyncio.ensure_future(linger.run())
    try:
        linger.started()
        assert not linger.due()
        await asyncio.wait_for(flushed.wait(), 10)
        assert not linger.due()
    finally:
        task.cancel()
