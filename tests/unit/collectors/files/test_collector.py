"""FileCollector re-sends acknowledged chunks that the broker lost (seen after a producer replacement).

The publisher is a stand-in: a broker that acknowledges and then loses writes can only be produced
by chance on the real one (tests/integration/collectors/test_file_crashes.py runs the real outage).
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

from collectors.files.collector import PASS_BYTES, FileCollector
from collectors.files.discovery import discover
from collectors.files.metrics import FileMetrics
from collectors.files.tailer import TailedFile
from core.models import RawChunk
from core.settings import CollectorSettings, load_settings
from kafka_io.publisher import ChunkAck

TIME = b"2025-06-10T08:25:41.630702460Z"


class FakePublisher:
    """Hands out ack futures the test settles; `lost` answers as a replaced producer's end offsets do."""

    def __init__(self) -> None:
        self.chunks: list[RawChunk] = []
        self.acks: list[asyncio.Future[ChunkAck]] = []
        self.recoveries = 0
        self.end_offsets: dict[int, int] = {}
        self.discarded: list[str] = []

    async def publish(self, chunk: RawChunk) -> asyncio.Future[ChunkAck]:
        self.chunks.append(chunk)
        self.acks.append(asyncio.get_running_loop().create_future())
        return self.acks[-1]

    def lost(self, ack: ChunkAck) -> bool:
        return ack.producer < self.recoveries and ack.offset >= self.end_offsets.get(ack.partition, ack.offset + 1)

    def discard(self, stream_id: str) -> None:
        self.discarded.append(stream_id)


def start(tmp_path: Path) -> tuple[Path, CollectorSettings, FakePublisher, FileCollector]:
    """A collector following one pod log under `tmp_path`, publishing through a FakePublisher."""
    path = tmp_path / "pods" / "ns_pod_uid" / "app" / "0.log"
    path.parent.mkdir(parents=True)
    settings = load_settings(environ={}, collector={"paths": [str(tmp_path / "pods" / "*" / "*" / "*.log")],
                                                    "checkpoint_dir": str(tmp_path / "ckpt")}).collector
    publisher = FakePublisher()
    return path, settings, publisher, FileCollector(settings, publisher, FileMetrics())


def write(path: Path, first: int, count: int) -> None:
    with open(path, "ab") as handle:
        handle.write(b"".join(TIME + b" stdout F line %d\n" % n for n in range(first, first + count)))


async def test_acknowledged_chunks_the_broker_lost_are_read_again(tmp_path: Path) -> None:
    path, settings, publisher, collector = start(tmp_path)
    starts: list[int] = []
    for n in range(4):  # four chunks of ten lines, stored at Kafka offsets 100-103
        write(path, n * 10, 10)
        collector.apply_scan(discover(settings.paths, []))
        await collector.pump()
        starts.append(publisher.chunks[-1].entries()[0][0])
        publisher.acks[-1].set_result(ChunkAck(0, 100 + n))
    collector.settle_acks()
    (tailed,) = collector.files.values()
    assert collector.checkpoints[tailed.stream_id]["offset"] == path.stat().st_size

    # the broker came back holding offsets up to 101: the chunks at 102 and 103 were acknowledged, then lost
    publisher.recoveries, publisher.end_offsets = 1, {0: 102}
    collector.settle_acks()
    assert collector.checkpoints[tailed.stream_id]["offset"] == starts[2]
    await collector.pump()
    resent = publisher.chunks[-1]
    assert [line[0] for line in resent.entries()] == [line[0] for c in publisher.chunks[2:4] for line in c.entries()]
    collector.close()


async def test_acks_that_arrived_while_the_loop_was_blocked_are_checked_too(tmp_path: Path) -> None:
    """During an outage the loop waits in `publish`: acks from just before the broker died are unsettled."""
    path, settings, publisher, collector = start(tmp_path)
    write(path, 0, 10)
    collector.apply_scan(discover(settings.paths, []))
    await collector.pump()
    publisher.acks[-1].set_result(ChunkAck(0, 5))
    collector.settle_acks()
    write(path, 10, 10)
    await collector.pump()
    publisher.acks[-1].set_result(ChunkAck(0, 6))  # acknowledged, then lost with the broker's last writes
    publisher.recoveries, publisher.end_offsets = 1, {0: 6}
    collector.settle_acks()
    (tailed,) = collector.files.values()
    assert collector.checkpoints[tailed.stream_id]["offset"] == publisher.chunks[1].entries()[0][0]
    collector.close()


def follow_three(tmp_path: Path) -> tuple[list[Path], CollectorSettings, FakePublisher, FileCollector]:
    """A collector following three pod logs (one line each, read by a first full pass)."""
    paths = [tmp_path / "pods" / f"ns_pod-{n}_uid" / "app" / "0.log" for n in range(3)]
    for path in paths:
        path.parent.mkdir(parents=True)
        write(path, 0, 1)
    settings = load_settings(environ={}, collector={"paths": [str(tmp_path / "pods" / "*" / "*" / "*.log")],
                                                    "checkpoint_dir": str(tmp_path / "ckpt")}).collector
    publisher = FakePublisher()
    return paths, settings, publisher, FileCollector(settings, publisher, FileMetrics())


def record_looks(monkeypatch: Any) -> list[str]:
    """The paths of the files each visit looks at from now on, in order: a visit looks with
    TailedFile.take_appended (one C call taking the size) and, when that leaves the visit to the general
    path, with TailedFile.size."""
    looked_at: list[str] = []

    def spy(looked: Any) -> Any:
        def look(self: TailedFile, *args: Any) -> Any:
            looked_at.append(str(self.path))
            return looked(self, *args)
        return look

    for name in ("size", "take_appended"):
        monkeypatch.setattr(TailedFile, name, spy(getattr(TailedFile, name)))
    return looked_at


def published_paths(publisher: FakePublisher, since: int) -> list[str]:
    return [chunk.source["path"] for chunk in publisher.chunks[since:]]


async def test_a_pass_given_the_modified_paths_looks_only_at_those_files(tmp_path: Path, monkeypatch: Any) -> None:
    paths, settings, publisher, collector = follow_three(tmp_path)
    collector.apply_scan(discover(settings.paths, []))
    await collector.pump(set())  # new files are read without being reported written
    assert sorted(published_paths(publisher, 0)) == sorted(map(str, paths))
    looked_at = record_looks(monkeypatch)

    write(paths[1], 1, 2)
    write(paths[2], 1, 2)  # written too, but not reported: this pass leaves it alone
    sent = len(publisher.chunks)
    assert await collector.pump({os.path.realpath(paths[1])}) > 0
    assert set(looked_at) == {str(paths[1])} and published_paths(publisher, sent) == [str(paths[1])]
    looked_at.clear()
    assert await collector.pump(set()) == 0 and looked_at == []

    sent = len(publisher.chunks)
    assert await collector.pump() > 0  # a full pass (inotify not vouching) looks at every file
    assert set(looked_at) == set(map(str, paths))
    assert published_paths(publisher, sent) == [str(paths[2])]
    collector.close()


async def test_a_backlog_and_a_rewind_are_read_on_without_a_reported_write(tmp_path: Path) -> None:
    path, settings, publisher, collector = start(tmp_path)
    count = PASS_BYTES // 40  # lines of about 50 bytes: more than one pass reads of a file
    write(path, 0, count)
    collector.apply_scan(discover(settings.paths, []))
    await collector.pump(set())
    read = sum(len(chunk.entries()) for chunk in publisher.chunks)
    assert 0 < read < count
    await collector.pump(set())
    assert sum(len(chunk.entries()) for chunk in publisher.chunks) == count
    assert await collector.pump(set()) == 0
    (tailed,) = collector.files.values()
    tailed.rewind(0)  # as after a failed send
    assert await collector.pump(set()) > 0
    collector.close()


def test_a_file_renamed_away_answers_to_its_new_path_and_leaves_the_old_one_to_its_successor(tmp_path: Path) -> None:
    """kubelet renames `0.log` away and creates an empty `0.log`. The rotated file, still read to its end,
    counts under its new name; a write inotify reports for `0.log` is the new file's, which the pass then
    follows without another scan (the scan found it, empty). (The rotated file used to count under `0.log`:
    on a quiet node the first lines after each rotation waited for its release, `rotated_grace`, and then
    the inotify rescan interval, 8-9 s in the live benchmark.)"""
    path, settings, _, collector = start(tmp_path)
    write(path, 0, 1)
    collector.apply_scan(discover(settings.paths, []))
    live = os.path.realpath(path)
    assert not collector.untracked({live})
    rotated = path.with_name("0.log.20261204-120000")
    os.rename(path, rotated)
    path.touch()
    collector.apply_scan(discover(settings.paths, []))
    (followed,) = collector.files.values()
    assert followed.rotated_at is not None and followed.real_path == os.path.realpath(rotated)
    assert live in collector.first_line_awaited and not collector.untracked({live})  # found, not followed yet
    assert not collector.untracked({os.path.realpath(rotated)})  # the old writer's last lines are its own
    assert collector.watch_directories() == {str(path.parent.resolve())}
    collector.follow_awaited({live})  # written, but no complete line yet
    assert collector.waiting_for_first_line and len(collector.files) == 1
    write(path, 0, 1)
    collector.follow_awaited(set())  # a write of another file
    assert collector.waiting_for_first_line and len(collector.files) == 1
    collector.follow_awaited({live})
    assert not collector.waiting_for_first_line and not collector.untracked({live})
    assert {t.real_path for t in collector.files.values()} == {live, os.path.realpath(rotated)}
    os.remove(rotated)
    collector.apply_scan(discover(settings.paths, []))
    assert not collector.untracked({live}) and not collector.waiting_for_first_line
    collector.close()


async def test_a_file_scanned_empty_is_followed_once_it_grows_when_writes_are_not_known(tmp_path: Path) -> None:
    """Without write events (`modified` None: inotify off, an overflow, or a node so busy they are turned
    off) the pass looks at the size of each file the last scan found empty, and follows one that grew a
    complete first line, from its first byte, with no rescan; one replaced since that scan stays awaited
    (its replacement's entry events bring the scan that follows it)."""
    path, settings, publisher, collector = start(tmp_path)
    path.touch()
    other = path.with_name("1.log")
    other.touch()
    collector.apply_scan(discover(settings.paths, []))
    assert len(collector.first_line_awaited) == 2 and not collector.files
    collector.follow_awaited(None)  # nothing grew
    assert len(collector.first_line_awaited) == 2
    with open(path, "ab") as handle:
        handle.write(TIME + b" stdout F no newline yet")
    collector.follow_awaited(None)  # grew, but holds no complete line: still awaited
    assert len(collector.first_line_awaited) == 2 and not collector.files
    with open(path, "ab") as handle:
        handle.write(b"\n")
    replacement = other.with_name("1.log.new")
    write(replacement, 0, 2)
    os.rename(replacement, other)  # another inode at the awaited path
    collector.follow_awaited(None)
    assert [t.path for t in collector.files.values()] == [path]
    assert list(collector.first_line_awaited) == [os.path.realpath(other)]
    await collector.pump()
    assert [entry[1] for chunk in publisher.chunks for entry in chunk.entries()] == ["no newline yet"]
    collector.apply_scan(discover(settings.paths, []))  # the scan its entry events bring follows the new one
    assert {t.path for t in collector.files.values()} == {path, other} and not collector.waiting_for_first_line
    collector.close()
