"""Publish errors count refused records, not chunks: a stream's chunks gathered into one record share that
record's ack, so one refusal is one error of the stream however many of its chunks the record carried (it
was 1 or 2 by timing, which made the re-send test's count flaky on a busy machine)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiokafka.errors import KafkaTimeoutError

from collectors.pods.apiconfig import load_kubeconfig
from collectors.pods.batching import PendingBudget
from collectors.pods.client import KubeClient
from collectors.pods.metrics import PodMetrics
from collectors.pods.positions import StreamCursor
from collectors.pods.streamer import InstanceStatus, LogStreamer, StreamTarget
from core.settings import PodCollectorSettings
from kafka_io.publisher import ChunkAck
from tests.support.kube_api import FakeKubeApi
from tests.unit.collectors.pods.test_streamer_budget import TimedSink


@pytest.fixture
async def streamer(tmp_path: Path) -> AsyncIterator[LogStreamer]:
    """A live stream's streamer against the Kubernetes API test server, its metrics its own."""
    api = await FakeKubeApi(max_piece=None).start()
    client = KubeClient(load_kubeconfig([api.write_kubeconfig(tmp_path / "kubeconfig")]), 8)

    async def verify() -> InstanceStatus:
        return InstanceStatus.LIVE

    try:
        yield LogStreamer(StreamTarget("demo-system", "p", "app", "pod:u:app:0", {"kind": "pod-api"}),
                          StreamCursor(), client, TimedSink(), lambda: InstanceStatus.LIVE, verify,
                          PodCollectorSettings(), PendingBudget(1 << 20), PodMetrics())
    finally:
        await client.close()
        await api.stop()


def publish_errors(streamer: LogStreamer) -> float:
    return streamer._metrics.value("logweave_pod_collector_publish_errors_total")


async def test_chunks_sharing_a_refused_record_count_one_publish_error(streamer: LogStreamer) -> None:
    loop = asyncio.get_running_loop()
    first, second = loop.create_future(), loop.create_future()
    for refused in (first, second):
        refused.set_exception(KafkaTimeoutError("refused"))
    acked: asyncio.Future[ChunkAck] = loop.create_future()
    acked.set_result(ChunkAck(0, 0))
    epoch = streamer.cursor.epoch
    for fut, position in ((first, 10), (first, 20), (second, 30), (acked, 40)):  # two chunks in `first`
        streamer._acked(epoch, position, position, 10, 100, fut)
    assert publish_errors(streamer) == 2


async def test_a_batch_dropped_by_a_rewind_is_no_publish_error(streamer: LogStreamer) -> None:
    """After a refusal the stream rewinds and discards its lines not yet handed to the publisher; a batch
    left empty is cancelled (kafka_io/partition_batcher.py). That cancellation is not Kafka refusing a
    record: counting it made the re-send test read 5 errors for 4 refusals under make test-under-load."""
    loop = asyncio.get_running_loop()
    refused, dropped = loop.create_future(), loop.create_future()
    refused.set_exception(KafkaTimeoutError("refused"))
    dropped.cancel()
    epoch = streamer.cursor.epoch
    streamer._acked(epoch, 10, 10, 10, 100, refused)
    streamer._acked(epoch, 20, 20, 10, 100, dropped)
    assert publish_errors(streamer) == 1
