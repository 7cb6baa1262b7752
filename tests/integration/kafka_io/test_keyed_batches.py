"""On a real broker: `send_batched` puts each keyed record in the partition aiokafka's own keyed
`send` picks, in order per key, tombstones included, across more records than one batch holds."""

from __future__ import annotations

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from commands.broker import EmbeddedBroker
from core.settings import KafkaSettings
from kafka_io.keyed_batches import Record, send_batched
from kafka_io.topic_admin import ensure_topics
from tests.support.kafka import read_topic


async def test_records_land_where_a_keyed_send_puts_them_in_order(broker: EmbeddedBroker) -> None:
    batched, reference = "keyed.batched", "keyed.reference"
    await ensure_topics(KafkaSettings(brokers=broker.bootstrap, partitions=3), [batched, reference])
    # 3,000 records of ~1 KB: more than one 16 KiB batch per partition, so full builders are sent on the way
    records: list[Record] = [(f"stream-{n % 40}".encode(), b"%d " % n + b"x" * 1000, []) for n in range(3000)]
    records.append((b"stream-7", None, []))  # a tombstone
    producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap)
    await producer.start()
    try:
        await send_batched(producer, batched, iter(records))
        for key, value, _ in records:
            await producer.send(reference, key=key, value=value)
        await producer.flush()
    finally:
        await producer.stop()
    got, expected = await read_topic(broker.bootstrap, batched), await read_topic(broker.bootstrap, reference)
    assert len(got) == len(records) - 1  # read_topic leaves tombstones out
    assert await end_offsets(broker.bootstrap, batched) == await end_offsets(broker.bootstrap, reference)

    def by_key(rows: list[tuple[int, int, bytes | None, bytes]]) -> dict[bytes | None, tuple[set[int], list[bytes]]]:
        out: dict[bytes | None, tuple[set[int], list[bytes]]] = {}
        for partition, _offset, key, value in rows:
            entry = out.setdefault(key, (set(), []))
            entry[0].add(partition)
            entry[1].append(value)
        return out

    assert by_key(got) == by_key(expected)  # same partition per key, same values in the same order
    assert len({partition for partition, *_ in got}) == 3


async def end_offsets(bootstrap: str, topic: str) -> dict[int, int]:
    """Records per partition, tombstones included."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(3)]
        return {tp.partition: offset for tp, offset in (await consumer.end_offsets(tps)).items()}
    finally:
        await consumer.stop()
