"""The worker benchmark against an external Kafka (KAFKA_BROKERS): a throughput round starts no broker of
its own and keeps to topics of its own on the one named, so its runs never read each other's records.

The "external" Kafka here is a noida-db started by the test: no other Kafka installs on this machine.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from aiokafka.admin import AIOKafkaAdminClient

from commands.broker import EmbeddedBroker
from tests.bench.bench_worker import throughput_round


async def topics_on(bootstrap: str) -> set[str]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        return {topic for topic in await admin.list_topics() if not topic.startswith("__")}
    finally:
        await admin.close()


async def test_a_round_runs_on_kafka_brokers_under_its_own_topic_prefixes(
        broker: EmbeddedBroker, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKA_BROKERS", broker.bootstrap)
    found = await throughput_round(tmp_path / "round", 20_000, 1_000, ("limit", "worker"))

    assert set(found) == {"limit", "worker"}  # the worker's row returns only once it routed every line
    assert found["limit"].lines == 20_000
    assert not list((tmp_path / "round").glob("broker*")), "a round on KAFKA_BROKERS started a broker of its own"
    topics = await topics_on(broker.bootstrap)
    assert all(topic.startswith("bench") or topic.startswith("logweave-bench") for topic in topics), topics
    limit_runs = {topic.split(".")[0] for topic in topics if topic.endswith(".limit.raw")}
    worker_runs = {topic.split(".")[0] for topic in topics if topic.endswith(".logs.raw")}
    assert len(limit_runs) == len(worker_runs) == 1 and limit_runs != worker_runs  # one prefix per run
    (worker_run,) = worker_runs
    assert f"logweave-{worker_run}-traces-changelog" in topics  # the worker's own consumer group and table
