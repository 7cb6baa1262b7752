"""On a real broker: a consumer pausing between empty fetches is woken by records this process's
producer gets acknowledged on its topic, instead of sleeping out its pause (kafka_io/kafka_compat.py)."""

from __future__ import annotations

import asyncio
import time

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from commands.broker import EmbeddedBroker
from core.settings import KafkaSettings
from kafka_io.kafka_compat import idle_pause, install_idle_fetch_pause, never_wake_for, pace_idle_fetches
from kafka_io.topic_admin import ensure_topics
from tests.support.polling import wait_for

CAP = 3.0  # seconds: a pause this long, once begun, would show in the delivery time without a wake-up


async def consumer_in_long_pause(broker: EmbeddedBroker, topic: str) -> AIOKafkaConsumer:
    consumer = AIOKafkaConsumer(bootstrap_servers=broker.bootstrap, group_id=None, auto_offset_reset="earliest")
    await consumer.start()
    consumer.assign([TopicPartition(topic, 0)])
    pace_idle_fetches(consumer, CAP)
    pause = idle_pause(consumer)
    # the doubling reaches the cap: the answer that returned CAP has just begun a CAP-second pause
    await wait_for(lambda: pause.next >= 2 * CAP, timeout=20, what="the fetcher's pause at its cap", interval=0.01)
    return consumer


async def test_own_acked_records_wake_a_pausing_consumer(broker: EmbeddedBroker) -> None:
    install_idle_fetch_pause()
    await ensure_topics(KafkaSettings(brokers=broker.bootstrap, partitions=1), ["wake.me", "not.mine"])
    producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap)
    await producer.start()
    consumer = await consumer_in_long_pause(broker, "wake.me")
    try:
        empty_before = idle_pause(consumer).empty
        await producer.send_and_wait("not.mine", b"elsewhere")  # a topic it does not fetch: no wake-up
        await asyncio.sleep(0.3)
        assert idle_pause(consumer).empty == empty_before

        started = time.monotonic()
        await producer.send_and_wait("wake.me", b"hello")
        records = await consumer.getmany(timeout_ms=int(CAP * 2000))
        took = time.monotonic() - started
        assert [r.value for batch in records.values() for r in batch] == [b"hello"]
        assert took < 1.0, f"the record waited out the pause ({took:.2f} s)"
    finally:
        await consumer.stop()
        await producer.stop()


async def test_acks_on_a_topic_this_process_never_reads_wake_no_fetcher(broker: EmbeddedBroker) -> None:
    """A worker's trace table changelog is assigned to its consumer but never read while the partition
    is active: each persist's changelog record woke the fetcher for nothing. The count of landed
    records is not moved either (it would make the next pause the shortest), and the pause goes on."""
    install_idle_fetch_pause()
    never_wake_for("written.not.read")
    await ensure_topics(KafkaSettings(brokers=broker.bootstrap, partitions=1), ["written.not.read"])
    producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap)
    await producer.start()
    consumer = await consumer_in_long_pause(broker, "written.not.read")
    try:
        fetcher = consumer._fetcher
        landed, fetches_before = fetcher._logweave_landed, idle_pause(consumer).fetches
        for _ in range(2):
            await producer.send_and_wait("written.not.read", b"changelog")
        await asyncio.sleep(0.3)
        assert fetcher._logweave_landed == landed and idle_pause(consumer).fetches == fetches_before
    finally:
        await consumer.stop()
        await producer.stop()
