"""Records an agent has queued survive the resume that ends a rebalance; a suspended flow still drops them.

The last test runs faust's own end of a rebalance (Recovery._resume_streams) with a consumer whose
seek to the committed offsets delivers a record meanwhile, as the real fetcher does on a busy worker:
faust's stock flow control dropped that record from the agent's queue (a replaced worker lost 10
lines of one sink record that way).
"""

from __future__ import annotations

from typing import Any

import faust

from app.faust_app import create_app
from app.stream_flow import KeepQueuedOnResume
from core.settings import Settings


def app_and_queue() -> tuple[faust.App, Any]:
    app = create_app(Settings())
    channel = app.channel()
    return app, channel.queue  # an agent's input queue: cleared by flow control on resume


def test_the_app_uses_the_flow_control_that_keeps_queued_records() -> None:
    app, queue = app_and_queue()
    assert isinstance(app.flow_control, KeepQueuedOnResume)
    assert queue in set(app.flow_control._queues)


def test_a_resume_while_the_flow_runs_keeps_what_agents_queued() -> None:
    app, queue = app_and_queue()
    app.flow_control.resume()  # the worker runs
    queue.put_nowait("record of an owned partition")
    app.flow_control.resume()  # the end of a rebalance
    assert queue.qsize() == 1


def test_a_resume_after_a_suspension_still_drops_what_was_queued() -> None:
    app, queue = app_and_queue()
    app.flow_control.resume()
    app.flow_control.suspend()  # a rebalance revokes partitions
    queue.put_nowait("record of a partition that may have moved")
    app.flow_control.resume()
    assert queue.qsize() == 0


class SeekingConsumer:
    """The consumer calls faust's end of a rebalance makes, recording them; its seek delivers a record."""

    def __init__(self, queue: Any) -> None:
        self.queue = queue
        self.calls: list[str] = []

    def assignment(self) -> set[Any]:
        return {faust.types.TP("sink.file", 0)}

    def resume_partitions(self, tps: Any) -> None:
        self.calls.append("resume_partitions")

    async def perform_seek(self) -> None:
        self.calls.append("perform_seek")
        self.queue.put_nowait("record fetched while the seek was in flight")

    def resume_flow(self) -> None:
        self.calls.append("resume_flow")


class NoFetcher:
    async def maybe_start(self) -> None:
        return None


async def test_faust_end_of_rebalance_keeps_a_record_delivered_during_the_seek() -> None:
    faust_app, queue = app_and_queue()
    app: Any = faust_app  # its consumer and fetcher replaced by the stand-ins above
    app.flow_control.resume()  # flowing since the changelogs were read
    consumer = SeekingConsumer(queue)
    app.consumer = consumer
    app.__dict__["_fetcher"] = NoFetcher()
    await app.tables.recovery._resume_streams(generation_id=app.consumer_generation_id)
    assert consumer.calls == ["resume_partitions", "perform_seek", "resume_flow"]  # faust's order
    assert queue.qsize() == 1
