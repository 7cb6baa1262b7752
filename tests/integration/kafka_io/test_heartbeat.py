"""Heartbeats on a real broker from real components: a file collector and an intake publish, the
view folds them, and `logweave status` (the real command) shows them, as text and as JSON.
"""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import orjson
import pytest
from aiokafka import AIOKafkaProducer

from collectors.files.service import run_file_collector
from collectors.intake.service import run_intake
from commands.broker import EmbeddedBroker, free_port
from core.heartbeat import PipelineView
from core.settings import Settings, load_settings
from core.topics import HEARTBEATS
from kafka_io.heartbeat import read_pipeline
from tests.integration.collectors.file_helpers import cri, pod_log
from tests.support.kafka import start_broker
from tests.support.polling import wait_for
from tests.support.processes import VENV_BIN, base_env

BEAT = {"interval": 0.5}


@pytest.fixture(scope="module")
def shared_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedBroker]:
    broker = start_broker(tmp_path_factory.mktemp("heartbeats") / "broker")
    yield broker
    broker.stop(kill=True)


def settings_for(broker: EmbeddedBroker, tmp_path: Path) -> tuple[Settings, Settings]:
    kafka = {"brokers": broker.bootstrap, "partitions": 2}
    collector = load_settings(environ={}, kafka=kafka, heartbeats=BEAT, collector={
        "paths": [str(tmp_path / "pods" / "*" / "*" / "*.log")], "checkpoint_dir": str(tmp_path / "ckpt"),
        "metrics_port": free_port(), "rescan_interval": 0.2, "flush_interval": 0.05})
    intake = load_settings(environ={}, kafka=kafka, heartbeats=BEAT, intake={
        "http_port": free_port(), "forward_port": 0, "otlp_grpc_port": 0, "otlp_http_port": 0, "syslog_port": 0})
    return collector, intake


def status(broker: EmbeddedBroker, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(VENV_BIN / "logweave"), "status", "--once", *args], capture_output=True, text=True,
                          env=base_env({"LOGWEAVE_KAFKA__BROKERS": broker.bootstrap}), timeout=60)


async def test_components_beat_the_view_folds_them_and_status_shows_them(
        shared_broker: EmbeddedBroker, tmp_path: Path) -> None:
    collector_settings, intake_settings = settings_for(shared_broker, tmp_path)
    stop = asyncio.Event()
    tasks = [asyncio.create_task(run_file_collector(collector_settings, stop)),
             asyncio.create_task(run_intake(intake_settings, stop))]
    collector_id = f"file-collector-{collector_settings.collector.metrics_port}"
    try:
        pod_log(tmp_path / "pods", "shop", "web-1").write_bytes(
            b"".join(cri(b'{"msg": "line %d"}' % i) for i in range(500)))
        url = f"http://127.0.0.1:{intake_settings.intake.http_port}/v1/logs"

        async def intake_took_a_bad_record() -> bool:
            try:
                async with aiohttp.ClientSession() as session, session.post(url, data=b'{"msg": "ok"}\n{oops}\n') as r:
                    return r.status == 400
            except aiohttp.ClientError:
                return False

        await wait_for(intake_took_a_bad_record, timeout=30, what="the intake to answer a POST")

        async def both_seen_working() -> PipelineView | None:
            view = await read_pipeline(collector_settings)
            beats = {b.kind: b for b in view.current(time.time())}
            collector, intake = beats.get("file-collector"), beats.get("intake")
            if collector and intake and collector.lines_out_per_s > 0 and intake.dead_letters:
                return view
            return None

        view = await wait_for(both_seen_working, timeout=60, what="heartbeats with the collector's lines and the "
                              "intake's refused record")
        collector = next(b for b in view.components.values() if b.kind == "file-collector")
        assert collector.id.endswith(collector_id.split("-", 2)[-1]) and collector.state == "running"
        assert collector.version and collector.host and collector.figures["files"] == 1.0
        intake = next(b for b in view.components.values() if b.kind == "intake")
        assert sum(f.count for f in intake.dead_letters.values()) >= 1

        # in a thread: the components beat on this event loop meanwhile
        as_json = await asyncio.to_thread(status, shared_broker, "--json")
        assert as_json.returncode == 0, as_json.stderr
        summary = orjson.loads(as_json.stdout)
        assert [s["kind"] for s in summary["stages"]] == ["file-collector", "intake"]
        assert {c["state"] for c in summary["components"]} == {"running"}
        as_text = await asyncio.to_thread(status, shared_broker)
        assert as_text.returncode == 0, as_text.stderr
        assert "file-collector" in as_text.stdout and "intake" in as_text.stdout
        assert max(len(line) for line in as_text.stdout.splitlines()) <= 80
    finally:
        stop.set()
        await asyncio.wait_for(asyncio.gather(*tasks), 60)

    async def all_stopped() -> bool:
        view = await read_pipeline(collector_settings)
        return {b.state for b in view.components.values()} == {"stopped"}

    await wait_for(all_stopped, timeout=30, what="a last 'stopped' beat from each component")


async def test_a_stranger_record_on_the_topic_is_counted_not_fatal(shared_broker: EmbeddedBroker) -> None:
    settings = load_settings(environ={}, kafka={"brokers": shared_broker.bootstrap, "topic_prefix": "stranger."})
    await read_pipeline(settings)  # creates the topic
    producer = AIOKafkaProducer(bootstrap_servers=shared_broker.bootstrap)
    await producer.start()
    try:
        await producer.send_and_wait(settings.topic(HEARTBEATS), b"not a heartbeat", key=b"x", partition=0)
    finally:
        await producer.stop()
    view = await read_pipeline(settings)
    assert view.refused == 1 and view.components == {}
