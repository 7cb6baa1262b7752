"""Create the pipeline's topics with their partition counts before anything produces to them.

Brokers (and the embedded one) auto-create unknown topics with one partition; a collector that
publishes first would then pin `logs.raw` to one partition and faust would fail with
PartitionsMismatch. Collectors, the broker wrapper and tests call `ensure_topics` first.
"""

from __future__ import annotations

import contextlib
import logging

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from core.errors import ConfigError
from core.settings import KafkaSettings
from kafka_io.client_options import client_options
from kafka_io.connect import connect, started

log = logging.getLogger(__name__)


async def ensure_topics(kafka: KafkaSettings, names: list[str], timeout: float | None = None,
                        verify: bool = True, compacted: bool = False) -> None:
    """Create each missing topic with `kafka.partitions` partitions (cleanup.policy=compact when
    `compacted`); existing topics are kept.

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
                         topic_configs={"cleanup.policy": "compact"} if compacted else {})
                for n in missing
            ]
            with contextlib.suppress(TopicAlreadyExistsError):  # another process was first
                await admin.create_topics(topics)
            log.info("created topics %s with %d partitions", missing, kafka.partitions)
        if verify:
            await _verify_partitions(admin, kafka, names)
    finally:
        await admin.close()


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
