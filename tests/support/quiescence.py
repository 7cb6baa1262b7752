"""Wait until a worker has consumed and committed everything on its input topics.

A test that checks that nothing more arrives (no duplicate, no second summary) cannot sleep and
hope: on a busy machine the duplicate may come later. The worker commits an input offset only
after handling the record (group: after its table update is durable; drains: after the sink
confirmed the write), so once its consumer group has committed up to the end of every input
partition, and the end offsets no longer move, everything in flight has landed.
"""

from __future__ import annotations

import asyncio

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from tests.support.polling import wait_for


async def group_behind(bootstrap: str, group_id: str, topics: list[str]) -> dict[str, int]:
    """Records of `topics` not yet committed by `group_id`, per `topic/partition` (only those behind)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await admin.start()
    await consumer.start()
    try:
        committed = await admin.list_consumer_group_offsets(group_id)
        tps = [TopicPartition(topic, p) for topic in topics for p in sorted(consumer.partitions_for_topic(topic) or ())]
        ends = await consumer.end_offsets(tps) if tps else {}
        behind = {}
        for tp, end in ends.items():
            meta = committed.get(tp)
            done = meta.offset if meta is not None and meta.offset >= 0 else 0
            if end > done:
                behind[f"{tp.topic}/{tp.partition}"] = end - done
        return behind
    finally:
        await consumer.stop()
        await admin.close()


async def wait_until_quiet(bootstrap: str, group_id: str, topics: list[str], timeout: float = 120.0) -> None:
    """Wait until `group_id` has committed to the end of every partition of `topics`, twice in a row
    half a second apart (a close or a retry in flight can still append to a sink topic)."""
    last: dict[str, int] = {}

    async def quiet_twice() -> bool:
        nonlocal last
        last = await group_behind(bootstrap, group_id, topics)
        if last:
            return False
        await asyncio.sleep(0.5)
        last = await group_behind(bootstrap, group_id, topics)
        return not last

    await wait_for(quiet_twice, timeout=timeout, interval=0.3,
                   what=f"consumer group {group_id!r} to commit to the end of {topics}", last_seen=lambda: last)
