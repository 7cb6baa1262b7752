"""Create the pipeline's topics with their partition counts before anything produces to them.

Brokers (and the embedded one) auto-create unknown topics with one partition; a collector that
publishes first would then pin `logs.raw` to one partition and faust would fail with
PartitionsMismatch. Collectors, the broker wrapper and tests call `ensure_topics` first.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaConnectionError, TopicAlreadyExistsError

from core.errors import ConfigError, RetriableError
from core.settings import KafkaSettings
from kafka_io.client_options import client_options
from kafka_io.connect_check import start_checked

log = logging.getLogger(__name__)


async def ensure_topics(kafka: KafkaSettings, names: list[str], timeout: float = 30.0, verify: bool = True) -> None:
    """Create each missing topic with `kafka.partitions` partitions; existing topics are kept."""
    admin = await connected_admin(kafka, timeout)
    try:
        existing = set(await admin.list_topics())
        missing = [n for n in names if n not in existing]
        if missing:
            topics = [
                NewTopic(name=n, num_partitions=kafka.partitions, replication_factor=kafka.replication_factor)
                for n in missing
            ]
            with contextlib.suppress(TopicAlreadyExistsError):  # another process was first
                await admin.create_topics(topics)
            log.info("created topics %s with %d partitions", missing, kafka.partitions)
        if verify:
            await _verify_partitions(admin, kafka, names)
    finally:
        await admin.close()


async def connected_admin(kafka: KafkaSettings, timeout: float) -> AIOKafkaAdminClient:
    """An admin client that reached the cluster; retries while it is away, gives up at once on a TLS or
    SASL set-up problem (ConfigError with one line that names the setting)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        admin = AIOKafkaAdminClient(**client_options(kafka), request_timeout_ms=10_000)
        try:
            await start_checked(admin, kafka)
            return admin
        except KafkaConnectionError as exc:
            await admin.close()
            if asyncio.get_running_loop().time() > deadline:
                raise RetriableError(f"Kafka at {kafka.brokers} did not answer within {timeout:.0f}s "
                                     f"({exc}); check kafka.brokers and that the brokers run") from None
            await asyncio.sleep(0.5)


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
