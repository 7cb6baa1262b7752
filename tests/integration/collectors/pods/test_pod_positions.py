"""The pod collector re-sends what Kafka did not acknowledge, and a restart resumes from logs.positions.

Against the Kubernetes API test server (real API paths, the collector's own HTTP client) and the real
broker. The re-send test puts a stand-in in front of the real publisher that refuses a few chunks (a
failed future, as aiokafka gives after its own retries), because making a real broker fail a send,
rather than delay it, takes aiokafka's 30 s request timeout; every other chunk goes to the broker.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable
from pathlib import Path

import orjson
import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import KafkaTimeoutError

from collectors.pods import service
from commands.broker import EmbeddedBroker
from core.models import RawBatch, RawChunk
from kafka_io.publisher import ChunkAck, ChunkPublisher
from tests.integration.collectors.pods.conftest import collected, pod_settings, running_collector, wait_for_lines
from tests.support.kafka import read_topic
from tests.support.kube_api import FakeKubeApi
from tests.support.polling import wait_for


class RefusingPublisher(ChunkPublisher):
    """The real publisher, except that publishes number 3 to 6 fail without being sent."""

    refused = range(3, 7)

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.calls = 0

    async def publish(self, chunk: RawChunk | RawBatch, partition: int | None = None) -> asyncio.Future[ChunkAck]:
        self.calls += 1
        if self.calls not in self.refused:
            return await super().publish(chunk, partition)
        failed: asyncio.Future[ChunkAck] = asyncio.get_running_loop().create_future()
        failed.set_exception(KafkaTimeoutError("refused by the test's stand-in"))
        return failed


def assert_complete(lines: list[tuple[int, str, int]], expected: list[str]) -> None:
    """Every expected line under exactly one position, in position order; a repeat is the same line."""
    by_position: dict[int, str] = {}
    for position, text, _ in lines:
        assert by_position.setdefault(position, text) == text, "one position, two lines"
    assert [by_position[p] for p in sorted(by_position)] == expected


async def test_chunks_kafka_did_not_acknowledge_are_re_sent(broker: EmbeddedBroker, kube: FakeKubeApi,
                                                            tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(service, "ChunkPublisher", RefusingPublisher)
    pod = kube.add_pod("web-1")
    settings = pod_settings(broker, kube, tmp_path, chunk_lines=10)
    expected = [f'{{"n":{i}}}' for i in range(200)]
    async with running_collector(settings) as run:
        for start in range(0, 200, 20):  # in steps, so the failures land mid-stream
            kube.log(pod, "app", expected[start:start + 20])
            await wait_for(lambda n=start + 20: run.value("logweave_pod_collector_lines_published_total") >= n - 40,
                           what=f"{start} lines published")
        sid = f"pod:{pod.uid}:app:0"

        async def distinct() -> int:
            return len({p for p, _, _ in (await collected(broker)).lines.get(sid, [])})

        await wait_for(lambda: _at_least(distinct(), 200), what="200 distinct lines in logs.raw")
        assert run.value("logweave_pod_collector_publish_errors_total") == 4
    got = await collected(broker)
    assert_complete(got.lines[sid], expected)


async def _at_least(count: Awaitable[int], wanted: int) -> bool:
    return await count >= wanted


async def test_a_restart_resumes_each_container_without_re_reading(broker: EmbeddedBroker, kube: FakeKubeApi,
                                                                   tmp_path: Path) -> None:
    pods = [kube.add_pod(f"web-{i}") for i in range(2)]
    for pod in pods:
        kube.log(pod, "app", [f"{pod.name} {i}" for i in range(50)])
    settings = pod_settings(broker, kube, tmp_path)
    async with running_collector(settings):
        await wait_for_lines(broker, 100)
    for pod in pods:
        kube.log(pod, "app", [f"{pod.name} {i}" for i in range(50, 70)])
    async with running_collector(settings):  # a new process would find the same: logs.positions
        await wait_for_lines(broker, 140)
        await wait_for(lambda: all(kube.followers.get((p.name, "app"), 0) == 1 for p in pods), what="following")
    got = await collected(broker)
    for pod in pods:
        assert got.texts(f"pod:{pod.uid}:app:0") == [f"{pod.name} {i}" for i in range(70)], "read twice or lost"
    saved = {key.decode(): orjson.loads(value) for _, _, key, value in
             await read_topic(broker.bootstrap, "logs.positions") if key is not None}
    assert set(saved) == {f"pod:{p.uid}:app:0" for p in pods}
    last = got.lines[f"pod:{pods[0].uid}:app:0"][-1]
    assert (saved[f"pod:{pods[0].uid}:app:0"]["pos"], saved[f"pod:{pods[0].uid}:app:0"]["ts"]) == (last[0], last[2])
    admin = AIOKafkaAdminClient(bootstrap_servers=broker.bootstrap)
    await admin.start()
    try:
        described = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, "logs.positions")])
    finally:
        await admin.close()
    configs = {name: value for resource in described[0].resources for name, value, *_ in resource[4]}
    assert configs.get("cleanup.policy") == "compact", configs


async def test_broker_stopped_and_restarted_while_pods_log(broker: EmbeddedBroker, kube: FakeKubeApi,
                                                           tmp_path: Path) -> None:
    """The broker away for a while (SIGTERM, then started again with its data): lines logged meanwhile
    wait (reading pauses at the budgets) and all arrive once it is back; positions are saved after."""
    pod = kube.add_pod("web-1")
    settings = pod_settings(broker, kube, tmp_path)
    expected = [f"line {i}" for i in range(300)]
    async with running_collector(settings) as run:
        kube.log(pod, "app", expected[:100])
        await wait_for_lines(broker, 100)
        await wait_for(lambda: run.value("logweave_pod_collector_lines_published_total") >= 100, what="100 acked")
        broker.stop()
        kube.log(pod, "app", expected[100:300])
        broker.start()
        got = await wait_for_lines(broker, 300, timeout=60)
    assert_complete(got.lines[f"pod:{pod.uid}:app:0"], expected)
    saved = {key.decode(): orjson.loads(value) for _, _, key, value in
             await read_topic(broker.bootstrap, "logs.positions") if key is not None}
    assert saved[f"pod:{pod.uid}:app:0"]["pos"] == max(p for p, _, _ in got.lines[f"pod:{pod.uid}:app:0"])


class LosingPublisher(ChunkPublisher):
    """The real publisher; before its 9th publish it reports what a broker that lost records does after
    the producer was replaced: chunks 4 to 8, acknowledged, are past the partition's end offset. (They
    are still in the test's broker, so re-sent lines show up twice, under the same positions.)"""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.acks: list[asyncio.Future[ChunkAck]] = []

    async def publish(self, chunk: RawChunk | RawBatch, partition: int | None = None) -> asyncio.Future[ChunkAck]:
        if len(self.acks) == 8:
            stored = [await ack for ack in self.acks]
            self.end_offsets = {stored[3].partition: stored[3].offset}
            self.recoveries += 1
        ack = await super().publish(chunk, partition)
        self.acks.append(ack)
        return ack


async def test_chunks_the_broker_lost_after_acknowledging_are_re_sent(
        broker: EmbeddedBroker, kube: FakeKubeApi, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(service, "ChunkPublisher", LosingPublisher)
    pod = kube.add_pod("web-1")
    settings = pod_settings(broker, kube, tmp_path, chunk_lines=10)
    expected = [f'{{"n":{i}}}' for i in range(200)]
    sid = f"pod:{pod.uid}:app:0"
    async with running_collector(settings) as run:
        for start in range(0, 200, 10):  # one chunk at a time
            kube.log(pod, "app", expected[start:start + 10])
            await wait_for(lambda n=start + 10: run.value("logweave_pod_collector_lines_published_total") >= n,
                           what=f"{start + 10} lines acknowledged")

        async def distinct() -> int:
            return len({p for p, _, _ in (await collected(broker)).lines.get(sid, [])})

        await wait_for(lambda: _at_least(distinct(), 200), what="200 distinct lines in logs.raw")
    got = await collected(broker)
    assert_complete(got.lines[sid], expected)
    sent = Counter(text for _, text, _ in got.lines[sid])
    again = sorted(int(orjson.loads(text)["n"]) for text, count in sent.items() if count > 1)
    assert again[:1] == [30] and set(range(30, 80)) <= set(again), f"re-sent: {again}"


async def test_positions_of_pods_deleted_while_the_collector_was_down_are_removed(
        broker: EmbeddedBroker, kube: FakeKubeApi, tmp_path: Path) -> None:
    stays, goes = kube.add_pod("stays"), kube.add_pod("goes")
    for pod in (stays, goes):
        kube.log(pod, "app", [f"{pod.name} 0"])
    settings = pod_settings(broker, kube, tmp_path, position_interval=0.1)
    async with running_collector(settings):
        await wait_for_lines(broker, 2)

    async def saved() -> dict[str, bool]:
        records = await read_topic(broker.bootstrap, "logs.positions")
        latest: dict[str, bool] = {}
        for _, _, key, value in records:  # read_topic leaves tombstones out: a later record wins
            if key is not None:
                latest[key.decode()] = value is not None
        return latest

    assert set(await saved()) == {f"pod:{stays.uid}:app:0", f"pod:{goes.uid}:app:0"}
    kube.delete(goes, removal_delay=0)
    lists = kube.requests["list"]
    async with running_collector(settings) as run:
        await wait_for(lambda: kube.requests["list"] > lists and run.value("logweave_pod_collector_pods_watched") == 1,
                       what="the second collector's list")
    consumer_view = await _positions_without_tombstoned(broker)
    assert set(consumer_view) == {f"pod:{stays.uid}:app:0"}


async def _positions_without_tombstoned(broker: EmbeddedBroker) -> set[str]:
    """Stream ids in logs.positions whose last record is not a tombstone (what a restart would load)."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(bootstrap_servers=broker.bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        tps = [TopicPartition("logs.positions", p) for p in sorted(consumer.partitions_for_topic("logs.positions")
                                                                    or ())]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        live: dict[str, bool] = {}
        while [tp for tp in tps if await consumer.position(tp) < ends[tp]]:
            for messages in (await consumer.getmany(timeout_ms=500)).values():
                for m in messages:
                    live[m.key.decode()] = m.value is not None
    finally:
        await consumer.stop()
    return {sid for sid, present in live.items() if present}
