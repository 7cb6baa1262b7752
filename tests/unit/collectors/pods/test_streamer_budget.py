"""A followed log under a spent pending budget: a stream holding less than its share of what the streams
hold does not flush at once (under a backlog every read would become a chunk of its own); it waits for room,
and its lines still go out when they fall due."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

from collectors.pods.apiconfig import load_kubeconfig
from collectors.pods.batching import ChunkBatcher, PendingBudget, next_tick
from collectors.pods.client import KubeClient
from collectors.pods.metrics import PodMetrics
from collectors.pods.positions import StreamCursor
from collectors.pods.streamer import InstanceStatus, LogStreamer, StreamTarget
from core.models import RawChunk, make_raw_line
from core.settings import PodCollectorSettings
from kafka_io.publisher import ChunkAck
from tests.support.kube_api import FakeKubeApi


class TimedSink:
    recoveries = 0

    def __init__(self) -> None:
        self.sent: list[tuple[float, RawChunk]] = []

    async def publish(self, chunk: RawChunk, text_size: int | None = None) -> asyncio.Future[ChunkAck]:
        self.sent.append((time.monotonic(), chunk))
        done: asyncio.Future[ChunkAck] = asyncio.get_running_loop().create_future()
        done.set_result(ChunkAck(0, len(self.sent) - 1))
        return done

    has_room = True  # (a polled stream's tick bytes may then be published by the poll itself)

    def publish_nowait(self, chunk: RawChunk, text_size: int | None,
                       on_settled: Callable[[asyncio.Future[ChunkAck]], None]) -> asyncio.Future[ChunkAck]:
        self.sent.append((time.monotonic(), chunk))
        done: asyncio.Future[ChunkAck] = asyncio.get_running_loop().create_future()
        done.set_result(ChunkAck(0, len(self.sent) - 1))
        done.add_done_callback(on_settled)
        return done

    def lost(self, ack: ChunkAck) -> bool:
        return False

    def discard(self, stream_id: str) -> None:
        pass


async def test_a_stream_below_its_share_waits_until_its_lines_are_due(tmp_path: Path) -> None:
    api = await FakeKubeApi(max_piece=None).start()
    client = KubeClient(load_kubeconfig([api.write_kubeconfig(tmp_path / "kubeconfig")]), 8)
    budget = PendingBudget(1000)
    other = ChunkBatcher(budget, 1000, 1 << 20, 60.0)  # another stream holding more, not flushing meanwhile
    other.add(make_raw_line(0, b"x" * 900), 900)
    cfg = PodCollectorSettings(flush_interval=0.5)
    sink = TimedSink()
    try:
        pod = api.add_pod("p", containers=("app",))
        api.log(pod, "app", [f"line {n} " + "y" * 40 for n in range(4)])  # ~200 bytes: the budget is spent

        async def verify() -> InstanceStatus:
            return InstanceStatus.LIVE

        streamer = LogStreamer(StreamTarget("demo-system", "p", "app", "pod:u:app:0", {"kind": "pod-api"}),
                               StreamCursor(), client, sink, lambda: InstanceStatus.LIVE, verify, cfg, budget,
                               PodMetrics())
        # lines are due at the next tick of flush_interval (shared by every stream): start just after one,
        # so the lines taken now are due about an interval later and an early flush cannot pass for due
        await asyncio.sleep(next_tick(time.monotonic(), 0.5) - time.monotonic() + 0.01)
        started = time.monotonic()
        due = next_tick(started, 0.5)
        run = asyncio.create_task(streamer.run())
        try:
            deadline = time.monotonic() + 20
            while not sink.sent and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
                assert budget.exceeded or not streamer._batcher.pending
        finally:
            run.cancel()
            await asyncio.gather(run, return_exceptions=True)
        at, chunk = sink.sent[0]
        assert [raw[1].split()[1] for raw in chunk.entries()] == ["0", "1", "2", "3"]
        assert at >= due - 0.01 and at - started >= 0.4, "sent when due, not as soon as the budget was spent"
        assert other.lines and budget.holders == 1 and budget.held == 900  # the larger holder was never made to flush
    finally:
        await client.close()
        await api.stop()
