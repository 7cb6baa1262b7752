"""The file collector's main loop: discover, follow, publish chunks, checkpoint what Kafka acked.

Files are keyed by (device, inode): a renamed (rotated) file keeps being read to its end under
its identity while the new file at the path starts fresh; a file that shrank starts a new
generation. Each file's chunks share its stream id, so they keep their order in one partition.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
from collections import deque
from pathlib import Path

from app.models import RawChunk, RawLine
from app.settings import CollectorSettings, Settings
from app.topics import RAW
from collectors.files.checkpoints import FileCheckpointStore
from collectors.files.discovery import discover
from collectors.files.formats import detect_format
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
        # per stream id, in send order: (ack future, offset to resume from once it is acked)
        self.acks: dict[str, deque[tuple[asyncio.Future[None], int]]] = {}
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
        prefix = f"file:{key[0]}:{key[1]}:{mark}:"
        saved = max((c for sid, c in self.checkpoints.items() if sid.startswith(prefix)),
                    key=lambda c: int(str(c["generation"])), default=None)
        if saved is not None:
            offset, generation = int(str(saved["offset"])), int(str(saved["generation"]))
        elif self.first_start and self.settings.read_from == "tail":
            offset, generation = os.fstat(fd).st_size, 0
        else:
            offset, generation = 0, 0
        meta = kubernetes_metadata(path)
        head = os.pread(fd, 64 * 1024, 0).split(b"\n", 1)[0]
        fmt = detect_format(head) if self.settings.format == "auto" else self.settings.format
        source = {"kind": "file", "node": self.settings.node_name, "path": str(path), "format": fmt, **meta}
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
            if tailed.rotated_at is not None and now - tailed.rotated_at > ROTATED_GRACE \
                    and not self.unacked(tailed) and tailed.read_offset >= tailed.size():
                tailed.close()
                del self.files[key]
        return total

    async def _publish(self, tailed: TailedFile, lines: list[RawLine]) -> None:
        """Send `lines` as chunks bounded by chunk_lines and chunk_bytes; remember each ack in order."""
        max_lines, max_bytes = self.settings.chunk_lines, self.settings.chunk_bytes
        pending = self.acks.setdefault(tailed.stream_id, deque())
        start = 0
        while start < len(lines):
            stop, size = start, 0
            while stop < len(lines) and stop - start < max_lines and (size < max_bytes or stop == start):
                size += len(lines[stop][1]) + 48
                stop += 1
            resume = tailed.safe_offset if stop >= len(lines) else int(lines[stop][0])
            chunk = RawChunk(tailed.source, tailed.stream_id, time.time_ns(), lines[start:stop])
            pending.append((await self.publisher.publish(chunk), resume))
            self.lines_published += stop - start
            start = stop

    def settle_acks(self) -> None:
        """Advance checkpoints through the acked prefix of each stream; rewind a stream whose send failed."""
        for tailed in list(self.files.values()):
            pending = self.acks.get(tailed.stream_id)
            while pending and pending[0][0].done():
                fut, offset = pending.popleft()
                if fut.cancelled() or fut.exception() is not None:
                    restart = int(str(self.checkpoints.get(tailed.stream_id, {}).get("offset", 0)))
                    log.warning("send failed for %s; re-reading from offset %d", tailed.path, restart)
                    pending.clear()
                    tailed.rewind(restart)
                    break
                self.checkpoints[tailed.stream_id] = {"offset": offset, "generation": tailed.generation,
                                                      "path": str(tailed.path)}

    def unacked(self, tailed: TailedFile) -> bool:
        return bool(self.acks.get(tailed.stream_id))

    def save_checkpoint(self) -> None:
        self.settle_acks()
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
            collector.settle_acks()
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
