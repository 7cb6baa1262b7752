"""On a real broker: `end_linger` sends what a producer holds at once, in the batches it was
gathered in, and records sent afterwards linger as before (kafka_io/kafka_compat.py)."""

from __future__ import annotations

import asyncio
import time

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from commands.broker import EmbeddedBroker
from core.settings import KafkaSettings
from kafka_io.kafka_compat import end_linger
from kafka_io.topic_admin import ensure_topics

LINGER_MS = 3000  # long enough that a record waiting it out shows in the timings below


async def test_end_linger_sends_held_batches_now_and_later_records_linger(broker: EmbeddedBroker) -> None:
    topic = "linger.ends"
    await ensure_topics(KafkaSettings(brokers=broker.bootstrap, partitions=2), [topic])
    producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap, linger_ms=LINGER_MS)
    await producer.start()
    try:
        await producer.send_and_wait(topic, b"warm-up", partition=0)  # metadata known: sends append at once
        burst = [await producer.send(topic, f"r{n}".encode(), partition=n % 2) for n in range(4)]
        await asyncio.sleep(0.3)
        assert not any(fut.done() for fut in burst), "the records did not linger before end_linger"
        started = time.monotonic()
        end_linger(producer)
        metadata = await asyncio.wait_for(asyncio.gather(*burst), timeout=2.0)
        assert time.monotonic() - started < 1.0
        by_partition = {p: [m.offset for m in metadata if m.partition == p] for p in (0, 1)}
        assert by_partition[0] == [1, 2] and by_partition[1] == [0, 1]  # in order, nothing lost or doubled

        later = await producer.send(topic, b"later", partition=1)
        await asyncio.sleep(0.5)
        assert not later.done(), "a record sent after end_linger did not linger"
        assert (await asyncio.wait_for(later, timeout=LINGER_MS / 1000 + 2)).offset == 2
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(bootstrap_servers=broker.bootstrap, group_id=None, auto_offset_reset="earliest")
    await consumer.start()
    try:
        consumer.assign([TopicPartition(topic, 0), TopicPartition(topic, 1)])
        values: dict[int, list[bytes]] = {0: [], 1: []}
        deadline = time.monotonic() + 10
        while sum(map(len, values.values())) < 6 and time.monotonic() < deadline:
            for tp, records in (await consumer.getmany(timeout_ms=500)).items():
                values[tp.partition].extend(r.value for r in records)
        assert values == {0: [b"warm-up", b"r0", b"r2"], 1: [b"r1", b"r3", b"later"]}
    finally:
        await consumer.stop()
