"""The file collector's main loop: discover, follow, publish chunks, checkpoint what Kafka acked.

Files are keyed by (device, inode): a renamed (rotated) file keeps being read to its end under
its identity while the new file at the path starts fresh; a file that shrank starts a new
generation. Each file's chunks share its stream id, so they keep their order in one partition.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import signal
import time
from pathlib import Path

from app.models import RawChunk, RawLine
from app.settings import CollectorSettings, Settings
from app.topics import RAW
from collectors.files.checkpoints import FileCheckpointStore
from collectors.files.discovery import discover
from collectors.files.kube_paths import kubernetes_metadata
from collectors.files.tailer import TailedFile, fingerprint
from collectors.publisher import ChunkPublisher

log = logging.getLogger(__name__)
ROTATED_GRACE = 5.0  # seconds a rotated/deleted file stays open after its last read


class FileCollector:
    """Follows every discovered file and publishes its lines."""

    def __init__(self, settings: Settings, publisher: ChunkPublisher) -> None:
        self.settings: CollectorSettings = settings.collector
        self.publisher = publisher
        self.store = FileCheckpointStore(self.settings.checkpoint_dir)
        self.first_start = not self.store.path.exists()
        self.checkpoints = self.store.load()
        self.files: dict[tuple[int, int], TailedFile] = {}
        self.lines_published = 0
        self._last_scan = 0.0

    # -- discovery --------------------------------------------------------------------------
    def scan(self) -> None:
        current: set[tuple[int, int]] = set()
        for path in discover(self.settings.paths, self.settings.exclude, self.settings.ignore_older):
            try:
                st = os.stat(path)
            except OSError:
                continue
            key = (st.st_dev, st.st_ino)
            current.add(key)
            if key not in self.files:
                self._track(path, key)
        now = time.monotonic()
        for key, tailed in self.files.items():
            if key not in current and tailed.rotated_at is None:
                tailed.rotated_at = now  # renamed away or deleted: read to the end, then release

    def _track(self, path: Path, key: tuple[int, int]) -> None:
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError:
            return
        mark = fingerprint(fd)
        if mark is None:  # no complete first line yet: identity not stable, try again later
            os.close(fd)
            return
        saved = next((c for sid, c in self.checkpoints.items()
                      if sid.startswith(f"file:{key[0]}:{key[1]}:{mark}:")), None)
        if saved is not None:
            offset, generation = int(str(saved["offset"])), int(str(saved["generation"]))
        elif self.first_start and self.settings.read_from == "tail":
            offset, generation = os.fstat(fd).st_size, 0
        else:
            offset, generation = 0, 0
        meta = kubernetes_metadata(path)
        source = {"kind": "file", "node": self.settings.node_name, "path": str(path), **meta}
        fmt = None if self.settings.format == "auto" else self.settings.format
        self.files[key] = TailedFile(path, fd, key[0], key[1], mark, generation, offset, fmt, source,
                                     self.settings.max_line_bytes)
        log.info("following %s from offset %d", path, offset)

    # -- reading and publishing ---------------------------------------------------------------
    async def pump(self) -> int:
        """One pass over every file; returns the number of lines read."""
        total = 0
        now = time.monotonic()
        for key, tailed in list(self.files.items()):
            if tailed.check_truncation():
                log.info("%s was truncated; reading generation %d from 0", tailed.path, tailed.generation)
            read = 0
            while read < 64 * 1024 * 1024:
                lines = tailed.read_lines()
                if not lines and tailed.read_offset >= tailed.size():
                    break
                read += len(lines) + 1
                if lines:
                    await self._publish(tailed, lines)
                    total += len(lines)
            if tailed.rotated_at is not None and now - tailed.rotated_at > ROTATED_GRACE:
                tailed.close()
                del self.files[key]
        return total

    async def _publish(self, tailed: TailedFile, lines: list[RawLine]) -> None:
        size = self.settings.chunk_lines
        for start in range(0, len(lines), size):
            part = lines[start:start + size]
            resume = tailed.safe_offset if start + size >= len(lines) else lines[start + size][0]
            chunk = RawChunk(tailed.source, tailed.stream_id, time.time_ns(), part)
            ack = await self.publisher.publish(chunk)
            ack.add_done_callback(functools.partial(self._acked, sid=tailed.stream_id, offset=resume,
                                                    generation=tailed.generation, path=str(tailed.path)))
            self.lines_published += len(part)

    def _acked(self, fut: asyncio.Future[None], sid: str, offset: int, generation: int, path: str) -> None:
        if fut.cancelled() or fut.exception() is not None:
            return
        previous = self.checkpoints.get(sid)
        if previous is None or int(str(previous["offset"])) < offset:
            self.checkpoints[sid] = {"offset": offset, "generation": generation, "path": path}

    def save_checkpoint(self) -> None:
        live = {f.stream_id for f in self.files.values()}
        keep = {sid: c for sid, c in self.checkpoints.items() if sid in live}
        self.store.save(keep)

    def close(self) -> None:
        for tailed in self.files.values():
            tailed.close()
        self.files.clear()


async def run_file_collector(settings: Settings, stop: asyncio.Event | None = None) -> None:
    """Run until `stop` is set (or SIGTERM/SIGINT), then flush and save the checkpoint."""
    if stop is None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
    cfg = settings.collector
    publisher = ChunkPublisher(settings.kafka, settings.topic(RAW), cfg.buffer_bytes)
    await publisher.start()
    collector = FileCollector(settings, publisher)
    last_checkpoint = time.monotonic()
    try:
        while not stop.is_set():
            if time.monotonic() - collector._last_scan >= cfg.rescan_interval:
                collector.scan()
                collector._last_scan = time.monotonic()
            read = await collector.pump()
            if time.monotonic() - last_checkpoint >= cfg.checkpoint_interval:
                collector.save_checkpoint()
                last_checkpoint = time.monotonic()
            if not read:
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(stop.wait(), cfg.flush_interval)
    finally:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(publisher.stop(), 20)
        collector.save_checkpoint()
        collector.close()
        log.info("file collector stopped after publishing %d lines", collector.lines_published)


def main() -> None:
    from app.settings import load_settings

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    asyncio.run(run_file_collector(load_settings()))


if __name__ == "__main__":
    main()
