"""Rotation under load, copytruncate, rotation while the collector is down, rotation faster than the rescan."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import orjson

from collectors.files.metrics import FileMetrics
from commands.broker import EmbeddedBroker
from tests.integration.collectors.file_helpers import (
    Line,
    collector_settings,
    cri,
    pod_log,
    read_lines,
    running_collector,
    wait_for_lines,
)
from tests.integration.collectors.file_writers import RotatingWriter, write_lines
from tests.support.polling import wait_for


def seqs(lines: list[Line]) -> list[int]:
    bad = [ln for ln in lines if not ln.data.startswith(b"{")]
    assert not bad, bad[:3]
    return [int(orjson.loads(ln.data)["seq"]) for ln in lines]


def open_paths() -> list[str]:
    paths = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            paths.append(os.readlink(f"/proc/self/fd/{fd}"))
        except OSError:
            continue  # closed meanwhile
    return paths


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
    metrics = FileMetrics()
    async with running_collector(settings, metrics):
        writer = RotatingWriter(path, total, rate=4_000, rotate_every=3_000, mode="copytruncate")
        writer.start()
        await asyncio.to_thread(writer.join)
        await wait_for_lines(settings, total, timeout=60)
    lines = await read_lines(settings)  # after a clean stop: anything it still had in flight is there too
    got = seqs(lines)
    assert sorted(set(got)) == list(range(total))
    assert len(got) == total, "a copytruncate copy was read again"
    assert metrics.value("logweave_file_collector_lines_published_total") == total
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
        await wait_for_lines(settings, 1000)
    lines = await read_lines(settings)  # after a clean stop: anything it still had in flight is there too
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


async def test_container_symlink_repointed_to_a_new_restart(broker: EmbeddedBroker, tmp_path: Path) -> None:
    first = pod_log(tmp_path / "pods", "shop", "svc", container="api", restart=0)
    second = first.with_name("1.log")
    write_lines(first, 0, 200)
    link = tmp_path / "containers" / "svc_shop_api-abc123.log"
    link.parent.mkdir()
    link.symlink_to(first)
    settings = collector_settings(broker, tmp_path, paths=[str(tmp_path / "containers" / "*.log")],
                                  rotated_grace=0.5)
    async with running_collector(settings):
        await wait_for_lines(settings, 200)
        write_lines(first, 200, 50)  # the old container's last lines, then the restart
        write_lines(second, 250, 100)
        staged = link.with_name("tmp-link")
        staged.symlink_to(second)
        os.replace(staged, link)  # atomic re-pointing, as kubelet does
        lines = await wait_for_lines(settings, 350)
    assert sorted(seqs(lines)) == list(range(350))
    restarts = {int(orjson.loads(ln.data)["seq"]) >= 250: ln.src["restart"] for ln in lines}
    assert restarts == {False: 0, True: 1}
    assert {ln.src["pod"] for ln in lines} == {"svc"} and {ln.src["container"] for ln in lines} == {"api"}


async def test_deleted_while_open_is_read_to_the_end_then_closed(broker: EmbeddedBroker, tmp_path: Path) -> None:
    path = pod_log(tmp_path / "pods", "shop", "gone")
    write_lines(path, 0, 100)
    # the collector follows a deleted file for rotated_grace after it saw the deletion, then closes it: what
    # is written later is not read (by design). The write below comes 0.5 s after the unlink, so the grace
    # must outlast that on a loaded machine (at 0.5 s, under `make test-under-load` the write came late)
    settings = collector_settings(broker, tmp_path, rotated_grace=3.0)
    async with running_collector(settings):
        await wait_for_lines(settings, 100)
        with open(path, "ab") as writer:  # the writer keeps the file open after it is deleted
            os.unlink(path)
            await asyncio.sleep(0.5)
            writer.write(b"".join(cri(b'{"seq":%d}' % n) for n in range(100, 150)))
        lines = await wait_for_lines(settings, 150)
        await wait_for(lambda: not [fd for fd in open_paths() if "gone" in fd], timeout=60,
                       what="the deleted file's descriptor to be closed")
    assert sorted(seqs(lines)) == list(range(150))
