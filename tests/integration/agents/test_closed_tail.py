"""Reading close ids back from `traces.closed` on the real broker, from a stored offset to the end."""

from __future__ import annotations

from aiokafka import AIOKafkaProducer

from agents.closed_tail import close_ids_after
from commands.broker import EmbeddedBroker
from core.codec import compressor
from core.models import encode_closed_traces
from core.settings import KafkaSettings, Settings
from kafka_io.topic_admin import ensure_topics


async def test_close_ids_from_an_offset_to_the_end_of_one_partition(broker: EmbeddedBroker) -> None:
    settings = Settings(kafka=KafkaSettings(brokers=broker.bootstrap, partitions=2))
    await ensure_topics(settings.kafka, ["traces.closed"])
    producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap)
    await producer.start()
    compress = compressor("lz4")
    try:
        for batch in (["a@1", "b@1"], ["c@2"], ["d@3", "e@3"]):
            summaries = [{"trace": cid.split("@")[0], "close_id": cid} for cid in batch]
            await producer.send_and_wait("traces.closed", compress(encode_closed_traces(summaries)), partition=1)
        await producer.send_and_wait("traces.closed", encode_closed_traces([{"close_id": "other@0"}]), partition=0)
    finally:
        await producer.stop()
    assert await close_ids_after(settings, "traces.closed", 1, None) == {"a@1", "b@1", "c@2", "d@3", "e@3"}
    assert await close_ids_after(settings, "traces.closed", 1, 1) == {"c@2", "d@3", "e@3"}
    assert await close_ids_after(settings, "traces.closed", 1, 3) == set()
    assert await close_ids_after(settings, "traces.closed", 0, 0) == {"other@0"}
