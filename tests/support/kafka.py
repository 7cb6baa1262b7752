"""Test helpers for the real Kafka-protocol broker (noida-db): start one, read topics back."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any, cast

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.coordinator.protocol import ConsumerProtocolMemberAssignment

from commands.broker import EmbeddedBroker, free_port


def start_broker(data_dir: Path, with_elasticsearch: bool = False) -> EmbeddedBroker:
    """Start noida-db on free loopback ports with a fresh data dir (SIGKILL it at teardown)."""
    es_port = free_port() if with_elasticsearch else None
    return EmbeddedBroker(data_dir=data_dir, kafka_port=free_port(), elasticsearch_port=es_port).start(
        log_path=data_dir.parent / f"{data_dir.name}.log"
    )


async def read_topic(bootstrap: str, topic: str, timeout: float = 10.0) -> list[tuple[int, int, bytes | None, bytes]]:
    """Every record of `topic` from the beginning to its current end: (partition, offset, key, value)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                                auto_offset_reset="earliest", isolation_level="read_committed")
    await consumer.start()
    try:
        partitions = consumer.partitions_for_topic(topic) or set()
        if not partitions:
            await consumer._client.force_metadata_update()
            partitions = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        if not tps:
            return []
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        records: list[tuple[int, int, bytes | None, bytes]] = []
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while [tp for tp in tps if await consumer.position(tp) < ends[tp]]:
            if loop.time() > deadline:
                raise TimeoutError(f"reading {topic} did not reach its end offsets {ends} in {timeout}s")
            batch = await consumer.getmany(timeout_ms=500)
            for tp, messages in batch.items():
                records.extend((tp.partition, m.offset, m.key, m.value) for m in messages if m.value is not None)
        return records
    finally:
        await consumer.stop()


async def group_assignment(bootstrap: str, group: str) -> dict[str, dict[str, list[int]]]:
    """The consumer group's members as the broker describes them now: member id -> topic -> partitions
    (empty while the group rebalances, when members hold no settled assignment)."""
    described = await describe_group(bootstrap, group)
    if described["state"] != "Stable":
        return {}
    members: dict[str, dict[str, list[int]]] = {}
    for member in described["members"]:
        raw = member["member_assignment"]
        assignment = ConsumerProtocolMemberAssignment.decode(raw) if raw else None
        members[member["member_id"]] = {topic: sorted(partitions)
                                        for topic, partitions in (assignment.assignment if assignment else [])}
    return members


async def describe_group(bootstrap: str, group: str) -> dict[str, Any]:
    """The broker's DescribeGroups answer for `group`: its state, protocol and members."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        (response,) = await admin.describe_consumer_groups([group])
    finally:
        await admin.close()
    (described,) = response.to_object()["groups"]
    return cast(dict[str, Any], described)
