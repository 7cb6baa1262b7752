"""The file collector against real files and a real broker, observed by reading back logs.raw."""

from __future__ import annotations

import asyncio
import logging
import time
import urllib.request
from pathlib import Path

import pytest

from collectors.files.metrics import FileMetrics
from commands.broker import EmbeddedBroker, free_port
from core.settings import Settings
from tests.integration.collectors.file_helpers import (
    Line,
    collector_settings,
    cri,
    pod_log,
    read_lines,
    running_collector,
    wait_for_lines,
)
from tests.support.polling import wait_for


async def _at_least(settings: Settings, count: int) -> list[Line] | None:
    lines = await read_lines(settings)
    return lines if len(lines) >= count else None


async def test_cri_pod_logs_arrive_with_metadata_and_byte_positions(broker: EmbeddedBroker, tmp_path: Path) -> None:
    root = tmp_path / "pods"
    files = [pod_log(root, "shop", f"web-{i}", restart=i % 2) for i in range(3)]
    for n, path in enumerate(files):
        path.write_bytes(b"".join(cri(b'{"traceId":"t%d","i":%d}' % (n, i)) for i in range(200)))
    port = free_port()
    settings = collector_settings(broker, tmp_path, metrics_port=port)
    metrics = FileMetrics()
    async with running_collector(settings, metrics):
        await wait_for_lines(settings, 600)  # the files as they were, then lines appended while followed
        for n, path in enumerate(files):  # lines appended while the collector follows the file
            with open(path, "ab") as handle:
                handle.write(b"".join(cri(b'{"traceId":"t%d","i":%d}' % (n, i)) for i in range(200, 300)))
        lines = await wait_for_lines(settings, 900)
        await wait_for(lambda: metrics.value("logweave_file_collector_lines_published_total") == 900, timeout=30,
                       what="900 lines counted as published")
        exposed = await asyncio.to_thread(lambda: urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics").read())
    assert len(lines) == 900  # nothing twice in a clean run
    assert metrics.value("logweave_file_collector_lines_published_total") == 900
    assert metrics.value("logweave_file_collector_files_tracked") == 3
    assert metrics.value("logweave_file_collector_bytes_read_total") == sum(p.stat().st_size for p in files)
    assert metrics.value("logweave_file_collector_lag_bytes", path=str(files[0])) == 0
    assert b"logweave_file_collector_lines_read_total 900.0" in exposed
    for n, path in enumerate(files):
        mine = [ln for ln in lines if ln.src["path"] == str(path)]
        data = path.read_bytes()
        starts = [0] + [i + 1 for i, b in enumerate(data) if b == 0x0A][:-1]
        assert [ln.position for ln in mine] == starts
        assert [ln.data for ln in mine] == [b'{"traceId":"t%d","i":%d}' % (n, i) for i in range(300)]
        src = mine[0].src
        assert src["kind"] == "file" and src["node"] == "node-1" and src["format"] == "cri"
        assert src["namespace"] == "shop" and src["pod"] == f"web-{n}" and src["container"] == "app"
        assert src["restart"] == n % 2 and src["pod_uid"] == path.parent.parent.name.split("_")[2]
        st = path.stat()
        assert mine[0].stream_id.startswith(f"file:{st.st_dev}:{st.st_ino}:") and mine[0].stream_id.endswith(":0")
        assert {ln.stream for ln in mine} == {"stdout"}


async def test_restart_resumes_at_checkpoint_and_rereads_identically(broker: EmbeddedBroker, tmp_path: Path) -> None:
    path = pod_log(tmp_path / "pods", "shop", "api")
    path.write_bytes(b"".join(cri(b"line %d" % i) for i in range(500)))
    settings = collector_settings(broker, tmp_path)
    async with running_collector(settings):
        first = await wait_for_lines(settings, 500)
    with open(path, "ab") as handle:
        handle.write(b"".join(cri(b"line %d" % i) for i in range(500, 600)))
    async with running_collector(settings):  # resumes at the checkpoint: only the new lines are sent
        second = await wait_for_lines(settings, 600)
    assert len(second) == 600 and len(first) == 500
    for entry in (tmp_path / "ckpt").iterdir():
        entry.unlink()  # without a checkpoint everything is read again, with identical identities
    async with running_collector(settings):
        await wait_for(lambda: _at_least(settings, 1200), timeout=60, what="every line published twice")
    third = await read_lines(settings)  # after a clean stop: anything it still had in flight is there too
    once = sorted({(ln.stream_id, ln.position, ln.data) for ln in third})
    assert len(once) == 600 and sorted((ln.stream_id, ln.position, ln.data) for ln in third) == sorted(once * 2)


async def test_read_from_tail_applies_to_files_present_at_the_first_start_only(broker: EmbeddedBroker,
                                                                             tmp_path: Path) -> None:
    old = pod_log(tmp_path / "pods", "shop", "old")
    old.write_bytes(b"".join(cri(b"old %d" % i) for i in range(100)))
    settings = collector_settings(broker, tmp_path, read_from="tail")
    metrics = FileMetrics()
    async with running_collector(settings, metrics):
        await wait_for(lambda: metrics.value("logweave_file_collector_files_tracked") == 1, timeout=30,
                       what="the old file tracked (from its tail)")
        with open(old, "ab") as handle:
            handle.write(b"".join(cri(b"new %d" % i) for i in range(50)))
        fresh = pod_log(tmp_path / "pods", "shop", "fresh")  # appears after the start: read from its head
        fresh.write_bytes(b"".join(cri(b"fresh %d" % i) for i in range(30)))
        await wait_for_lines(settings, 80)
    lines = await read_lines(settings)  # after a clean stop: anything it still had in flight is there too
    assert sorted(ln.data for ln in lines) == sorted([b"new %d" % i for i in range(50)] +
                                                     [b"fresh %d" % i for i in range(30)])


async def test_globs_matching_nothing_warn_every_interval_until_a_file_appears(
        broker: EmbeddedBroker, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    settings = collector_settings(broker, tmp_path, no_match_warning_interval=0.3)

    def warnings() -> int:
        return sum("no file matches collector.paths" in r.getMessage() for r in caplog.records)

    with caplog.at_level(logging.WARNING, logger="collectors.files.service"):
        async with running_collector(settings):
            await wait_for(lambda: warnings() >= 3, what="three no-match warnings", last_seen=warnings)
            path = pod_log(tmp_path / "pods", "shop", "late")
            path.write_bytes(cri(b'{"traceId":"t1"}'))
            await wait_for_lines(settings, 1)
            after, followed_at = warnings(), time.monotonic()
            # an observation window of two intervals with the file followed: no further warning
            await wait_for(lambda: time.monotonic() > followed_at + 0.7, what="two warning intervals to pass")
    assert warnings() == after, "warned about no matching file while one was followed"
