"""`logweave replay --sink NAME`: re-drive a sink from its Kafka topic with a one-off consumer.

Why a one-off consumer and not moving the drain's consumer-group offsets: faust keeps one group
for all of a worker's topics, so offsets can only be moved while every worker is stopped, and a
moved group re-reads to the end of the topic, so `--to` could not be honoured. The replay consumer
reads exactly [start, end) of the chosen partitions (no group, nothing committed) and writes through
the same DrainRunner and sink class as the drain: same batching, retries, breaker and dead letters.
Writes are idempotent (etcd and Elasticsearch upsert by line id; the file and S3 sinks skip lines
at or below their recorded positions and per-stream marks), so a replay adds no duplicates. For
those two a replay never starts after where their data ends: it would leave a gap that later lines
(advancing the position) would make permanent. The
file sink locks each partition directory per batch, so a replay may run beside a live drain.

The S3 sink reads and writes its position object without a lock (S3 has none to offer), so a replay
must not write beside a live drain: it waits for the drains' consumer group to empty (a stopped
static member stays until its session times out) and refuses if it does not. Brokers that never
drop stopped static members (noida-db) need `--workers-stopped`, the operator's word for it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient

from agents.drain_runner import DrainRunner, SinkRecord
from commands.replay_range import PartitionRange, Position, parse_partitions, resolve
from core.codec import compressor
from core.errors import ConfigError
from core.models import DeadLetter, encode_dead_letters
from core.settings import Settings
from core.sink_registry import sink_names
from core.topics import DEADLETTER, sink_topic
from kafka_io.client_options import client_options
from kafka_io.range_reader import range_consumer, read_range
from sinks import create_sink

SINKS_NEEDING_STOPPED_DRAIN = ("s3", "gcs", "kafka")  # unlocked position (object, group offset): one writer at a time
Progress = Callable[[int], object]


@dataclass(slots=True)
class ReplayPlan:
    topic: str
    ranges: list[PartitionRange]

    @property
    def records(self) -> int:
        return sum(r.records for r in self.ranges)

    def describe(self) -> str:
        rows = [f"  partition {r.partition}: offsets {r.start}..{r.end} ({r.records} records)" for r in self.ranges]
        return f"{self.topic}: {self.records} records\n" + "\n".join(rows)


async def plan_replay(settings: Settings, consumer: AIOKafkaConsumer, topic: str, start: Position, end: Position,
                      partitions: str | None) -> ReplayPlan:
    available = await _partition_count(consumer, topic)
    return ReplayPlan(topic, await resolve(consumer, topic, parse_partitions(partitions, available), start, end))


async def _partition_count(consumer: AIOKafkaConsumer, topic: str) -> int:
    found = await consumer._client.fetch_all_metadata()
    count = len(found.partitions_for_topic(topic) or ())
    if not count:
        raise ConfigError(f"topic {topic!r} does not exist on {consumer._client._bootstrap_servers}")
    return count


def check_sink(settings: Settings, name: str) -> None:
    if name not in sink_names():
        raise ConfigError(f"--sink {name!r} is not a sink; allowed: {', '.join(sink_names())}")
    if name not in settings.sinks.enabled:
        raise ConfigError(f"--sink {name!r} is not enabled (sinks.enabled = {','.join(settings.sinks.enabled)}); "
                          "enable it in the configuration the workers use")


async def group_members(settings: Settings) -> int:
    """Members of the drains' consumer group right now (0 when every worker is stopped)."""
    admin = AIOKafkaAdminClient(**client_options(settings.kafka))
    await admin.start()
    try:
        reply = await admin.describe_consumer_groups([settings.worker.app_id])
        groups = reply[0].groups if reply else []
        return sum(len(group[5]) for group in groups)  # (error, id, state, protocol type, protocol, members)
    finally:
        await admin.close()


async def wait_until_group_empty(settings: Settings, sink: str) -> None:
    """Static members stay in the group until their session times out after a stop: wait that out."""
    deadline = time.monotonic() + settings.kafka.session_timeout + 5
    while (members := await group_members(settings)) and time.monotonic() < deadline:
        await asyncio.sleep(1)
    if members:
        raise ConfigError(f"the {sink} sink takes one writer at a time, but consumer group "
                          f"{settings.worker.app_id!r} still has {members} member(s): stop the workers, then "
                          "replay; if they are stopped and the broker keeps stopped static members "
                          "(noida-db does), add --workers-stopped")


async def replay_sink(settings: Settings, name: str, plan: ReplayPlan, progress: Progress,
                      say: Callable[[str], object] = print) -> int:
    """Write every record of `plan` through the sink; return the number of lines in them."""
    sink = create_sink(name, settings)
    runner = DrainRunner(sink, settings, plan.topic, _dead_letter_sender(settings))
    consumer = range_consumer(settings)
    await consumer.start()
    lines = 0
    try:
        await runner.start()
        for index, planned in enumerate(plan.ranges):
            part = planned
            resume = await sink.resume_offset(plan.topic, part.partition)
            if resume is not None and part.records and resume < part.start:
                say(f"partition {part.partition}: the {name} sink's data ends at offset {resume}; replaying "
                    f"from there instead of {part.start}, so no gap is left (lines it holds are skipped)")
                part = plan.ranges[index] = PartitionRange(part.partition, resume, part.end)
            async for batch in read_range(consumer, plan.topic, part.partition, part.start, part.end,
                                          max(1, runner.max_lines // 50)):
                lines += await runner.deliver([SinkRecord(m.partition, m.offset, m.value) for m in batch])
                progress(len(batch))
    finally:
        await runner.stop()
        await consumer.stop()
    return lines


def _dead_letter_sender(settings: Settings) -> Any:
    compress = compressor(settings.kafka.payload_codec)
    topic = settings.topic(DEADLETTER)

    async def send(items: list[DeadLetter]) -> None:
        producer = AIOKafkaProducer(**client_options(settings.kafka), acks="all")
        await producer.start()
        try:
            await producer.send_and_wait(topic, compress(encode_dead_letters(items)))
        finally:
            await producer.stop()

    return send


def sink_topic_name(settings: Settings, name: str) -> str:
    return settings.topic(sink_topic(name))
