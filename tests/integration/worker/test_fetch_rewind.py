"""On a real broker: records faust's `getmany` took from Kafka but dropped (a rebalance began while it
handed a batch to the streams) are fetched again (app/fetch_rewind.py); with faust's own `getmany`
the partition's position stays past them and they are never read (lines lost in
tests/e2e/test_scale_out.py under a burst of rebalances).

What runs for real: the broker, an aiokafka group consumer (what faust's consumer thread drives), and
faust's own `getmany` and `_wait_next_records` code, patched as a worker patches them. What is stood
in for: faust's consumer-thread plumbing (`_thread.call_thread` runs the call on the test's loop,
`_getmany` is the aiokafka consumer's `getmany`), and the rebalance, played by the test turning the
flow off, the group generation moving on, or the partition paused after the first record of a batch
is handed, as faust's rebalance callbacks do.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator, Awaitable, Callable
from types import SimpleNamespace
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from faust.transport.drivers.aiokafka import Consumer
from faust.transport.utils import DefaultSchedulingStrategy

from agents.fetched_batch import fetched_batch
from app.fetch_rewind import ORIGINAL_GETMANY, first_unhanded_offsets, rewind_positions, rewind_unhanded_records
from commands.broker import EmbeddedBroker
from core.settings import KafkaSettings
from kafka_io.topic_admin import ensure_topics
from tests.support.polling import wait_for

TOPIC = "rewind.me"
RECORDS = 6
TP = TopicPartition(TOPIC, 0)


class FaustConsumerStandIn:
    """The attributes faust's `getmany`/`_wait_next_records` read, over a real aiokafka consumer."""

    def __init__(self, kafka: AIOKafkaConsumer) -> None:
        self.kafka = kafka
        self.flow_active = True
        self.should_stop = False
        self.not_waiting_next_records = asyncio.Event()
        self.scheduler = DefaultSchedulingStrategy()
        self._buffered_partitions: set[Any] = set()
        self.app = SimpleNamespace(client_only=False, consumer_generation_id=1,
                                   monitor=SimpleNamespace(track_tp_end_offset=lambda tp, offset: None))
        self._thread = SimpleNamespace(call_thread=self.call_thread, _ensure_consumer=lambda: kafka)
        self._wait_next_records = functools.partial(Consumer._wait_next_records, self)
        self.seeks_to_committed = 0
        self.active: set[Any] = {TP}
        self.log = SimpleNamespace(dev=lambda *args: None, warning=lambda *args: None)

    async def call_thread(self, fun: Callable[..., Awaitable[Any]], *args: Any) -> Any:
        return await fun(*args)

    def _get_active_partitions(self) -> set[Any]:
        return self.active  # the set faust checks each record against while it hands the batch

    async def _getmany(self, active_partitions: set[Any], timeout: float) -> Any:
        return await self.kafka.getmany(*active_partitions, timeout_ms=int(timeout * 1000))

    def highwater(self, tp: Any) -> int:
        return RECORDS

    def _to_message(self, tp: Any, record: Any) -> Any:
        return record

    async def perform_seek(self) -> None:
        self.seeks_to_committed += 1
        await self.kafka.seek_to_committed()


Disturb = Callable[[FaustConsumerStandIn], object]
# What makes faust stop handing a batch on (the first) and what ends it (the second).
DISTURBANCES: dict[str, tuple[Disturb, Disturb]] = {
    "flow suspended": (lambda c: setattr(c, "flow_active", False),  # faust's revoke callback: stop_flow()
                       lambda c: setattr(c, "flow_active", True)),
    "generation changed": (lambda c: setattr(c.app, "consumer_generation_id", 2),  # a rebalance completed
                           lambda c: None),
    "partition paused": (lambda c: c.active.discard(TP), lambda c: c.active.add(TP)),
}


async def handed_until_disturbed(consumer: FaustConsumerStandIn, getmany: Callable[..., AsyncIterator[Any]],
                                 disturb: Disturb) -> list[int]:
    """One faust fetch cycle disturbed once the first record is handed."""
    handed = []
    async for _tp, record in getmany(consumer, 5.0):
        handed.append(record.offset)
        disturb(consumer)
    return handed


async def member_with_records(broker: EmbeddedBroker, group: str) -> AIOKafkaConsumer:
    consumer = AIOKafkaConsumer(TOPIC, bootstrap_servers=broker.bootstrap, group_id=group,
                                enable_auto_commit=False, auto_offset_reset="earliest")
    await consumer.start()
    await wait_for(lambda: TP in consumer.assignment(), timeout=30, what="the partition assigned")
    return consumer


async def produce(broker: EmbeddedBroker) -> None:
    await ensure_topics(KafkaSettings(brokers=broker.bootstrap, partitions=1), [TOPIC])
    producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap)
    await producer.start()
    try:
        batch = producer.create_batch()
        for n in range(RECORDS):  # one batch: one fetch returns them all
            batch.append(key=None, value=b"%d" % n, timestamp=None)
        await producer.send_batch(batch, TOPIC, partition=0)
        await producer.flush()
    finally:
        await producer.stop()


@pytest.mark.parametrize("disturbance", list(DISTURBANCES))
async def test_records_dropped_mid_batch_are_fetched_again(broker: EmbeddedBroker, disturbance: str) -> None:
    """Each way faust drops the rest of a batch: the flow suspended, the generation changed, the
    partition paused while the batch was handed."""
    disturb, settle = DISTURBANCES[disturbance]
    rewind_unhanded_records()
    await produce(broker)
    original_getmany = getattr(Consumer, ORIGINAL_GETMANY)
    group = disturbance.replace(" ", "-")

    plain = FaustConsumerStandIn(await member_with_records(broker, f"faust-{group}"))
    try:  # faust alone: the rest of the batch is dropped, the position stays past it
        assert await handed_until_disturbed(plain, original_getmany, disturb) == [0]
        assert await plain.kafka.position(TP) == RECORDS
    finally:
        await plain.kafka.stop()

    patched = FaustConsumerStandIn(await member_with_records(broker, f"rewinding-{group}"))
    try:
        assert await handed_until_disturbed(patched, Consumer.getmany, disturb) == [0]
        assert await patched.kafka.position(TP) == 1  # back at the first record not handed
        settle(patched)  # the next cycle hands the rest, and nothing handed before
        rest = [record.offset async for _tp, record in Consumer.getmany(patched, 5.0)]
        assert rest == list(range(1, RECORDS))
    finally:
        await patched.kafka.stop()


async def batch_while_the_flow_goes_off(consumer: FaustConsumerStandIn,
                                       getmany: Callable[..., AsyncIterator[Any]]) -> list[Any]:
    """One faust fetch cycle whose fetch returns after a rebalance began (the flow is off)."""
    real_getmany = consumer._getmany

    async def fetch_then_rebalance(active_partitions: set[Any], timeout: float) -> Any:
        records = await real_getmany(active_partitions, timeout)
        assert records, "the fetch returned the records"
        consumer.flow_active = False  # the rebalance began while the fetch was in flight
        return records

    consumer._getmany = fetch_then_rebalance  # type: ignore[method-assign]
    return [handed async for handed in getmany(consumer, 5.0)]


async def test_a_batch_arriving_while_the_flow_is_off_is_fetched_again_without_a_commit(
        broker: EmbeddedBroker) -> None:
    """faust seeks to the committed offsets here, which leaves a partition with no commit past the
    records; the rewind puts it back at the first of them."""
    rewind_unhanded_records()
    await produce(broker)
    plain = FaustConsumerStandIn(await member_with_records(broker, "flow-off-faust"))
    try:
        assert await batch_while_the_flow_goes_off(plain, getattr(Consumer, ORIGINAL_GETMANY)) == []
        assert plain.seeks_to_committed == 1
        assert await plain.kafka.position(TP) == RECORDS
    finally:
        await plain.kafka.stop()

    patched = FaustConsumerStandIn(await member_with_records(broker, "flow-off-rewound"))
    try:
        assert await batch_while_the_flow_goes_off(patched, Consumer.getmany) == []
        assert patched.seeks_to_committed == 1
        assert await patched.kafka.position(TP) == 0
    finally:
        await patched.kafka.stop()


async def test_while_a_batch_is_handed_its_tracker_counts_what_is_still_to_come(broker: EmbeddedBroker) -> None:
    """The count parse and group ask before they flush (agents/fetched_batch.py): while faust's
    getmany hands a fetched batch, each record handed leaves one fewer; a batch stopped midway (the
    flow suspended) holds nothing once getmany returns."""
    rewind_unhanded_records()
    await produce(broker)
    consumer = FaustConsumerStandIn(await member_with_records(broker, "tracker"))
    try:
        fetched = fetched_batch(consumer)
        still_to_come = []
        async for _tp, _record in Consumer.getmany(consumer, 5.0):
            still_to_come.append(fetched.left.get(TOPIC, 0))
        assert still_to_come == list(range(RECORDS - 1, -1, -1))
        assert not fetched.holds([TOPIC])
        consumer.kafka.seek(TP, 0)
        async for _tp, _record in Consumer.getmany(consumer, 5.0):
            assert fetched.holds([TOPIC])
            consumer.flow_active = False  # faust stops handing the batch after this record
        assert not fetched.holds([TOPIC])
    finally:
        await consumer.kafka.stop()


async def test_rewind_leaves_a_partition_already_moved_back_or_not_assigned(broker: EmbeddedBroker) -> None:
    await produce(broker)
    kafka = await member_with_records(broker, "moved-back")
    try:
        await kafka.getmany(TP, timeout_ms=5000)
        kafka.seek(TP, 2)  # e.g. the seek to a committed offset already put it before the records
        assert await rewind_positions(kafka, {TP: 4, TopicPartition("elsewhere", 0): 0}) == {}
        assert await kafka.position(TP) == 2
        assert await rewind_positions(kafka, {TP: 1}) == {TP: 1}
        assert await kafka.position(TP) == 1
    finally:
        await kafka.stop()


def test_first_unhanded_offsets_per_partition() -> None:
    record = lambda offset: SimpleNamespace(offset=offset)  # noqa: E731
    batch = {"a": [record(5), record(6), record(7)], "b": [record(0), record(1)], "c": [record(9)]}
    assert first_unhanded_offsets(batch, {"a": 5, "b": 1}) == {"a": 6, "c": 9}
