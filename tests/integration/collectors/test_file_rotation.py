"""Rotation under load, copytruncate, rotation while the collector is down, rotation faster than the rescan."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import orjson

from app.broker import EmbeddedBroker
from tests.integration.collectors.file_helpers import (
    Line,
    collector_settings,
    pod_log,
    read_lines,
    running_collector,
    wait_for_lines,
)
from tests.integration.collectors.file_writers import RotatingWriter, write_lines


def seqs(lines: list[Line]) -> list[int]:
    bad = [ln for ln in lines if not ln.data.startswith(b"{")]
    assert not bad, bad[:3]
    return [int(orjson.loads(ln.data)["seq"]) for ln in lines]


def assert_ordered_streams(lines: list[Line]) -> None:
    """Within every stream, positions strictly increase in publish order (a clean run: no repeats)."""
    by_stream: dict[str, list[int]] = {}
    for ln in lines:
        by_stream.setdefault(ln.stream_id, []).append(ln.position)
    for positions in by_stream.values():
        assert all(a < b for a, b in zip(positions, positions[1:], strict=False)), "positions out of order"


async def test_rename_rotation_under_steady_writer(broker: EmbeddedBroker, tmp_path: Path) -> None:
    path = pod_log(tmp_path / "pods", "shop", "web")
    write_lines(path, 0, 1)
    settings = collector_settings(broker, tmp_path, rotated_grace=1.0)
    total = 30_000
    async with running_collector(settings):
        writer = RotatingWriter(path, total, rate=5_000, rotate_every=6_000)
        writer.start()
        await asyncio.to_thread(writer.join)
        lines = await wait_for_lines(settings, total + 1, timeout=60)
    assert writer.rotations == 4
    got = seqs(lines)
    assert sorted(got) == [0] + list(range(total))  # seq 0 was written once before the writer started
    assert len({ln.stream_id for ln in lines}) == 5
    assert_ordered_streams(lines)


async def test_copytruncate_starts_a_new_generation_without_loss(broker: EmbeddedBroker, tmp_path: Path) -> None:
    path = tmp_path / "app" / "app.log"
    path.parent.mkdir()
    settings = collector_settings(broker, tmp_path, paths=[str(tmp_path / "app" / "*.log")], format="cri")
    total = 12_000
    async with running_collector(settings):
        writer = RotatingWriter(path, total, rate=4_000, rotate_every=3_000, mode="copytruncate")
        writer.start()
        await asyncio.to_thread(writer.join)
        lines = await wait_for_lines(settings, total, timeout=60)
        await asyncio.sleep(1.0)
        lines = await read_lines(settings)
    got = seqs(lines)
    assert sorted(set(got)) == list(range(total))
    assert len(got) == total, "a copytruncate copy was read again"
    st = path.stat()
    generations = {ln.stream_id.rsplit(":", 1)[1] for ln in lines if ln.stream_id.startswith(f"file:{st.st_dev}:"
                                                                                               f"{st.st_ino}:")}
    assert {"0", "1", "2", "3"} <= generations
    assert_ordered_streams(lines)


async def test_rotation_while_the_collector_is_down(broker: EmbeddedBroker, tmp_path: Path) -> None:
    path = pod_log(tmp_path / "pods", "shop", "api")
    write_lines(path, 0, 500)
    settings = collector_settings(broker, tmp_path)
    async with running_collector(settings):
        await wait_for_lines(settings, 500)
    write_lines(path, 500, 300)  # written while down, then rotated away (kubelet naming), new file
    os.rename(path, path.with_name("0.log.20250610-082541"))
    write_lines(path, 800, 200)
    async with running_collector(settings):
        lines = await wait_for_lines(settings, 1000)
        await asyncio.sleep(0.5)
        lines = await read_lines(settings)
    assert sorted(seqs(lines)) == list(range(1000))


async def test_rotation_faster_than_the_rescan(broker: EmbeddedBroker, tmp_path: Path) -> None:
    path = pod_log(tmp_path / "pods", "shop", "fast")
    write_lines(path, 0, 1)
    settings = collector_settings(broker, tmp_path, rescan_interval=30.0, rotated_grace=1.0)
    async with running_collector(settings):
        await wait_for_lines(settings, 1)
        n = 1
        for generation in range(1, 21):  # 20 rotations in ~1 s; the rescan would run once in 30 s
            write_lines(path, n, 99)
            n += 99
            os.rename(path, path.with_name(f"0.log.{generation:04d}"))
            write_lines(path, n, 1)
            n += 1
            await asyncio.sleep(0.05)
        lines = await wait_for_lines(settings, n, timeout=30)
    assert sorted(seqs(lines)) == list(range(n))
