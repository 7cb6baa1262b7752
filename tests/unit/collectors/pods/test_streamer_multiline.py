"""A pod stream that joins multiline records acknowledges the last line a chunk covers, not the position of
its last record (a record's first line): a rewind or a restart then resumes after the whole record.

The streamer is driven directly (no API server): `_take` is what the follow loop calls with the lines of a
response and `_flush` what it calls to send a chunk; the sink is an in-memory stand-in that acknowledges
every chunk at once (the Kafka side is covered by the pod collector's integration tests).
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

from collectors.multiline import CompiledRule
from collectors.pods.batching import PendingBudget
from collectors.pods.metrics import PodMetrics
from collectors.pods.positions import StreamCursor
from collectors.pods.streamer import InstanceStatus, LogStreamer, StreamTarget
from core.models import RawChunk
from core.rule_settings import MultilineRule
from core.settings import PodCollectorSettings
from kafka_io.publisher import ChunkAck

BASE_NS = int(datetime(2026, 1, 1, tzinfo=UTC).timestamp()) * 1_000_000_000
TRACEBACK = [b"ERROR:shop.payments:charge failed", b"Traceback (most recent call last):",
             b'  File "/app/shop/payments.py", line 42, in charge', b"TimeoutError: read timed out"]


class AckingSink:
    recoveries = 0

    def __init__(self) -> None:
        self.chunks: list[RawChunk] = []

    async def publish(self, chunk: RawChunk, text_size: int | None = None) -> asyncio.Future[ChunkAck]:
        # the streamer counts its lines' text as it reads them (characters, or UTF-8 bytes: at least as many)
        assert text_size is not None and text_size >= sum(len(line[1]) for line in chunk.entries())
        self.chunks.append(chunk)
        done: asyncio.Future[ChunkAck] = asyncio.get_running_loop().create_future()
        done.set_result(ChunkAck(0, len(self.chunks) - 1))
        return done

    def lost(self, ack: ChunkAck) -> bool:
        return False

    def discard(self, stream_id: str) -> None:
        pass


def timestamped(second: int, text: bytes) -> tuple[bytes, bool]:
    return b"2026-01-01T00:00:%02d.000000000Z " % second + text, False


async def stream_of(rule: MultilineRule | None) -> tuple[LogStreamer, AckingSink, list[tuple[Any, ...]]]:
    acknowledged: list[tuple[Any, ...]] = []
    sink = AckingSink()

    async def verify() -> InstanceStatus:
        return InstanceStatus.LIVE

    streamer = LogStreamer(StreamTarget("shop", "payments", "app", "pod:u:app:0", {"kind": "pod-api"}),
                           StreamCursor(), None, sink, lambda: InstanceStatus.LIVE, verify,  # type: ignore[arg-type]
                           PodCollectorSettings(), PendingBudget(1 << 20), PodMetrics(),
                           lambda sid, ts, pos: acknowledged.append((ts, pos)),
                           CompiledRule(rule) if rule is not None else None)
    return streamer, sink, acknowledged


async def test_a_joined_record_is_acknowledged_at_its_last_line() -> None:
    streamer, sink, acknowledged = await stream_of(MultilineRule(detectors=["python"]))
    streamer._take([timestamped(1, b"INFO:shop:started"), *(timestamped(2 + i, t) for i, t in enumerate(TRACEBACK)),
                    timestamped(9, b"INFO:shop:recovered")])  # the last record stays open
    await streamer._flush()
    await asyncio.sleep(0)  # the acknowledgement callback
    sent = [raw[1] for chunk in sink.chunks for raw in chunk.entries()]
    assert sent == ["INFO:shop:started", "\n".join(t.decode() for t in TRACEBACK)]
    last_traceback_line = BASE_NS + 5 * 1_000_000_000
    assert streamer.cursor.acked_ts_ns == last_traceback_line, "acknowledged at the record's first line"
    assert acknowledged[-1][0] == last_traceback_line
    assert streamer.cursor.acked_position == last_traceback_line // 1000 * 1000
    figure = streamer._metrics.value
    assert figure("logweave_pod_collector_lines_read_total") == 6, "each line read counts, before joining"
    assert figure("logweave_pod_collector_lines_published_total") == 2, "records sent: the open one waits"


async def test_without_joining_the_last_line_sent_is_acknowledged() -> None:
    streamer, sink, _ = await stream_of(None)
    assert sink.chunks == []
    streamer._take([timestamped(1, b"a"), timestamped(2, b"b")])
    await streamer._flush()
    await asyncio.sleep(0)
    assert [raw[1] for raw in sink.chunks[0].lines] == ["a", "b"]
    assert streamer.cursor.acked_ts_ns == BASE_NS + 2 * 1_000_000_000


async def test_a_rule_switch_takes_effect_at_a_chunk_boundary() -> None:
    java = [b"ERROR charge failed", b"java.lang.IllegalStateException: declined",
            b"\tat com.example.Pay.charge(Pay.java:4)"]
    streamer, sink, _ = await stream_of(None)
    streamer._take([timestamped(1 + i, t) for i, t in enumerate(java)])  # read before the switch: no rule
    streamer.use_rule(CompiledRule(MultilineRule(detectors=["java"])))
    await streamer._switch_rule()  # what the follow loop does before taking the next data
    assert [[raw[1] for raw in chunk.entries()] for chunk in sink.chunks] == [[t.decode() for t in java]], \
        "the lines read before the switch went out as one chunk, as the old rule left them"
    streamer._take([timestamped(10 + i, t) for i, t in enumerate(java)] + [timestamped(20, b"INFO next")])
    await streamer._flush()
    assert [raw[1] for raw in sink.chunks[1].lines] == [b"\n".join(java).decode()]


async def test_switching_joining_off_sends_the_open_record_and_acknowledges_every_line_read() -> None:
    streamer, sink, _ = await stream_of(MultilineRule(detectors=["python"]))
    streamer._take([timestamped(1 + i, t) for i, t in enumerate(TRACEBACK)])  # the traceback stays open
    streamer.use_rule(None)
    await streamer._switch_rule()
    streamer._take([timestamped(10, b"INFO:shop:recovered"), timestamped(11, b"INFO:shop:idle")])
    await streamer._flush()
    await asyncio.sleep(0)
    sent = [raw[1] for chunk in sink.chunks for raw in chunk.entries()]
    assert sent == ["\n".join(t.decode() for t in TRACEBACK), "INFO:shop:recovered", "INFO:shop:idle"]
    assert streamer.cursor.acked_ts_ns == BASE_NS + 11 * 1_000_000_000, "acknowledged at the last line sent"


async def test_a_stale_watch_at_the_first_connect_never_reads_the_next_instance(tmp_path: Any) -> None:
    """The first connect goes by the watch's status without asking the API first; when the watch lags
    behind a restart, the check after opening sends the streamer to the previous instance's log."""
    from collectors.pods.apiconfig import load_kubeconfig
    from collectors.pods.client import KubeClient
    from tests.support.kube_api import FakeKubeApi

    api = await FakeKubeApi(max_piece=None).start()
    client = KubeClient(load_kubeconfig([api.write_kubeconfig(tmp_path / "kubeconfig")]), 8)
    try:
        pod = api.add_pod("p", containers=("app",))
        api.log(pod, "app", ["first instance 1", "first instance 2"])
        api.restart(pod, "app")
        api.log(pod, "app", ["second instance"])
        sink = AckingSink()

        async def verify() -> InstanceStatus:  # what the supervisor asks the API: restarted once since
            return InstanceStatus.REPLACED if pod.containers["app"].restart_count >= 1 else InstanceStatus.LIVE

        streamer = LogStreamer(StreamTarget("demo-system", "p", "app", "pod:u:app:0", {"kind": "pod-api"}),
                               StreamCursor(), client, sink, lambda: InstanceStatus.LIVE, verify,  # the stale watch
                               PodCollectorSettings(), PendingBudget(1 << 20), PodMetrics())
        await asyncio.wait_for(streamer.run(), 30)
        assert [raw[1] for chunk in sink.chunks for raw in chunk.entries()] == ["first instance 1", "first instance 2"]
        assert api.requests["log"] == 2  # the current log opened by the stale status, dropped unread
    finally:
        await client.close()
        await api.stop()
