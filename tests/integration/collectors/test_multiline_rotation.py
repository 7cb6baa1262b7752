"""Multiline records across rotation, with real files, a real rename (kubelet: 0.log renamed to 0.log.<time>,
a new 0.log) and a real collector and broker.

The same with logrotate's copytruncate (`app.log` copied to `app.log.1`, then truncated): the record
keeps the original's stream id (the copy is read on under it) and takes the truncated file's frames.
A stack trace whose first lines are in the old file and whose `\\tat ...` frames start the new one is
one record: the old file's stream id and the position of its first line there, every line in order.
The new file's own lines start after the frames it handed over. The flush timeout still applies: a
record it closed before the new file was written is not continued.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from pathlib import Path
from typing import Any

import orjson

from commands.broker import EmbeddedBroker
from core.rule_settings import MultilineRule, MultilineSettings
from core.settings import Settings
from tests.integration.collectors.file_helpers import (
    Line,
    collector_settings,
    cri,
    pod_log,
    running_collector,
    wait_for_lines,
)

TRACE = [b"ERROR payment failed for order 7", b"java.lang.IllegalStateException: card declined",
         b"\tat com.example.shop.Payments.charge(Payments.java:42)",
         b"\tat com.example.shop.CheckoutController.checkout(CheckoutController.java:77)",
         b"Caused by: java.net.SocketTimeoutException: Read timed out",
         b"\t... 3 common frames omitted"]


def append(path: Path, *contents: bytes) -> None:
    with open(path, "ab") as handle:
        handle.write(b"".join(cri(content) for content in contents))


def java_settings(broker: EmbeddedBroker, tmp_path: Path, flush_timeout: float, **collector: Any) -> Settings:
    settings = collector_settings(broker, tmp_path, **{"rotated_grace": 0.5, **collector})
    return settings.model_copy(update={"multiline": MultilineSettings(
        rules=[MultilineRule(detectors=["java"], flush_timeout=flush_timeout)])})


def by_stream(lines: list[Line]) -> dict[str, list[Line]]:
    streams: dict[str, list[Line]] = {}
    for ln in sorted(lines, key=lambda ln: ln.position):
        streams.setdefault(ln.stream_id, []).append(ln)
    return streams


async def test_a_record_open_at_rotation_takes_the_new_files_leading_frames(broker: EmbeddedBroker,
                                                                            tmp_path: Path) -> None:
    # a flush timeout far beyond the test's waits: only the new file's next record can close the trace
    settings = java_settings(broker, tmp_path, flush_timeout=600)
    path = pod_log(tmp_path / "pods", "shop", "checkout")
    append(path, b'{"msg":"before"}', *TRACE[:3])
    async with running_collector(settings):
        await wait_for_lines(settings, 1, timeout=60)  # "before": closed by the trace's first line
        os.rename(path, path.with_name("0.log.20261202-231500"))  # what the kubelet does
        append(path, *TRACE[3:], b'{"msg":"after"}', b'{"msg":"last"}')  # "last" stays open
        lines = await wait_for_lines(settings, 3, timeout=60)
        await asyncio.sleep(1.0)  # anything sent twice or cut would arrive by now
        lines = await wait_for_lines(settings, 3, timeout=60)
        checkpoints = orjson.loads((settings.collector.checkpoint_dir / "checkpoints.json").read_bytes())
    streams = by_stream(lines)
    assert len(lines) == 3, [ln.data for ln in lines]
    old = next(group for group in streams.values() if group[0].data.startswith(b'{"msg":"before"}'))
    new = next(group for group in streams.values() if group is not old)
    assert [ln.data for ln in old] == [b'{"msg":"before"}', b"\n".join(TRACE)]
    assert old[1].position == len(cri(b'{"msg":"before"}')), "the record keeps its first line's position"
    assert [ln.data for ln in new] == [b'{"msg":"after"}']
    taken = sum(len(cri(line)) for line in TRACE[3:])
    assert new[0].position == taken, "the new file's own lines start after the frames it handed over"
    assert checkpoints[new[0].stream_id]["lead"] == taken


async def test_the_flush_timeout_still_closes_a_record_before_the_new_file_continues_it(
        broker: EmbeddedBroker, tmp_path: Path) -> None:
    settings = java_settings(broker, tmp_path, flush_timeout=0.3)
    path = pod_log(tmp_path / "pods", "shop", "checkout")
    append(path, *TRACE[:3])
    async with running_collector(settings):
        await wait_for_lines(settings, 1, timeout=60)  # the trace's first three lines, closed by the timeout
        os.rename(path, path.with_name("0.log.20261202-231500"))
        append(path, *TRACE[3:], b'{"msg":"after"}')
        lines = await wait_for_lines(settings, 3, timeout=60)
    assert sorted(ln.data for ln in lines) == sorted([b"\n".join(TRACE[:3]), b"\n".join(TRACE[3:]), b'{"msg":"after"}'])


async def test_copytruncate_in_the_middle_of_a_record(broker: EmbeddedBroker, tmp_path: Path) -> None:
    path = tmp_path / "app" / "app.log"
    path.parent.mkdir()
    settings = java_settings(broker, tmp_path, flush_timeout=600, paths=[str(tmp_path / "app" / "*.log")],
                             format="cri", rotated_grace=2.0)
    append(path, b'{"msg":"before"}', *TRACE[:3])
    async with running_collector(settings):
        first = await wait_for_lines(settings, 1, timeout=60)
        shutil.copyfile(path, path.with_name("app.log.1"))  # what logrotate's copytruncate does
        os.truncate(path, 0)
        append(path, *TRACE[3:], b'{"msg":"after"}', b'{"msg":"last"}')
        await wait_for_lines(settings, 3, timeout=60)
        await asyncio.sleep(1.0)
        lines = await wait_for_lines(settings, 3, timeout=60)
    streams = by_stream(lines)
    assert len(lines) == 3, [(ln.stream_id, ln.position, ln.data[:20]) for ln in lines]
    old = streams[first[0].stream_id]
    assert [ln.data for ln in old] == [b'{"msg":"before"}', b"\n".join(TRACE)]
    new = next(group for sid, group in streams.items() if sid != first[0].stream_id)
    assert [(ln.position, ln.data) for ln in new] == [(sum(len(cri(line)) for line in TRACE[3:]), b'{"msg":"after"}')]
