"""On a real broker: the seek that faust makes after dropping records it fetched while its flow was
suspended puts a partition with no committed offset back at its start (app/uncommitted_seek.py),
where aiokafka's own `seek_to_committed` leaves it past the dropped records: they were never read
again, and lines of the first records of a topic were lost (tests/e2e/test_scale_out.py).

The consumer here is a plain aiokafka group member; what faust does around the seek (dropping the
records) is played by the test taking them with `getmany` and not using them.
"""

from __future__ import annotations

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from app.uncommitted_seek import seek_consumer_to_committed
from commands.broker import EmbeddedBroker
from core.settings import KafkaSettings
from kafka_io.topic_admin import ensure_topics
from tests.support.polling import wait_for

TOPIC = "rewind.me"
RECORDS = 5
UNCOMMITTED, COMMITTED = TopicPartition(TOPIC, 0), TopicPartition(TOPIC, 1)


async def member_past_its_records(broker: EmbeddedBroker, group: str) -> AIOKafkaConsumer:
    """A group member that holds both partitions, has 2 committed on COMMITTED and nothing on
    UNCOMMITTED, and has taken every record (its positions are at the end)."""
    consumer = AIOKafkaConsumer(TOPIC, bootstrap_servers=broker.bootstrap, group_id=group,
                                enable_auto_commit=False, auto_offset_reset="earliest")
    await consumer.start()
    await wait_for(lambda: len(consumer.assignment()) == 2, timeout=30, what="both partitions assigned")
    await consumer.commit({COMMITTED: 2})
    async def at_end() -> bool:
        await consumer.getmany(timeout_ms=200)
        return all([await consumer.position(tp) == RECORDS for tp in (UNCOMMITTED, COMMITTED)])

    await wait_for(at_end, timeout=30, what="every record taken")
    return consumer


async def test_uncommitted_partitions_are_rewound_to_their_start(broker: EmbeddedBroker) -> None:
    await ensure_topics(KafkaSettings(brokers=broker.bootstrap, partitions=2), [TOPIC])
    producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap)
    await producer.start()
    try:
        for n in range(RECORDS):
            for tp in (UNCOMMITTED, COMMITTED):
                await producer.send_and_wait(TOPIC, b"%d" % n, partition=tp.partition)
    finally:
        await producer.stop()

    plain = await member_past_its_records(broker, "plain-seek")
    try:  # aiokafka alone: the uncommitted partition stays past the records just dropped
        committed = await plain.seek_to_committed()
        assert committed == {UNCOMMITTED: None, COMMITTED: 2}
        assert (await plain.position(UNCOMMITTED), await plain.position(COMMITTED)) == (RECORDS, 2)
    finally:
        await plain.stop()

    rewound = await member_past_its_records(broker, "rewound-seek")
    try:
        committed = await seek_consumer_to_committed(rewound, "earliest")
        assert committed == {UNCOMMITTED: None, COMMITTED: 2}
        assert (await rewound.position(UNCOMMITTED), await rewound.position(COMMITTED)) == (0, 2)
        batches = await rewound.getmany(UNCOMMITTED, timeout_ms=5000)
        assert [r.offset for r in batches.get(UNCOMMITTED, [])][:1] == [0]  # read again from its first record
    finally:
        await rewound.stop()

    latest = await member_past_its_records(broker, "latest-seek")
    try:  # a consumer configured to start new partitions at their end goes there
        await seek_consumer_to_committed(latest, "latest")
        assert await latest.position(UNCOMMITTED) == RECORDS
    finally:
        await latest.stop()
