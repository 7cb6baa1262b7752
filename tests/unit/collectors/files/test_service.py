"""The collector process stays light: importing its entry point loads no faust (nor mode, agents, tables).
Its read loop looks only at the files inotify saw written, and at every file when inotify is missing.

The read-loop tests publish through a stand-in (test_collector.FakePublisher): what is under test is
which real files the loop reads, not Kafka."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path
from typing import Any

from collectors.files.collector import FileCollector
from collectors.files.inotify import DirectoryWatcher
from collectors.files.metrics import FileMetrics
from collectors.files.service import _follow
from collectors.files.tailer import TailedFile
from core.settings import load_settings
from tests.support.polling import wait_for
from tests.unit.collectors.files.test_collector import FakePublisher, write


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
    looked_at: list[str] = []
    size = TailedFile.size
    monkeypatch.setattr(TailedFile, "size", lambda self: looked_at.append(str(self.path)) or size(self))
    stop = asyncio.Event()
    task = asyncio.create_task(_follow(collector, watcher, settings, stop))
    try:
        await wait_for(lambda: len(publisher.chunks) == 3, what="the first line of each file published",
                       timeout=30, last_seen=lambda: len(publisher.chunks))
        await asyncio.sleep(0)
        looked_at.clear()
        write(paths[2], 1, 1)
        await wait_for(lambda: any(chunk.lines[-1][0] > 0 for chunk in publisher.chunks), timeout=30,
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
