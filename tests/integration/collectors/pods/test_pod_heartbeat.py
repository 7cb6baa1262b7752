"""The pod collector's heartbeat tells lines read from the API from lines Kafka acknowledged: while the
broker is frozen the beat shows lines coming in and none going out; once it answers again every line read
has gone out, and the beats, summed over time, say so."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path

from aiokafka import AIOKafkaConsumer

from commands.broker import EmbeddedBroker
from core.heartbeat import Heartbeat
from core.settings import load_settings
from core.topics import HEARTBEATS
from tests.integration.collectors.pods.conftest import pod_settings, running_collector
from tests.support.kube_api import FakeKubeApi
from tests.support.polling import wait_for

INTERVAL = 1.0
READ = "logweave_pod_collector_lines_read_total"
PUBLISHED = "logweave_pod_collector_lines_published_total"


@contextlib.asynccontextmanager
async def pod_collector_beats(bootstrap: str, topic: str) -> AsyncIterator[list[Heartbeat]]:
    """Every pod-collector beat as it lands (followed live: a compacted topic read later may lack some)."""
    beats: list[Heartbeat] = []
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                                enable_auto_commit=False, metadata_max_age_ms=500)
    await consumer.start()

    async def follow() -> None:
        async for record in consumer:
            if record.value is not None:
                beat = Heartbeat.decode(record.value)
                if beat.kind == "pod-collector":
                    beats.append(beat)

    task = asyncio.create_task(follow())
    try:
        yield beats
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await consumer.stop()


def lines_moved(beats: list[Heartbeat]) -> tuple[float, float]:
    """Lines in and out since the first beat: each beat's rates times the time since the one before."""
    total_in = total_out = 0.0
    for before, beat in zip(beats, beats[1:], strict=False):
        total_in += beat.lines_in_per_s * (beat.at - before.at)
        total_out += beat.lines_out_per_s * (beat.at - before.at)
    return total_in, total_out


async def test_the_heartbeat_shows_lines_read_waiting_for_a_frozen_broker(broker: EmbeddedBroker, kube: FakeKubeApi,
                                                                        tmp_path: Path) -> None:
    pods = pod_settings(broker, kube, tmp_path).pods.model_dump()
    settings = load_settings(environ={}, kafka={"brokers": broker.bootstrap, "partitions": 1},
                             heartbeats={"interval": INTERVAL}, pods=pods)
    pod = kube.add_pod("web-1", {"app": "snowplow"})
    assert broker.process is not None
    broker_pid = broker.process.pid
    async with running_collector(settings) as run:
        await wait_for(lambda: kube.followers.get(("web-1", "app"), 0) == 1, what="web-1 followed")
        kube.log(pod, "app", [f"before {i}" for i in range(100)])
        await wait_for(lambda: run.value(PUBLISHED) == 100, what="the first lines acknowledged")
        async with pod_collector_beats(broker.bootstrap, settings.topic(HEARTBEATS)) as beats:
            # frozen right after a beat: the next one is computed (and held) while the broker is frozen
            await wait_for(lambda: beats and beats[-1].at > time.time() - INTERVAL / 4 and
                           beats[-1].lines_in_per_s == 0, timeout=30, what="a fresh beat after a quiet interval")
            os.kill(broker_pid, signal.SIGSTOP)
            frozen_at, first = time.time(), len(beats) - 1
            try:
                for step in range(30):  # lines keep coming while Kafka is away
                    kube.log(pod, "app", [f"frozen {step} {i}" for i in range(10)])
                    await asyncio.sleep(INTERVAL / 10)
                assert run.value(READ) == 400, "lines are read from the API while Kafka is away"
                assert run.value(PUBLISHED) == 100
            finally:
                os.kill(broker_pid, signal.SIGCONT)
            thawed_at = time.time()
            await wait_for(lambda: run.value(PUBLISHED) == 400, what="every line read acknowledged after the thaw")
            caught_up = time.time()
            await wait_for(lambda: beats and len([b for b in beats if b.at > caught_up]) >= 2, timeout=30,
                           what="beats after the catch-up")
            during = [beat for beat in beats if frozen_at < beat.at < thawed_at]
            assert during, "a beat was taken while the broker was frozen"
            assert all(beat.lines_in_per_s > 0 and beat.lines_out_per_s == 0 for beat in during), during
            later = [beat for beat in beats if beat.at > caught_up]  # the first may still count the catch-up
            assert later[1:] and all(beat.lines_in_per_s == beat.lines_out_per_s == 0 for beat in later[1:]), later
            total_in, total_out = lines_moved(beats[first:])
            assert round(total_in) == round(total_out) == 300, "every line read while frozen went out"
    assert run.value("logweave_pod_collector_publish_errors_total") == 0
    assert run.value("logweave_pod_collector_duplicate_lines_total") == 0
