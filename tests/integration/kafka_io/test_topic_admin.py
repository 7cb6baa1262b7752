"""Topic bounds on a real broker (noida-db): what `logweave prepare` sets, and that the broker keeps to it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from commands.broker import EmbeddedBroker
from core.settings import Settings, load_settings
from core.topics import POSITIONS, RAW, TRACES_CLOSED, changelog_topic, sink_topic
from kafka_io.topic_admin import ensure_topics, prepare_worker_topics, topic_configs
from tests.support.kafka import start_broker
from tests.support.polling import wait_for


@pytest.fixture(scope="module")
def shared_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedBroker]:
    broker = start_broker(tmp_path_factory.mktemp("topic-admin") / "broker")
    yield broker
    broker.stop(kill=True)


def bounded(broker: EmbeddedBroker, prefix: str, **kafka: object) -> Settings:
    return load_settings(kafka={"brokers": broker.bootstrap, "topic_prefix": prefix, **kafka},
                         sinks={"enabled": ["file"]})


async def test_prepare_sets_time_and_byte_bounds_on_pipeline_topics_not_on_changelog_or_compacted(
        shared_broker: EmbeddedBroker) -> None:
    settings = bounded(shared_broker, "bounded.", topic_retention="2h", topic_retention_bytes="16MiB")
    await prepare_worker_topics(settings, timeout=30)
    await ensure_topics(settings.kafka, [settings.topic(POSITIONS)], timeout=30, compacted=True)
    changelog = changelog_topic(settings.worker.app_id)
    pipeline = [settings.topic(name) for name in (RAW, TRACES_CLOSED, sink_topic("file"))]
    configs = await topic_configs(settings.kafka, [*pipeline, changelog, settings.topic(POSITIONS)])
    for name in pipeline:
        assert configs[name]["retention.ms"] == str(2 * 3600 * 1000), name
        assert configs[name]["retention.bytes"] == str(16 * 1024 * 1024), name
        assert configs[name]["segment.bytes"] == str(4 * 1024 * 1024), name  # else no segment ever closes
        assert configs[name]["segment.ms"] == str(1800 * 1000), name
    assert configs[changelog]["retention.ms"] == str(int(settings.traces.changelog_retention * 1000))
    assert configs[changelog]["retention.bytes"] == "-1"  # a byte bound would drop open traces' state
    assert configs[changelog]["segment.ms"] == str(int(settings.traces.changelog_retention * 1000) // 4)
    assert configs[settings.topic(POSITIONS)]["cleanup.policy"] == "compact"
    assert configs[settings.topic(POSITIONS)]["retention.bytes"] == "-1"


async def test_without_bounds_the_brokers_defaults_stay(shared_broker: EmbeddedBroker) -> None:
    settings = bounded(shared_broker, "unbounded.")
    await prepare_worker_topics(settings, timeout=30)
    raw = settings.topic(RAW)
    configs = (await topic_configs(settings.kafka, [raw]))[raw]
    assert configs["retention.bytes"] == "-1" and configs["retention.ms"] == str(7 * 86400 * 1000)


async def test_the_broker_drops_what_exceeds_the_byte_bound(shared_broker: EmbeddedBroker) -> None:
    settings = bounded(shared_broker, "small.", partitions=1, topic_retention_bytes="4MiB")
    raw = settings.topic(RAW)
    await ensure_topics(settings.kafka, [raw], timeout=30)
    producer = AIOKafkaProducer(bootstrap_servers=shared_broker.bootstrap)
    consumer = AIOKafkaConsumer(bootstrap_servers=shared_broker.bootstrap)
    await producer.start()
    await consumer.start()
    try:
        for _ in range(100):  # 10 MB, 100 KB a record
            await producer.send_and_wait(raw, b"x" * 100_000)
        partition = TopicPartition(raw, 0)

        async def within_bound() -> bool:  # at most the bound plus one 1 MiB segment: about 52 records, not 100
            return 100 - (await consumer.beginning_offsets([partition]))[partition] <= 55

        # the broker's retention pass may drop the old segments over more than one run (and late on a busy
        # machine): wait for the bound itself, not for the first drop
        await wait_for(within_bound, timeout=90, what="the broker to keep at most 55 of 100 records (4 MiB)")
    finally:
        await producer.stop()
        await consumer.stop()
