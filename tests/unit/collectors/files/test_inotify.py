"""inotify through ctypes wakes the loop when a watched directory gains or loses a file."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

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
