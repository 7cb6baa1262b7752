"""Create the pipeline's topics with their partition counts before anything produces to them.

Brokers (and the embedded one) auto-create unknown topics with one partition; a collector that
publishes first would then pin `logs.raw` to one partition and faust would fail with
PartitionsMismatch. Collectors, the broker wrapper and tests call `ensure_topics` first;
`logweave prepare` creates every topic a worker needs (`prepare_worker_topics`), and the worker only
checks them (`missing_or_mismatched`) and refuses to start otherwise: it never creates a topic.
"""

from __future__ import annotations

import contextlib
import logging

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import TopicAlreadyExistsError

from core import topics
from core.errors import ConfigError
from core.settings import KafkaSettings, Settings
from kafka_io.client_options import client_options
from kafka_io.connect import connect, started

log = logging.getLogger(__name__)


async def ensure_topics(kafka: KafkaSettings, names: list[str], timeout: float | None = None,
                        verify: bool = True, compacted: bool = False,
                        configs: dict[str, dict[str, str]] | None = None) -> None:
    """Create each missing topic with `kafka.partitions` partitions (cleanup.policy=compact when
    `compacted`, else the `kafka.topic_retention*` bounds; then its `configs`, if any, which win);
    existing topics are kept.

    Waits up to `timeout` (default `kafka.connect_timeout`) for the broker, then BrokerUnreachable."""
    admin = await connect(
        kafka, lambda: started(AIOKafkaAdminClient(**client_options(kafka), request_timeout_ms=10_000), kafka),
        "creating topics", timeout)
    try:
        existing = set(await admin.list_topics())
        missing = [n for n in names if n not in existing]
        if missing:
            topics = [
                NewTopic(name=n, num_partitions=kafka.partitions, replication_factor=kafka.replication_factor,
                         topic_configs={**({"cleanup.policy": "compact"} if compacted else retention_configs(kafka)),
                                        **(configs or {}).get(n, {})})
                for n in missing
            ]
            with contextlib.suppress(TopicAlreadyExistsError):  # another process was first
                await admin.create_topics(topics)
            log.info("created topics %s with %d partitions", missing, kafka.partitions)
        if verify:
            await _verify_partitions(admin, kafka, names)
    finally:
        await admin.close()


_MIB = 1024 * 1024


def segment_ms(retention_ms: int) -> str:
    """Segments close at a quarter of a time bound (at least a second, at most Kafka's default 7 days)."""
    return str(max(1000, min(retention_ms // 4, 7 * 86400 * 1000)))


def retention_configs(kafka: KafkaSettings) -> dict[str, str]:
    """retention.ms / retention.bytes for a delete-policy topic from `kafka.topic_retention*` (none when unset).

    A broker deletes only whole closed segments, and by default a segment closes at 1 GiB or after 7 days:
    a smaller bound would never take effect. So segments close at a quarter of each bound (at least 1 MiB,
    Kafka's floor, and one second), and a partition holds at most its bound plus one segment."""
    configs: dict[str, str] = {}
    if kafka.topic_retention is not None:
        retention_ms = int(kafka.topic_retention * 1000)
        configs["retention.ms"] = str(retention_ms)
        configs["segment.ms"] = segment_ms(retention_ms)
    if kafka.topic_retention_bytes is not None:
        configs["retention.bytes"] = str(kafka.topic_retention_bytes)
        configs["segment.bytes"] = str(max(_MIB, min(kafka.topic_retention_bytes // 4, 1024 * _MIB)))
    return configs


async def _verify_partitions(admin: AIOKafkaAdminClient, kafka: KafkaSettings, names: list[str]) -> None:
    """Fail loudly if a topic exists with another partition count (co-partitioning would break)."""
    described = await admin.describe_topics(names)
    wrong = {d["topic"]: len(d["partitions"]) for d in described
             if d.get("partitions") and len(d["partitions"]) != kafka.partitions}
    if wrong:
        raise ConfigError(
            f"topics {wrong} exist with a partition count other than kafka.partitions={kafka.partitions} "
            "(auto-created before Logweave created them?); recreate them or set LOGWEAVE_KAFKA__PARTITIONS to match"
        )


async def topic_configs(kafka: KafkaSettings, names: list[str], timeout: float | None = None
                        ) -> dict[str, dict[str, str]]:
    """The broker's configs of each topic (every entry it reports, defaults included)."""
    admin = await connect(
        kafka, lambda: started(AIOKafkaAdminClient(**client_options(kafka), request_timeout_ms=10_000), kafka),
        "describing topics", timeout)
    try:
        responses = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, n) for n in names])
    finally:
        await admin.close()
    out: dict[str, dict[str, str]] = {}
    for response in responses:
        for _code, _message, _kind, name, entries in response.resources:
            out[name] = {entry[0]: entry[1] for entry in entries}
    return out


class TopicMissing(RuntimeError):
    """A topic this process needs does not exist, and this process creates no topic."""


async def ensure_single_partition_compacted(settings: Settings, name: str, what: str,
                                           timeout: float | None = None,
                                           configs: dict[str, str] | None = None, create: bool = True) -> str:
    """Create a compacted one-partition topic if missing (latest value per key: rules, heartbeats); return its name.
    Waits up to `timeout` (default `kafka.connect_timeout`) for a broker. With `create=False` (processes that
    create no topic) a missing topic raises TopicMissing instead."""
    kafka = settings.kafka
    admin = await connect(
        kafka, lambda: started(AIOKafkaAdminClient(**client_options(kafka), request_timeout_ms=10_000), kafka),
        f"checking {what}", timeout)
    try:
        if name not in set(await admin.list_topics()):
            if not create:
                raise TopicMissing(f"topic {name} is missing at {kafka.brokers}; run `logweave prepare`")
            with contextlib.suppress(TopicAlreadyExistsError):  # another process was first
                await admin.create_topics([NewTopic(name=name, num_partitions=1,
                                                    replication_factor=kafka.replication_factor,
                                                    topic_configs={"cleanup.policy": "compact",
                                                                   **(configs or {})})])
    finally:
        await admin.close()
    return name


def worker_topics(settings: Settings) -> dict[str, dict[str, str]]:
    """Every topic a worker reads or writes, by full name, with the configs it is created with."""
    logical = topics.pipeline_topics(settings.sinks.enabled)
    names: dict[str, dict[str, str]] = {settings.topic(name): {} for name in logical}
    # One changelog record carries many trace keys under the same key: never compact it (tables/trace_table.py).
    # A byte bound there would drop the state of traces still open: time only.
    changelog_ms = int(settings.traces.changelog_retention * 1000)
    names[topics.changelog_topic(settings.worker.app_id)] = {
        "cleanup.policy": "delete", "retention.ms": str(changelog_ms), "segment.ms": segment_ms(changelog_ms),
        "retention.bytes": "-1"}
    return names


async def prepare_worker_topics(settings: Settings, timeout: float | None = None) -> None:
    """What `logweave prepare` does: create every topic the worker needs with its partition count, and the
    compacted one-partition rules topic."""
    from kafka_io.rules_topic import ensure_rules_topic

    wanted = worker_topics(settings)
    await ensure_topics(settings.kafka, list(wanted), timeout=timeout, configs=wanted)
    await ensure_rules_topic(settings, timeout)


async def missing_or_mismatched(settings: Settings, timeout: float | None = None) -> str | None:
    """Why the worker's topics are not ready (one line), or None when each exists with
    `kafka.partitions` partitions. Reads metadata only: nothing is created."""
    kafka = settings.kafka
    admin = await connect(
        kafka, lambda: started(AIOKafkaAdminClient(**client_options(kafka), request_timeout_ms=10_000), kafka),
        "checking topics", timeout)
    try:
        wanted = list(worker_topics(settings))
        existing = set(await admin.list_topics())
        # the compacted rules topic has one partition whatever kafka.partitions is: only its presence is checked
        missing = [name for name in [*wanted, settings.topic(topics.RULES)] if name not in existing]
        present = [name for name in wanted if name in existing]
        described = await admin.describe_topics(present) if present else []
    finally:
        await admin.close()
    wrong = {d["topic"]: len(d["partitions"]) for d in described
             if d.get("partitions") and len(d["partitions"]) != settings.kafka.partitions}
    if missing:
        return (f"topics {', '.join(missing)} are missing at {settings.kafka.brokers}; run `logweave prepare` "
                "with the worker's settings first (the worker does not create topics)")
    if wrong:
        found = ", ".join(f"{name} has {count}" for name, count in wrong.items())
        return (f"topics have the wrong partition count ({found}; kafka.partitions={settings.kafka.partitions}); "
                "recreate them with `logweave prepare` or set LOGWEAVE_KAFKA__PARTITIONS to match")
    return None
