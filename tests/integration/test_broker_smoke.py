"""The embedded broker answers produce/consume and keeps partition counts set by ensure_topics."""

from __future__ import annotations

from aiokafka import AIOKafkaProducer

from commands.broker import EmbeddedBroker
from core.settings import KafkaSettings
from kafka_io.topic_admin import ensure_topics
from tests.support.kafka import read_topic


async def test_topics_created_with_partitions_and_readable(broker: EmbeddedBroker) -> None:
    kafka = KafkaSettings(brokers=broker.bootstrap, partitions=3)
    await ensure_topics(kafka, ["t.one"])
    producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap, acks="all")
    await producer.start()
    try:
        for p in range(3):
            await producer.send_and_wait("t.one", b"v%d" % p, partition=p)
    finally:
        await producer.stop()
    records = await read_topic(broker.bootstrap, "t.one")
    assert sorted((p, v) for p, _, _, v in records) == [(0, b"v0"), (1, b"v1"), (2, b"v2")]
