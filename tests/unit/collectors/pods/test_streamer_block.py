"""The follow loop hands whole-line blocks to `_take_block` (one pass, no per-line bytes or tuple: the C
scan when built, else its Python reference, blockscan.py); every block must yield exactly the entries the
line-by-line `_take` yields, on either path, whatever its lines look like: kubelet lines, a whole second
without a fraction, offsets, no timestamp, invalid dates, non-UTF-8 content, lines without content,
lines already published, lines older than the skip point."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from collectors.pods import blockscan
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
NON_ASCII = [b"2026-01-01T00:00:09.1Z \xe6\x97\xa5\xe6\x9c\xac", b"2026-01-01T00:00:09.2Z plain",
             b"1969-12-31T23:59:59.9Z before the epoch", b"2400-01-01T00:00:00Z past 64-bit nanoseconds"]


@pytest.fixture(params=["native", "python"], autouse=True)
def scan_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Each test once with the C scan (where built) and once with the Python reference only."""
    if request.param == "python":
        monkeypatch.setattr(blockscan, "native_module", lambda name: None)
    yield str(request.param)


class NoSink:
    recoveries = 0  # nothing is flushed in these tests


def streamer() -> LogStreamer:
    async def verify() -> InstanceStatus:
        return InstanceStatus.LIVE

    return LogStreamer(StreamTarget("ns", "pod", "app", "pod:u:app:0", {"kind": "pod-api"}), StreamCursor(),
                       None, NoSink(), lambda: InstanceStatus.LIVE, verify,  # type: ignore[arg-type]
                       PodCollectorSettings(), PendingBudget(1 << 30), PodMetrics())


@pytest.mark.parametrize("lines", [KUBELET, ODD, KUBELET + ODD + KUBELET, ODD[3:4] + KUBELET, KUBELET[2:3] * 5,
                                   NON_ASCII, KUBELET + NON_ASCII[:2], KUBELET[2:3] * 1500],
                         ids=["kubelet", "odd", "mixed", "bad-utf8-first", "one-microsecond", "non-ascii",
                              "utf8-and-ascii", "over-1000-in-one-microsecond"])
@pytest.mark.parametrize("skip_before_ns", [0, 1_767_225_602_000_000_000])
async def test_a_block_yields_what_line_by_line_yields(lines: list[bytes], skip_before_ns: int) -> None:
    block = b"".join(line + b"\n" for line in lines)
    by_line, by_block = streamer(), streamer()
    by_line.cursor.skip_before_ns = by_block.cursor.skip_before_ns = skip_before_ns
    for _ in range(2):  # the second pass, a reconnect replaying the lines, is all duplicates
        by_line.cursor.begin_connection()
        by_block.cursor.begin_connection()
        by_line._take([(line, False) for line in lines])
        by_block._take_block(block)
    assert by_block._batcher.entries() == by_line._batcher.entries()
    assert by_block._batcher.bytes == by_line._batcher.bytes
    assert by_block.cursor.last_position == by_line.cursor.last_position
    assert by_block._metrics.duplicates.count == by_line._metrics.duplicates.count
    for read in (by_line, by_block):  # every line taken counts as read, replayed ones too, once
        assert read._metrics.value("logweave_pod_collector_lines_read_total") == 2 * len(lines)
    # lines the kubelet wrote are each published once, whatever replays
    if set(lines) <= set(KUBELET) and not skip_before_ns:
        assert by_block._batcher.count == len(lines)
        assert by_block._metrics.duplicates.count == len(lines)
