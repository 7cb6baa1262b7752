"""On a real broker: a commit refused because the group rebalanced leaves the partition's acks
counting (app/refused_commits.py); with faust alone the refused offset is remembered as committed,
the records read again are processed but their acks ignored, and the partition is never committed
(seen once in the two-worker Prometheus test under load: `logs.raw` partition 1 stuck uncommitted).

What runs for real: the broker, aiokafka group consumers with a static member id (the second one
takes the first one's place, so the first one's commit is refused with `UnknownMemberIdError`, as in
the worker's log), and faust's own `ack`, `_new_offset`, `_commit_tps`, `_commit_offsets` and its
aiokafka consumer thread's `_commit`. What is stood in for: the rest of faust's consumer (the attributes
those methods read, and its consumer thread: the commit runs on the test's loop), and the revoke,
played by the test clearing faust's bookkeeping of the partition as `on_partitions_revoked` does while
the refused commit is in flight.
"""

from __future__ import annotations

import functools
from collections import defaultdict
from collections.abc import AsyncIterator
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from faust.transport.consumer import Consumer as FaustConsumer
from faust.transport.consumer import ThreadDelegateConsumer
from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread
from faust.types import TP as FaustTP
from intervaltree import IntervalTree

from app.refused_commits import ORIGINAL_COMMIT_OFFSETS, forget_refused_commits
from commands.broker import EmbeddedBroker
from core.settings import KafkaSettings
from kafka_io.topic_admin import ensure_topics
from tests.support.polling import wait_for

TOPIC = "refused.commit"
RECORDS = 4
TP = FaustTP(TOPIC, 0)


@dataclass(eq=False)
class HandedMessage:
    """What faust's `ack` reads of a message (hashable by identity, like faust's)."""

    acked: bool
    tp: Any
    topic: str
    offset: int


class FaustCommitStandIn:
    """The attributes faust's ack and commit path read, over a real aiokafka group consumer."""

    def __init__(self, kafka: AIOKafkaConsumer, patched: bool) -> None:
        self.kafka = kafka
        self._committed_offset: defaultdict[Any, int | None] = defaultdict(lambda: None)
        self._acked: defaultdict[Any, list[int]] = defaultdict(list)
        self._acked_index: defaultdict[Any, set[int]] = defaultdict(set)
        self._gap: defaultdict[Any, IntervalTree] = defaultdict(IntervalTree)
        self._unacked_messages: set[Any] = set()
        self._n_acked = 0
        self._waiting_for_ack = None
        self.in_transaction = False
        self.tp_last_committed_at: dict[Any, float] = {}
        self.crashed: list[BaseException] = []
        self.log = SimpleNamespace(dev=lambda *args: None, info=lambda *args: None, exception=lambda *args: None)

        async def nothing_attached(tp: Any, offset: int) -> list[Any]:
            return []

        async def flush() -> None:
            return None

        self.app = SimpleNamespace(
            topics=SimpleNamespace(acks_enabled_for=lambda topic: True),
            producer=SimpleNamespace(flush=flush),
            _attachments=SimpleNamespace(publish_for_tp_offset=nothing_attached),
            tables=SimpleNamespace(on_commit=lambda offsets: None),
            monitor=SimpleNamespace(on_tp_commit=lambda offsets: None))
        commit_offsets = FaustConsumer._commit_offsets if patched else getattr(FaustConsumer, ORIGINAL_COMMIT_OFFSETS)
        self._commit_offsets = functools.partial(commit_offsets, self)
        for name in ("ack", "_new_offset", "_should_commit", "_filter_committable_offsets", "_commit_tps",
                     "_handle_attached"):
            setattr(self, name, functools.partial(getattr(FaustConsumer, name), self))
        # the consumer thread's commit, run on the test's loop (faust runs it on its consumer thread)
        self._thread = SimpleNamespace(commit=functools.partial(AIOKafkaConsumerThread._commit, self))
        self._commit = functools.partial(ThreadDelegateConsumer._commit, self)

    def _ensure_consumer(self) -> AIOKafkaConsumer:
        return self.kafka

    def assignment(self) -> set[Any]:
        return {TP}

    async def crash(self, exc: BaseException) -> None:
        self.crashed.append(exc)

    def revoke(self) -> None:
        """What faust's `on_partitions_revoked` does to its bookkeeping of a revoked partition."""
        for table in (self._gap, self._acked, self._acked_index, self._committed_offset):
            table.pop(TP, None)

    async def process(self, records: list[Any]) -> None:
        """Each record handed to a stream and acked, as faust's stream loop does."""
        for record in records:
            self.ack(HandedMessage(acked=False, tp=TP, topic=TOPIC, offset=record.offset))

    async def commit(self) -> bool:
        result: bool = await self._commit_tps(list(self._acked), start_new_transaction=False)
        return result


@pytest.fixture
async def topic(broker: EmbeddedBroker) -> AsyncIterator[str]:
    await ensure_topics(KafkaSettings(brokers=broker.bootstrap, partitions=1), [TOPIC])
    producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap)
    await producer.start()
    try:
        for n in range(RECORDS):
            await producer.send_and_wait(TOPIC, b"record %d" % n, partition=0)
    finally:
        await producer.stop()
    yield broker.bootstrap


def group_member(bootstrap: str) -> AIOKafkaConsumer:
    """A member of one group under one static member id: a second one takes the first one's place."""
    return AIOKafkaConsumer(TOPIC, bootstrap_servers=bootstrap, group_id="refused", group_instance_id="worker-1",
                            enable_auto_commit=False, auto_offset_reset="earliest", session_timeout_ms=10_000)


async def fetch_all(consumer: AIOKafkaConsumer) -> list[Any]:
    records: list[Any] = []
    for _ in range(20):
        batch = await consumer.getmany(timeout_ms=1000)
        records += [record for part in batch.values() for record in part]
        if len(records) >= RECORDS:
            break
    return records


async def broker_committed(consumer: AIOKafkaConsumer) -> int | None:
    offset: int | None = await consumer.committed(TopicPartition(TOPIC, 0))
    return offset


@pytest.mark.parametrize("patched", [True, False], ids=["with the fix", "faust alone"])
async def test_a_refused_commit_leaves_the_acks_of_the_records_read_again_counting(topic: str, patched: bool) -> None:
    forget_refused_commits()
    first = group_member(topic)
    await first.start()
    replacement = group_member(topic)
    try:
        faust = FaustCommitStandIn(first, patched)
        records = await fetch_all(first)
        assert [r.offset for r in records] == list(range(RECORDS))
        await faust.process(records)
        tried = faust._new_offset(TP)  # the commit begins: its offsets leave faust's acked list
        assert tried == RECORDS
        await replacement.start()  # the group rebalances: this member's id is no longer known
        assert len(await fetch_all(replacement)) == RECORDS, "the replacement reads the records again"
        faust.revoke()  # while the commit is in flight
        assert await faust._commit_offsets({TP: tried}) is False  # refused: UnknownMemberIdError
        assert not faust.crashed

        await replacement.stop()  # the member that took over goes; this one rejoins and gets the partition back
        again = await fetch_all_again(first)  # read again from the broker's (absent) commit
        assert [r.offset for r in again] == list(range(RECORDS)), "the rejoined member reads every record again"
        await faust.process(again)
        committed = await faust.commit()
        if patched:
            assert committed and await broker_committed(first) == RECORDS
            assert faust._committed_offset[TP] == RECORDS
        else:  # the defect: the acks were ignored against an offset the broker never stored
            assert not committed and await broker_committed(first) is None
            assert faust._committed_offset[TP] == RECORDS
    finally:
        await replacement.stop()
        await first.stop()


async def fetch_all_again(consumer: AIOKafkaConsumer) -> list[Any]:
    """The records, once the consumer holds the partition again (from where its new assignment starts)."""
    await wait_for(lambda: TopicPartition(TOPIC, 0) in consumer.assignment(), timeout=60,
                   what="the first member to rejoin and hold the partition again")
    return await fetch_all(consumer)
