"""inotify through ctypes wakes the loop when a watched directory gains or loses a file."""

from __future__ import annotations

import asyncio
import errno
import os
from pathlib import Path
from typing import Any

import pytest

from collectors.files.inotify import DirectoryWatcher


async def test_create_and_rename_wake_the_watcher(tmp_path: Path) -> None:
    watcher = DirectoryWatcher()
    assert watcher.active
    try:
        watcher.watch({str(tmp_path)})
        (tmp_path / "0.log").write_bytes(b"x\n")
        await asyncio.wait_for(watcher.changed.wait(), 2)
        watcher.changed.clear()
        os.rename(tmp_path / "0.log", tmp_path / "0.log.1")
        await asyncio.wait_for(watcher.changed.wait(), 2)
        watcher.changed.clear()
        watcher.watch(set())  # forgotten directories no longer wake it (after the IN_IGNORED event)
        await asyncio.sleep(0.1)
        watcher.changed.clear()
        (tmp_path / "other.log").write_bytes(b"y\n")
        await asyncio.sleep(0.2)
        assert not watcher.changed.is_set()
    finally:
        watcher.close()


async def test_writes_and_truncations_are_reported_by_real_path_and_never_wake_the_loop(tmp_path: Path) -> None:
    """Writes are read by take_modified only (their own inotify instance, not in the event loop): they never
    wake the loop nor ask for a rescan; an entry change wakes it at once."""
    logs = tmp_path / "logs"
    logs.mkdir()
    (tmp_path / "link").symlink_to(logs)  # watched under another spelling: reported by the real path
    written, truncated, quiet = logs / "a.log", logs / "b.log", logs / "c.log"
    for path in (written, truncated, quiet):
        path.write_bytes(b"x\n")
    watcher = DirectoryWatcher()
    woken: list[float] = []
    drain_entries = watcher._drain_entries

    def counted() -> None:
        woken.append(asyncio.get_running_loop().time())
        drain_entries()

    loop = asyncio.get_running_loop()
    assert watcher._entries is not None
    loop.remove_reader(watcher._entries.fd)
    loop.add_reader(watcher._entries.fd, counted)
    try:
        watcher.watch({str(tmp_path / "link")})
        assert watcher.take_modified() == set()
        with open(written, "ab") as handle:
            handle.write(b"more\n")
        os.truncate(truncated, 0)
        await asyncio.sleep(0.2)  # the loop runs: nothing wakes it for the writes
        assert woken == [] and not watcher.changed.is_set()  # writes do not trigger a rescan
        assert watcher.take_modified() == {os.path.realpath(written), os.path.realpath(truncated)}
        assert watcher.take_modified() == set()

        with open(written, "ab") as handle:
            handle.write(b"more\n")
        (logs / "new.log").write_bytes(b"y\n")  # an entry change wakes the loop
        await asyncio.wait_for(watcher.changed.wait(), 10)
        assert woken
        assert watcher.take_modified() == {os.path.realpath(written), os.path.realpath(logs / "new.log")}
    finally:
        watcher.close()
    assert watcher.take_modified() is None  # inactive: every file must be looked at


async def test_without_write_events_writes_go_unreported_and_entries_still_wake(tmp_path: Path) -> None:
    """take_writes(False): take_modified answers None (look at every file) and writes raise no event; an
    entry change still does. take_writes(True): None once more (writes made meanwhile are unknown), then
    the written files again."""
    logs = tmp_path / "logs"
    logs.mkdir()
    written = logs / "a.log"
    written.write_bytes(b"x\n")
    watcher = DirectoryWatcher()
    try:
        watcher.watch({str(logs)})
        assert watcher.takes_writes and watcher.take_modified() == set()
        watcher.take_writes(False)
        assert not watcher.takes_writes
        with open(written, "ab") as handle:
            handle.write(b"more\n")
        assert watcher.take_modified() is None
        assert watcher._writes is not None and watcher._writes.watched == {}  # no write watches meanwhile
        assert watcher._modified == set() and not watcher.changed.is_set()  # the write raised no event
        (logs / "new.log").write_bytes(b"y\n")
        await asyncio.wait_for(watcher.changed.wait(), 10)
        assert watcher.take_modified() is None
        watcher.take_writes(True)
        assert watcher.takes_writes
        with open(written, "ab") as handle:
            handle.write(b"more\n")
        assert watcher.take_modified() is None  # the first answer after turning them on
        with open(written, "ab") as handle:
            handle.write(b"more\n")
        assert watcher.take_modified() == {os.path.realpath(written)}
    finally:
        watcher.close()


async def test_a_queue_overflow_or_an_unwatchable_directory_means_look_at_every_file(tmp_path: Path) -> None:
    limit = int(Path("/proc/sys/fs/inotify/max_queued_events").read_text())
    if limit > 200_000:
        pytest.skip(f"max_queued_events is {limit}: overflowing it takes too long")
    files = [os.open(tmp_path / f"{n}.log", os.O_WRONLY | os.O_CREAT) for n in range(2)]
    watcher = DirectoryWatcher()
    try:
        watcher.watch({str(tmp_path)})
        assert watcher.take_modified() == set()
        for n in range(limit + 10):  # alternating files: the kernel merges no event into the last one
            os.write(files[n % 2], b"x\n")
        assert watcher.take_modified() is None
        # writes lost: this pass looks at every file; no rescan (entries have their own queue), no error
        assert watcher.errors == 0 and not watcher.changed.is_set()
        assert watcher.take_modified() == set()  # reported once

        plain = tmp_path / "plain"
        plain.write_bytes(b"")
        watcher.watch({str(tmp_path), str(plain / "sub")})  # ENOTDIR: an error, unlike a vanished directory
        assert watcher.take_modified() is None and watcher.errors == 1
        watcher.watch({str(tmp_path)})
        assert watcher.take_modified() == set()
    finally:
        watcher.close()
        for fd in files:
            os.close(fd)


async def test_a_directory_whose_write_watch_failed_is_tried_again_and_its_missed_writes_are_not_trusted(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each directory takes a watch in each instance. One whose write watch failed (the watch limit) is
    watched for entries but not complete: every file is looked at until a later `watch` adds its write
    watch, and the first answer after that is None too (its writes went unreported meanwhile)."""
    logs = tmp_path / "logs"
    logs.mkdir()
    written = logs / "a.log"
    written.write_bytes(b"x\n")
    watcher = DirectoryWatcher()
    assert watcher._writes is not None
    add = type(watcher._writes).add
    refused: list[str] = []

    def limited(watches: Any, directory: str) -> int:
        if watches is watcher._writes and not refused:
            refused.append(directory)
            return errno.ENOSPC
        return add(watches, directory)

    monkeypatch.setattr(type(watcher._writes), "add", limited)
    try:
        watcher.watch({str(logs)})
        assert refused == [str(logs)] and watcher.errors == 1 and not watcher.complete
        assert watcher._entries is not None and str(logs) in watcher._entries.watched
        assert watcher.take_modified() is None
        with open(written, "ab") as handle:
            handle.write(b"more\n")
        watcher.watch({str(logs)})  # tried again: watched for writes now
        assert watcher.complete and str(logs) in watcher._writes.watched
        assert watcher.take_modified() is None  # the write above was not reported
        with open(written, "ab") as handle:
            handle.write(b"more\n")
        assert watcher.take_modified() == {os.path.realpath(written)}
        assert watcher.errors == 1
    finally:
        watcher.close()
