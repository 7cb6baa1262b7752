"""The collector process stays light: importing its entry point loads no faust (nor mode, agents, tables).
Its read loop looks only at the files inotify saw written, and at every file when inotify is missing.

The read-loop tests publish through a stand-in (test_collector.FakePublisher): what is under test is
which real files the loop reads, not Kafka."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import time
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

from collectors.files import discovery, service
from collectors.files.collector import CHECKPOINT_REFRESH, FileCollector
from collectors.files.discovery import ListingCache, discover
from collectors.files.inotify import DirectoryWatcher
from collectors.files.metrics import FileMetrics
from collectors.files.service import _follow
from core.settings import load_settings
from kafka_io.publisher import ChunkAck
from tests.support.polling import wait_for
from tests.unit.collectors.files.test_collector import FakePublisher, record_looks, start, write


def test_importing_the_file_collector_loads_no_faust() -> None:
    result = subprocess.run([sys.executable, "-X", "importtime", "-c", "import collectors.files.service"],
                            capture_output=True, text=True, check=True, cwd=Path(__file__).resolve().parents[4])
    modules = {row.split("|")[-1].strip().split(".")[0] for row in result.stderr.splitlines() if "|" in row}
    assert "collectors" in modules and "aiokafka" in modules  # the output really lists what was imported
    assert not modules & {"faust", "mode", "agents", "tables", "sinks"}


async def follow_for_a_while(tmp_path: Path, watcher: DirectoryWatcher, monkeypatch: Any) -> tuple[list[str], str]:
    """Run the read loop over three pod logs (rescans and full passes an hour apart), append to the
    last one after the first reads, and return the paths it looked at after that write and the last's path."""
    paths = [tmp_path / "pods" / f"ns_pod-{n}_uid" / "app" / "0.log" for n in range(3)]
    for path in paths:
        path.parent.mkdir(parents=True)
        write(path, 0, 1)
    settings = load_settings(environ={}, collector={"paths": [str(tmp_path / "pods" / "*" / "*" / "*.log")],
                                                    "checkpoint_dir": str(tmp_path / "ckpt"),
                                                    "rescan_interval": "1h"})
    publisher = FakePublisher()
    collector = FileCollector(settings.collector, publisher, FileMetrics())
    looked_at = record_looks(monkeypatch)
    stop = asyncio.Event()
    task = asyncio.create_task(_follow(collector, watcher, settings, stop))
    try:
        await wait_for(lambda: len(publisher.chunks) == 3, what="the first line of each file published",
                       timeout=30, last_seen=lambda: len(publisher.chunks))
        await asyncio.sleep(0)
        looked_at.clear()
        write(paths[2], 1, 1)
        await wait_for(lambda: any(chunk.entries()[-1][0] > 0 for chunk in publisher.chunks), timeout=30,
                       what="the appended line published")
    finally:
        stop.set()
        await task
        collector.close()
    return looked_at, str(paths[2])


async def test_with_inotify_a_write_makes_the_loop_look_at_that_file_only(tmp_path: Path, monkeypatch: Any) -> None:
    watcher = DirectoryWatcher()
    try:
        looked_at, written = await follow_for_a_while(tmp_path, watcher, monkeypatch)
    finally:
        watcher.close()
    assert written in looked_at and set(looked_at) == {written}


async def test_without_inotify_every_file_is_still_read(tmp_path: Path, monkeypatch: Any) -> None:
    watcher = DirectoryWatcher()
    watcher.close()  # as on a system without inotify
    looked_at, written = await follow_for_a_while(tmp_path, watcher, monkeypatch)
    assert written in looked_at and len(set(looked_at)) == 3  # every pass looks at every file


async def run_loop(tmp_path: Path, watcher: DirectoryWatcher, monkeypatch: Any, collector_cfg: dict[str, Any],
                   during: Any, after_scan: Callable[[Any], None] | None = None, scans: list[float] | None = None,
                   ) -> tuple[FakePublisher, list[float], list[int]]:
    """Run the read loop over one pod directory under `tmp_path` while `during(publisher)` runs; the
    publisher, the times of the rescans and the lines read by each pass after which `flush` was called.
    `after_scan` gets each scan's result on the scan's thread, before the loop sees it; `scans` is the list
    the rescan times go to as they happen (for `during` to wait on)."""
    settings = load_settings(environ={}, collector={"paths": [str(tmp_path / "pods" / "*" / "*" / "*.log")],
                                                    "checkpoint_dir": str(tmp_path / "ckpt"), **collector_cfg})
    publisher = FakePublisher()
    collector = FileCollector(settings.collector, publisher, FileMetrics())
    scans = [] if scans is None else scans

    def scan(*args: Any) -> Any:
        scans.append(time.monotonic())
        found = discover(*args)
        if after_scan is not None:
            after_scan(found)
        return found

    monkeypatch.setattr(service, "discover", scan)
    flushed: list[int] = []
    stop = asyncio.Event()
    task = asyncio.create_task(_follow(collector, watcher, settings, stop, None,
                                       lambda: flushed.append(sum(len(c.entries()) for c in publisher.chunks))))
    try:
        await during(publisher)
    finally:
        stop.set()
        await task
        collector.close()
    return publisher, scans, flushed


async def run_with_inotify(tmp_path: Path, monkeypatch: Any, collector_cfg: dict[str, Any], during: Any,
                           after_scan: Callable[[Any], None] | None = None, scans: list[float] | None = None,
                           ) -> tuple[FakePublisher, list[float], list[int]]:
    """`run_loop` with a real inotify watcher, closed afterwards."""
    watcher = DirectoryWatcher()
    try:
        return await run_loop(tmp_path, watcher, monkeypatch, collector_cfg, during, after_scan, scans)
    finally:
        watcher.close()


async def test_a_collector_started_just_after_boot_scans_at_once(tmp_path: Path, monkeypatch: Any) -> None:
    """The monotonic clock starts near zero at boot: a loop that took "never scanned" for time 0 put off
    its first scan until the machine had been up for a rescan interval (an hour here; the three tests
    above timed out on a CI machine booted minutes before)."""
    booted = time.monotonic() - 5.0  # as if the machine had been up five seconds
    monkeypatch.setattr(service, "time", types.SimpleNamespace(monotonic=lambda: time.monotonic() - booted))
    pod = tmp_path / "pods" / "ns_pod_uid" / "app"
    pod.mkdir(parents=True)
    write(pod / "0.log", 0, 2)

    scans: list[float] = []

    async def first_lines_and_scans(publisher: FakePublisher) -> None:
        # the first scan, and the one after its directories were watched (a file made in between raised no
        # event): the second comes after the first lines are published, so it is waited for too
        await wait_for(lambda: len(publisher.chunks) == 1 and len(scans) == 2,
                       what="the first lines published and the scan after the watch", timeout=5,
                       last_seen=lambda: (len(publisher.chunks), len(scans)))

    cfg = {"rescan_interval": "1h", "inotify_rescan_interval": "1h", "checkpoint_interval": "1h"}
    publisher, _, _ = await run_with_inotify(tmp_path, monkeypatch, cfg, first_lines_and_scans, scans=scans)
    assert len(scans) == 2 and [line[1] for line in publisher.chunks[0].entries()] == ["line 0", "line 1"]


async def test_with_inotify_the_rescan_waits_for_entries_or_the_inotify_interval(tmp_path: Path,
                                                                                 monkeypatch: Any) -> None:
    """No entry changes, no rescan: globbing a node's thousand pods every second was a quarter of the CPU.
    A new file is still found at once (its directory's event), and without inotify the rescan is periodic."""
    pod = tmp_path / "pods" / "ns_pod_uid" / "app"
    pod.mkdir(parents=True)
    write(pod / "0.log", 0, 1)

    written_at: list[float] = []
    scans: list[float] = []

    async def new_file_later(publisher: FakePublisher) -> None:
        await wait_for(lambda: len(scans) == 2, what="the scan after the watch", timeout=10)
        await asyncio.sleep(1.0)
        written_at.append(time.monotonic())
        write(pod / "1.log", 0, 1)
        await wait_for(lambda: len(publisher.chunks) == 2, what="the new file's line published", timeout=10)

    cfg = {"rescan_interval": "0.1s", "inotify_rescan_interval": "1h", "flush_interval": "0.05s"}
    await run_with_inotify(tmp_path, monkeypatch, cfg, new_file_later, scans=scans)
    # the first scan, the one after its directories were watched, the new file's (a rename may be reported
    # in two reads); none in the second before the write, when a periodic rescan would have run ten times
    assert 3 <= len(scans) <= 4
    assert all(at >= written_at[0] for at in scans[2:])
    closed = DirectoryWatcher()
    closed.close()  # as on a system without inotify
    _, scans, _ = await run_loop(tmp_path / "again", closed, monkeypatch, cfg, lambda p: asyncio.sleep(1.0))
    assert len(scans) >= 5  # every rescan_interval


async def test_a_pattern_root_not_there_yet_is_rescanned_at_the_short_interval(tmp_path: Path,
                                                                               monkeypatch: Any) -> None:
    """A node before its first pod has no /var/log/pods: nothing to watch, so no event would tell its
    creation. Until the root is there the rescan runs every rescan_interval, not the inotify interval."""

    async def pods_later(publisher: FakePublisher) -> None:
        await asyncio.sleep(0.6)
        pod = tmp_path / "pods" / "ns_pod_uid" / "app"
        pod.mkdir(parents=True)
        write(pod / "0.log", 0, 1)
        await wait_for(lambda: len(publisher.chunks) == 1, what="the first pod's line published", timeout=5)

    _, scans, _ = await run_with_inotify(tmp_path, monkeypatch, {
        "rescan_interval": "0.1s", "inotify_rescan_interval": "1h", "flush_interval": "0.05s"}, pods_later)
    assert len(scans) >= 4  # every rescan_interval while the root is missing, then the one that found the file


async def test_a_file_made_between_a_scan_and_its_watch_is_found(tmp_path: Path, monkeypatch: Any) -> None:
    """A directory is watched only after the scan that found it listed it, so a file made in it in
    between raises no event: seen under load, the first pod's line waited for the safety rescan
    (`inotify_rescan_interval`, here an hour). A scan that watches a new directory is followed by another."""
    pod = tmp_path / "pods" / "ns_pod_uid" / "app"
    pod.mkdir(parents=True)
    files_found: list[int] = []

    def write_after_the_first_listing(scan: Any) -> None:
        files_found.append(len(scan.files))
        if len(files_found) == 1:  # after the listing, before the watch: the race, made certain
            write(pod / "0.log", 0, 1)

    async def published(publisher: FakePublisher) -> None:
        await wait_for(lambda: len(publisher.chunks) == 1, what="the line of the file made before the watch",
                       timeout=30)

    await run_with_inotify(tmp_path, monkeypatch, {"rescan_interval": "0.1s", "inotify_rescan_interval": "1h",
                                                   "flush_interval": "0.05s"}, published, write_after_the_first_listing)
    assert files_found[:2] == [0, 1]  # the first scan saw no file; the one after its watch found it


async def test_a_file_empty_at_its_scan_is_followed_once_written(tmp_path: Path, monkeypatch: Any) -> None:
    """A file without a complete line is not followed yet; the pass after its first write follows it,
    with no rescan (the scan found it already), not after the long inotify interval."""
    pod = tmp_path / "pods" / "ns_pod_uid" / "app"
    pod.mkdir(parents=True)
    (pod / "0.log").touch()

    scans: list[float] = []

    async def write_later(publisher: FakePublisher) -> None:
        await wait_for(lambda: len(scans) == 2, what="the scan after the watch", timeout=5)
        await asyncio.sleep(0.5)
        write(pod / "0.log", 0, 1)
        await wait_for(lambda: len(publisher.chunks) == 1, what="the line published", timeout=5)

    await run_with_inotify(tmp_path, monkeypatch, {
        "rescan_interval": "0.2s", "inotify_rescan_interval": "1h", "flush_interval": "0.05s"}, write_later,
        scans=scans)
    assert len(scans) == 2  # the first, the one after its directories were watched; none for the write



async def test_the_first_write_of_a_file_awaited_since_the_last_scan_gets_it_followed_at_once_without_a_scan(
        tmp_path: Path, monkeypatch: Any) -> None:
    """A file the last scan found without a complete line (the new `0.log` a rotation left) is known and
    matched: the pass after its first write follows it, not after `rescan_interval` (the gate for writes
    to files the globs may not match), and with no scan of every directory. A pod writing a few lines a
    second had its first lines after each rotation wait up to that second; later, each rotation cost two
    scans of the whole tree (on 1,000 pods, ~19 ms of CPU and ~4,200 stat calls each)."""
    pod = tmp_path / "pods" / "ns_pod_uid" / "app"
    pod.mkdir(parents=True)
    write(pod / "0.log", 0, 2)
    scans: list[float] = []
    before_write: list[int] = []
    awaited_after_scans: list[set[str]] = []  # what the collector awaits after each scan it applied
    apply_scan = FileCollector.apply_scan

    def applied(collector: FileCollector, scan: Any) -> None:
        apply_scan(collector, scan)
        awaited_after_scans.append(set(collector.first_line_awaited))

    monkeypatch.setattr(FileCollector, "apply_scan", applied)
    new_file = os.path.realpath(pod / "0.log")

    async def rotate_then_write(publisher: FakePublisher) -> None:
        await wait_for(lambda: len(publisher.chunks) == 1, what="the first lines published", timeout=5)
        os.rename(pod / "0.log", pod / "0.log.20261204-120000")
        (pod / "0.log").touch()
        await wait_for(lambda: any(new_file in awaited for awaited in awaited_after_scans), timeout=10,
                       what="a scan after the rename that found the new file without a complete line")
        before_write.append(len(scans))
        write(pod / "0.log", 0, 1)
        await wait_for(lambda: len(publisher.chunks) == 2, what="the new file's first line published", timeout=5)

    publisher, _, _ = await run_with_inotify(tmp_path, monkeypatch, {
        "rescan_interval": "10s", "inotify_rescan_interval": "1h", "rotated_grace": "1h",
        "flush_interval": "0.05s", "linger": "0.05s"}, rotate_then_write, scans=scans)
    assert [line[1] for line in publisher.chunks[1].entries()] == ["line 0"]
    assert before_write == [len(scans)]  # no scan for the write


async def test_rescans_reuse_unchanged_listings_and_still_find_a_rotation_and_a_new_pod(
        tmp_path: Path, monkeypatch: Any) -> None:
    """The loop keeps its scans' listings (ListingCache; kept here once a directory had not changed for
    0.1 s instead of 2 s, far coarser than this file system's timestamps): rescans of an unchanged tree
    list nothing again, and a rename rotation in a kept container directory and a new pod directory are
    still found and read, every line once."""
    monkeypatch.setattr(ListingCache, "SETTLED_NS", 100_000_000)
    listed: list[str] = []
    scandir = os.scandir
    monkeypatch.setattr(discovery.os, "scandir", lambda path: listed.append(path) or scandir(path))
    listed_by_scan: list[int] = []  # directories each scan listed (ListingCache.keep ends a scan)
    keep = ListingCache.keep

    def counted_keep(cache: ListingCache, listings: Any) -> None:
        listed_by_scan.append(len(listed))
        listed.clear()
        keep(cache, listings)

    monkeypatch.setattr(ListingCache, "keep", counted_keep)
    pod = tmp_path / "pods" / "ns_a_uid" / "app"
    pod.mkdir(parents=True)
    write(pod / "0.log", 0, 2)
    new_pod = tmp_path / "pods" / "ns_b_uid" / "app"

    def published(publisher: FakePublisher) -> list[tuple[str, int]]:
        return [(chunk.stream_id, line[0]) for chunk in publisher.chunks for line in chunk.entries()]

    async def quiet_then_rotate(publisher: FakePublisher) -> None:
        await wait_for(lambda: len(published(publisher)) == 2, what="the first lines published", timeout=5)
        await wait_for(lambda: 0 in listed_by_scan, timeout=10, last_seen=lambda: listed_by_scan,
                       what="a rescan (every 0.2 s) that listed no directory again")
        os.rename(pod / "0.log", pod / "0.log.1")
        write(pod / "0.log", 0, 1)
        new_pod.mkdir(parents=True)
        write(new_pod / "0.log", 0, 1)
        await wait_for(lambda: len(published(publisher)) >= 4, timeout=5,
                       what="the new file's and the new pod's lines published", last_seen=lambda: published(publisher))
        await asyncio.sleep(0.5)  # (a line read twice would show meanwhile)

    publisher, _, _ = await run_with_inotify(tmp_path, monkeypatch, {
        "rescan_interval": "0.2s", "inotify_rescan_interval": "0.2s", "flush_interval": "0.05s",
        "linger": "0.05s"}, quiet_then_rotate)
    lines = published(publisher)
    assert len(lines) == 4 and len(set(lines)) == 4, lines
    assert len({stream for stream, _ in lines}) == 3  # the first file, the new 0.log, the new pod's


async def test_a_copytruncate_copy_is_read_without_waiting_for_the_safety_rescan(tmp_path: Path,
                                                                                 monkeypatch: Any) -> None:
    """The copy (`0.log.1`) is created, so scanned, before its original is truncated: that scan cannot
    take it as a copy yet. The truncation, a mere write to inotify, brings the scan that does: the
    lines written just before the copy (read from it, under the original's stream) do not wait an hour."""
    pod = tmp_path / "pods" / "ns_pod_uid" / "app"
    pod.mkdir(parents=True)
    write(pod / "0.log", 0, 3)

    async def copytruncate(publisher: FakePublisher) -> None:
        await wait_for(lambda: len(publisher.chunks) == 1, what="the first lines published", timeout=5)
        write(pod / "0.log", 3, 1)  # the loop sleeps through a write: the copy holds this line unread
        shutil.copyfile(pod / "0.log", pod / "0.log.1")
        os.truncate(pod / "0.log", 0)
        await wait_for(lambda: len(publisher.chunks) == 2, what="the copy's unread line published", timeout=5)

    publisher, _, _ = await run_with_inotify(tmp_path, monkeypatch, {
        "rescan_interval": "1h", "inotify_rescan_interval": "1h", "flush_interval": "0.5s"}, copytruncate)
    first, copied = publisher.chunks
    assert copied.stream_id == first.stream_id and copied.source["path"].endswith("0.log.1")
    size = (pod / "0.log.1").stat().st_size  # four lines of one length
    assert [(line[0], line[1]) for line in copied.entries()] == [(size // 4 * 3, "line 3")]


async def test_a_pass_that_read_lines_sends_them_when_the_loop_waits(tmp_path: Path, monkeypatch: Any) -> None:
    """The loop reads once per linger and then flushes the batcher: a line waits about one linger, not a
    pass interval and then a linger; an idle pass flushes nothing."""
    pod = tmp_path / "pods" / "ns_pod_uid" / "app"
    pod.mkdir(parents=True)
    write(pod / "0.log", 0, 3)

    async def write_twice(publisher: FakePublisher) -> None:
        await wait_for(lambda: len(publisher.chunks) == 1, what="the first lines published", timeout=5)
        await asyncio.sleep(1.0)  # idle passes
        write(pod / "0.log", 3, 2)
        await wait_for(lambda: len(publisher.chunks) == 2, what="the later lines published", timeout=5)
        await asyncio.sleep(0.3)

    publisher, _, flushed = await run_with_inotify(tmp_path, monkeypatch, {"linger": "0.1s", "flush_interval": "0.1s"},
                                                   write_twice)
    assert flushed == [3, 5]
    assert [len(chunk.entries()) for chunk in publisher.chunks] == [3, 2]


async def test_an_unchanged_checkpoint_is_not_written_again(tmp_path: Path, monkeypatch: Any) -> None:
    path, settings, publisher, collector = start(tmp_path)
    write(path, 0, 2)
    first = path.stat().st_size
    collector.apply_scan(discover(settings.paths, []))
    await collector.pump()
    publisher.acks[0].set_result(ChunkAck(0, 7))
    saves: list[int] = []
    save = collector.store.save
    monkeypatch.setattr(collector.store, "save",
                        lambda entries: saves.append(int(str(next(iter(entries.values()))["offset"]))) or save(entries))
    await collector.save_checkpoint(only_if_changed=True)  # the ack moved the checkpoint
    await collector.save_checkpoint(only_if_changed=True)
    await collector.save_checkpoint()  # a save that is asked for is always written
    write(path, 2, 1)
    await collector.pump()
    publisher.acks[1].set_result(ChunkAck(0, 8))
    await collector.save_checkpoint(only_if_changed=True)
    assert saves == [first, first, path.stat().st_size]
    monkeypatch.setattr(collector, "saved_at", collector.saved_at - CHECKPOINT_REFRESH)
    await collector.save_checkpoint(only_if_changed=True)  # unchanged, but the file's age tells when we ran
    assert len(saves) == 4
    collector.close()


async def test_with_every_file_written_each_pass_write_events_stop_and_no_line_waits_on_them(
        tmp_path: Path) -> None:
    """40 files written between every two passes: the loop stops taking inotify's write events (the gauge
    goes to 0) and looks at every file each pass; a file created empty meanwhile is followed once written,
    within rescan_interval, though its first line raises no event; once all but two files are quiet the
    loop takes write events again. Every line written is published."""
    pods = tmp_path / "pods"
    paths = [pods / f"ns_pod-{n}_uid" / "app" / "0.log" for n in range(40)]
    for path in paths:
        path.parent.mkdir(parents=True)
        write(path, 0, 1)
    settings = load_settings(environ={}, collector={
        "paths": [str(pods / "*" / "*" / "*.log")], "checkpoint_dir": str(tmp_path / "ckpt"),
        "rescan_interval": "0.2s", "inotify_rescan_interval": "1h", "flush_interval": "0.05s", "linger": "0.05s"})
    publisher = FakePublisher()
    metrics = FileMetrics()
    collector = FileCollector(settings.collector, publisher, metrics)
    watcher = DirectoryWatcher()
    written = dict.fromkeys(paths, 1)
    writing = list(paths)

    async def writer() -> None:
        while True:
            for path in writing:
                write(path, written[path], 1)
                written[path] += 1
            await asyncio.sleep(0.02)

    def events_taken() -> float:
        return metrics.value("logweave_file_collector_write_events")

    def published() -> int:
        return sum(len(chunk.entries()) for chunk in publisher.chunks)

    stop = asyncio.Event()
    task = asyncio.create_task(_follow(collector, watcher, settings, stop))
    feeding = asyncio.create_task(writer())
    try:
        assert events_taken() == 1
        await wait_for(lambda: events_taken() == 0, timeout=30, what="write events turned off",
                       last_seen=lambda: (collector.fresh_in_pass, len(collector.files)))
        assert not watcher.takes_writes
        late = pods / "ns_late_uid" / "app" / "0.log"
        late.parent.mkdir(parents=True)
        late.touch()  # an entry event: scanned, but no complete line to follow yet
        await wait_for(lambda: collector.waiting_for_first_line, timeout=10, what="the empty file scanned")
        write(late, 0, 1)  # no write event: a pass sees it grew (no rescan)
        await wait_for(lambda: any(t.path == late for t in collector.files.values()), timeout=10,
                       what="the late file followed without write events")
        assert events_taken() == 0
        writing[2:] = []
        await wait_for(lambda: events_taken() == 1, timeout=30, what="write events taken again",
                       last_seen=lambda: (collector.fresh_in_pass, len(collector.files)))
        assert watcher.takes_writes
        feeding.cancel()
        total = sum(written.values()) + 1
        await wait_for(lambda: published() == total, timeout=30, what=f"all {total} lines published",
                       last_seen=published)
    finally:
        feeding.cancel()
        stop.set()
        await task
        collector.close()
        watcher.close()


async def test_a_pass_that_read_every_file_to_its_end_pauses_and_a_backlog_does_not(
        tmp_path: Path, monkeypatch: Any) -> None:
    """A pass that read a record's worth (here chunk_bytes is 1 KiB) but left nothing unread ends like any
    other: its records are sent and the loop pauses; a file holding more than a pass reads of one file
    (PASS_BYTES) is read on at once, before any send. Told apart by the order of passes and sends, not
    by timing."""
    from collectors.files.collector import PASS_BYTES

    pod = tmp_path / "pods" / "ns_pod_uid" / "app"
    pod.mkdir(parents=True)
    steps: list[str] = []
    pump = FileCollector.pump

    async def recorded_pump(self: FileCollector, modified: set[str] | None = None) -> int:
        read = await pump(self, modified)
        if read:
            steps.append("backlog" if self.backlog_in_pass else "read")
        return read

    monkeypatch.setattr(FileCollector, "pump", recorded_pump)
    monkeypatch.setattr(service, "discover", discover)
    backlog_lines = PASS_BYTES // 30  # lines of 45-50 bytes: more than a pass reads of one file
    settings = load_settings(environ={}, collector={
        "paths": [str(tmp_path / "pods" / "*" / "*" / "*.log")], "checkpoint_dir": str(tmp_path / "ckpt"),
        "chunk_bytes": "1KiB", "inotify_rescan_interval": "1h"})
    publisher = FakePublisher()
    collector = FileCollector(settings.collector, publisher, FileMetrics())
    watcher = DirectoryWatcher()
    stop = asyncio.Event()
    task = asyncio.create_task(_follow(collector, watcher, settings, stop, None, lambda: steps.append("send")))
    try:
        write(pod / "0.log", 0, 200)  # ~10 KiB: a record's worth, read to its end in one pass
        await wait_for(lambda: sum(len(c.entries()) for c in publisher.chunks) == 200, what="200 lines", timeout=10)
        await wait_for(lambda: "send" in steps, what="the pass's send", timeout=10)
        assert steps[:2] == ["read", "send"], steps
        steps.clear()
        write(pod / "0.log", 200, backlog_lines)
        await wait_for(lambda: sum(len(c.entries()) for c in publisher.chunks) == 200 + backlog_lines,
                       what="the backlog's lines", timeout=60)
        await wait_for(lambda: "send" in steps, what="the send after the backlog", timeout=10)
    finally:
        stop.set()
        await task
        collector.close()
        watcher.close()
    assert steps[0] == "backlog" and steps[1] != "send", steps  # read on at once, sent when read to the end
