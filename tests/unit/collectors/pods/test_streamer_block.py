"""The follow loop hands whole-line blocks to `_take_block` (one regular-expression pass, no per-line bytes
or tuple); every block must yield exactly the entries the line-by-line `_take` yields, whatever its lines
look like: kubelet lines, a whole second without a fraction, offsets, no timestamp, invalid dates,
non-UTF-8 content, lines without content, lines already published."""

from __future__ import annotations

import pytest

from collectors.pods.batching import PendingBudget
from collectors.pods.metrics import PodMetrics
from collectors.pods.positions import StreamCursor
from collectors.pods.streamer import InstanceStatus, LogStreamer, StreamTarget
from core.settings import PodCollectorSettings

KUBELET = [b"2026-01-01T00:00:01.5Z first", b"2026-01-01T00:00:01.500000001Z {\"msg\": \"json\"}",
           b"2026-01-01T00:00:02Z whole second", b"2026-01-01T00:00:02.123456789Z  two spaces\r",
           b"2026-01-01T00:00:03.1Z caf\xc3\xa9", b"2026-01-01T00:00:03.2Z "]
ODD = [b"2026-01-01T00:00:04.1+00:00 offset", b"no timestamp at all", b"2026-13-45T99:00:00.1Z not a date",
       b"2026-01-01T00:00:05.3Z \xff\xfe not utf-8", b"2026-01-01T00:00:06.1234567891Z ten digits",
       b"2026-01-01T00:00:07.1Z", b"x 2026-01-01T00:00:08.1Z suffix", b""]


class NoSink:
    recoveries = 0  # nothing is flushed in these tests


def streamer() -> LogStreamer:
    async def verify() -> InstanceStatus:
        return InstanceStatus.LIVE

    return LogStreamer(StreamTarget("ns", "pod", "app", "pod:u:app:0", {"kind": "pod-api"}), StreamCursor(),
                       None, NoSink(), lambda: InstanceStatus.LIVE, verify,  # type: ignore[arg-type]
                       PodCollectorSettings(), PendingBudget(1 << 30), PodMetrics())


@pytest.mark.parametrize("lines", [KUBELET, ODD, KUBELET + ODD + KUBELET, ODD[3:4] + KUBELET, KUBELET[2:3] * 5],
                         ids=["kubelet", "odd", "mixed", "bad-utf8-first", "one-microsecond"])
async def test_a_block_yields_what_line_by_line_yields(lines: list[bytes]) -> None:
    block = b"".join(line + b"\n" for line in lines)
    by_line, by_block = streamer(), streamer()
    for _ in range(2):  # the second pass, a reconnect replaying the lines, is all duplicates
        by_line.cursor.begin_connection()
        by_block.cursor.begin_connection()
        by_line._take([(line, False) for line in lines])
        by_block._take_block(block)
    assert by_block._batcher.lines == by_line._batcher.lines
    assert by_block._batcher.bytes == by_line._batcher.bytes
    assert by_block.cursor.last_position == by_line.cursor.last_position
    assert by_block._metrics.duplicates._value.get() == by_line._metrics.duplicates._value.get()
    for read in (by_line, by_block):  # every line taken counts as read, replayed ones too, once
        assert read._metrics.value("logweave_pod_collector_lines_read_total") == 2 * len(lines)
    if set(lines) <= set(KUBELET):  # lines the kubelet wrote are each published once, whatever replays
        assert len(by_block._batcher.lines) == len(lines)
        assert by_block._metrics.duplicates._value.get() == len(lines)
