"""Formats end to end: CRI partials with interleaved streams, docker split lines, a 5 MB line, invalid UTF-8."""

from __future__ import annotations

from pathlib import Path

from collectors.files.metrics import FileMetrics
from commands.broker import EmbeddedBroker
from core.models import FLAG_BAD_PREFIX, FLAG_BAD_TIME, FLAG_BASE64, FLAG_TRUNCATED
from tests.integration.collectors.file_helpers import (
    collector_settings,
    cri,
    pod_log,
    running_collector,
    wait_for_lines,
)


async def test_cri_partials_with_interleaved_stdout_and_stderr(broker: EmbeddedBroker, tmp_path: Path) -> None:
    path = pod_log(tmp_path / "pods", "shop", "mixed")
    records = [cri(b"start", b"stdout")]
    for i in range(50):
        records += [cri(b"out-%d-a " % i, b"stdout", b"P"), cri(b"err-%d-a " % i, b"stderr", b"P"),
                    cri(b"out-%d-b " % i, b"stdout", b"P"), cri(b"err-%d-b" % i, b"stderr", b"F"),
                    cri(b"out-%d-c" % i, b"stdout", b"F")]
    path.write_bytes(b"".join(records))
    settings = collector_settings(broker, tmp_path)
    async with running_collector(settings):
        lines = await wait_for_lines(settings, 101)
    assert len(lines) == 101
    out = [ln.data for ln in lines if ln.stream == "stdout"]
    err = [ln.data for ln in lines if ln.stream == "stderr"]
    assert out == [b"start"] + [b"out-%d-a out-%d-b out-%d-c" % (i, i, i) for i in range(50)]
    assert err == [b"err-%d-a err-%d-b" % (i, i) for i in range(50)]
    positions = [ln.position for ln in lines]
    assert positions == sorted(set(positions))  # strictly increasing within the stream


async def test_docker_json_file_split_lines(broker: EmbeddedBroker, tmp_path: Path) -> None:
    path = tmp_path / "docker" / "c1-json.log"
    path.parent.mkdir()
    body = b"".join(
        b'{"log":"part %d one ","stream":"stdout","time":"2025-06-10T08:25:41.1Z"}\n'
        b'{"log":"warn %d\\n","stream":"stderr","time":"2025-06-10T08:25:41.2Z"}\n'
        b'{"log":"part %d two\\n","stream":"stdout","time":"2025-06-10T08:25:41.3Z"}\n' % (i, i, i)
        for i in range(100))
    path.write_bytes(body)
    settings = collector_settings(broker, tmp_path, paths=[str(tmp_path / "docker" / "*.log")])
    async with running_collector(settings):
        lines = await wait_for_lines(settings, 200)
    assert {ln.src["format"] for ln in lines} == {"docker"}
    expected = [b"part %d one part %d two" % (i, i) for i in range(100)]
    assert [ln.data for ln in lines if ln.stream == "stdout"] == expected
    assert [ln.data for ln in lines if ln.stream == "stderr"] == [b"warn %d" % i for i in range(100)]


async def test_five_megabyte_line_is_truncated_and_the_next_line_kept(broker: EmbeddedBroker, tmp_path: Path) -> None:
    path = pod_log(tmp_path / "pods", "shop", "big")
    path.write_bytes(cri(b"before") + cri(b"y" * (5 * 1024 * 1024)) + cri(b"after"))
    settings = collector_settings(broker, tmp_path, max_line_bytes=256 * 1024)
    async with running_collector(settings):
        lines = await wait_for_lines(settings, 3)
    assert [ln.data[:6] for ln in lines] == [b"before", b"yyyyyy", b"after"]
    assert len(lines[1].data) <= 256 * 1024 and lines[1].flags & FLAG_TRUNCATED
    assert lines[2].position == len(cri(b"before")) + len(cri(b"y" * (5 * 1024 * 1024)))


async def test_five_megabyte_partial_line_is_truncated(broker: EmbeddedBroker, tmp_path: Path) -> None:
    path = pod_log(tmp_path / "pods", "shop", "bigpartial")
    fragments = [cri(b"z" * 16384, tag=b"P") for _ in range(320)]  # 5 MiB in kubelet's 16 KiB fragments
    path.write_bytes(b"".join(fragments) + cri(b"end", tag=b"F") + cri(b"next"))
    settings = collector_settings(broker, tmp_path, max_line_bytes=1024 * 1024)
    async with running_collector(settings):
        lines = await wait_for_lines(settings, 2)
    assert len(lines[0].data) == 1024 * 1024 and lines[0].flags & FLAG_TRUNCATED
    assert lines[1].data == b"next"


async def test_invalid_utf8_is_carried_as_bytes(broker: EmbeddedBroker, tmp_path: Path) -> None:
    path = pod_log(tmp_path / "pods", "shop", "binary")
    path.write_bytes(cri(b"ok") + cri(b"\xff\xfe\xc3 broken \x80") + cri("caf\u00e9".encode()))
    settings = collector_settings(broker, tmp_path)
    async with running_collector(settings):
        lines = await wait_for_lines(settings, 3)
    assert [ln.data for ln in lines] == [b"ok", b"\xff\xfe\xc3 broken \x80", "caf\u00e9".encode()]
    assert lines[1].flags & FLAG_BASE64 and not lines[0].flags & FLAG_BASE64


async def test_one_malformed_first_line_does_not_dead_letter_a_pod_log(broker: EmbeddedBroker, tmp_path: Path) -> None:
    """A pod log (kubelet layout) whose first line lacks the CRI prefix: the 3,000 CRI lines after it
    arrive without their prefix; the bad line is flagged; a CRI time that does not parse is flagged
    and counted."""
    path = pod_log(tmp_path / "pods", "shop", "badfirst")
    body = [b"2025-06-10 08:25 half a prefix {\"traceId\":\"t0\"}\n"]
    body += [cri(b'{"traceId":"t%d","i":%d}' % (i % 7, i)) for i in range(3000)]
    body.append(b'2025-99-99T99:99:99Z stdout F {"traceId":"late","i":3000}\n')
    path.write_bytes(b"".join(body))
    settings = collector_settings(broker, tmp_path)
    metrics = FileMetrics()
    async with running_collector(settings, metrics):
        lines = await wait_for_lines(settings, 3002)
    assert {ln.src["format"] for ln in lines} == {"cri"}
    first, *valid, last = sorted(lines, key=lambda ln: ln.position)
    assert first.flags == FLAG_BAD_PREFIX and first.data.startswith(b"2025-06-10 08:25")
    assert [ln.data for ln in valid] == [b'{"traceId":"t%d","i":%d}' % (i % 7, i) for i in range(3000)]
    assert all(ln.flags == 0 for ln in valid)
    assert last.flags == FLAG_BAD_TIME and last.data == b'{"traceId":"late","i":3000}'
    assert metrics.value("logweave_file_collector_lines_bad_time_total") == 1
    assert metrics.value("logweave_file_collector_lines_bad_prefix_total") == 1
