"""`logweave prepare` creates the pipeline topics and the compacted logs.positions and config.rules,
waiting for a broker that comes up late (a bounded retry, not a failure at the first refused connection)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from commands.broker import EmbeddedBroker, free_port
from tests.support.processes import base_env


async def topic_configs(bootstrap: str, topic: str) -> dict[str, str]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        described = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)])
        topics = set(await admin.list_topics())
    finally:
        await admin.close()
    configs = {name: value for resource in described[0].resources for name, value, *_ in resource[4]}
    return {"exists": str(topic in topics), **configs}


async def test_prepare_waits_for_a_late_broker_and_creates_the_positions_topic(tmp_path: Path) -> None:
    port = free_port()
    env = base_env({"LOGWEAVE_KAFKA__BROKERS": f"127.0.0.1:{port}", "LOGWEAVE_KAFKA__PARTITIONS": "2"})
    prepare = subprocess.Popen([sys.executable, "-m", "commands.cli", "prepare", "--timeout", "60"], env=env,
                               cwd=Path(__file__).resolve().parents[2], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    broker: EmbeddedBroker | None = None
    try:
        await asyncio.to_thread(_wait_for_retry_warning, prepare)
        broker = EmbeddedBroker(data_dir=tmp_path / "broker", kafka_port=port).start(log_path=tmp_path / "b.log")
        out, err = await asyncio.to_thread(prepare.communicate, timeout=90)
        assert prepare.returncode == 0, err
        assert "pipeline topics exist" in out
        configs = await topic_configs(broker.bootstrap, "logs.positions")
        assert configs["exists"] == "True" and configs.get("cleanup.policy") == "compact", configs
        rules = await topic_configs(broker.bootstrap, "config.rules")
        assert rules["exists"] == "True" and rules.get("cleanup.policy") == "compact", rules
        assert (await topic_configs(broker.bootstrap, "logs.raw")).get("cleanup.policy") != "compact"
    finally:
        if prepare.poll() is None:
            prepare.kill()
        if broker is not None:
            broker.stop(kill=True)


def _wait_for_retry_warning(proc: subprocess.Popen[str]) -> None:
    """Block until prepare says it is retrying (the broker is not up yet): read its stderr line by line."""
    assert proc.stderr is not None
    for line in proc.stderr:
        if "does not answer yet" in line:
            return
    raise AssertionError("prepare ended without retrying")
