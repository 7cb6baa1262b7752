"""FileCollector: the set of followed files, their reading, publishing and ack-gated checkpoints.

Files are keyed by (device, inode) and told apart by a fingerprint of their first line, never by
path. A file renamed away (kubelet's `0.log` -> `0.log.<ts>`) or deleted keeps its descriptor and
is read to its end, then released after a grace period; a file that shrank (copytruncate) starts a
new generation read from 0, and its copy is read on under the original's stream id and offsets
(recognised by content in the checkpoints, collectors/files/checkpoints.py), also after a crash. A
stream is in the checkpoint file before its first line is sent, so no line gets a second identity.
Checkpoints advance only through the prefix of chunks Kafka acked, in send order, so a crash re-sends
at most the in-flight window, with identical stream ids and positions. A send that failed after
the producer's own retries rewinds the file to its checkpoint. Chunks go through a PartitionBatcher
(kafka_io/partition_batcher.py): the new lines of many files share one record per partition, and
every file in a record gets its ack future, with the offset to resume that file at.
When the broker turns out to have lost chunks it had acknowledged (the publisher replaced its producer
after a sequence error), each file is rewound to before its first lost chunk, found among the
recently acknowledged chunks remembered with the Kafka offsets they were stored at.
A multiline record open when its file is rotated continues in the file that replaced it, with
checkpoints of both that never split it (collectors/files/rotation_joins.py).
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections import deque
from pathlib import Path

from collectors.files.checkpoints import FileCheckpointStore, copied_from, next_generation, saved_for
from collectors.files.discovery import Found, Scan
from collectors.files.formats import DETECT_LINES, detect_format
from collectors.files.kube_paths import is_pod_log, kubernetes_metadata
from collectors.files.metrics import FileMetrics
from collectors.files.rotation_joins import RotationJoins
from collectors.files.tailer import Block, TailedFile, fingerprint
from collectors.multiline import MultilineJoiner, rule_for
from core.models import RawChunk, RawLine, WireLines
from core.rule_settings import MultilineSettings
from core.settings import CollectorSettings
from kafka_io.partition_batcher import ChunkSink, ImmediateChunkSink
from kafka_io.publisher import ChunkAck

log = logging.getLogger(__name__)
Key = tuple[int, int]
InFlight = tuple["asyncio.Future[ChunkAck]", int, int, TailedFile]  # see FileCollector.acks
PASS_BYTES = 4 * 1024 * 1024  # read at most this much of one file per pass (fairness across files)
CHECKPOINT_REFRESH = 60.0  # seconds: an unchanged checkpoint file is still rewritten this often
STORED_CHUNKS = 256  # acknowledged chunks remembered per file, to re-send those a broker lost


class FileCollector:
    """Follows every discovered file and publishes its lines."""

    def __init__(self, settings: CollectorSettings, publisher: ChunkSink, metrics: FileMetrics,
                 multiline: MultilineSettings | None = None) -> None:
        self.settings = settings
        self.multiline_rules = multiline.rules if multiline is not None else []
        self.publisher = publisher
        # a sink that takes a chunk without a coroutine while it has room (PartitionBatcher): a visit's one chunk
        # is then handed over without an await, which cost about as much as the rest of handing it over
        self.immediate = publisher if isinstance(publisher, ImmediateChunkSink) else None
        self.metrics = metrics
        self.store = FileCheckpointStore(settings.checkpoint_dir)
        self.first_start = not self.store.path.exists()
        # Rotated siblings without a checkpoint are read only if rotated after the collector last ran.
        self.since = time.time() if self.first_start else self.store.path.stat().st_mtime - 2.0
        self.checkpoints = self.store.load()
        self.persisted = set(self.checkpoints)  # stream ids in the checkpoint file
        self.files: dict[Key, TailedFile] = {}
        # per stream: (ack, resume offset, lines, the file that sent them) of each chunk in flight, in send order
        self.acks: dict[str, deque[InFlight]] = {}
        self.stored: dict[str, deque[tuple[ChunkAck, int]]] = {}  # acked chunks: (where, checkpoint before it)
        self.recoveries_seen = 0
        self.finished: dict[Key, int] = {}  # rotated files read to the end (or skipped): size when decided
        self.finished_ids: dict[Key, str] = {}  # their stream ids, whose checkpoints are kept while they exist
        self.seen: set[Key] = set()
        self.joins = RotationJoins(self)  # multiline records continued in the file that replaced theirs
        # followed files by the real path they are at -> count (a file renamed away counts at its new path, a
        # deleted or moved one nowhere): a write inotify reports for a path not here is one of a file not followed
        self.real_paths: dict[str, int] = {}
        self.saved: dict[str, dict[str, object]] = {}  # what the checkpoint file holds (as this process wrote it)
        self.saved_at = -float("inf")
        self.lines_in_pass = 0  # lines read in the current pass (the lines_read counter grows once per pass)
        self.fresh_in_pass = 0  # files the last pass found new bytes in (service.py: whether to take write events)
        self.backlog_in_pass = 0  # files the last pass left unread bytes in (PASS_BYTES): read on at once
        # matching files the last scan could not follow yet (no complete first line), by real path, as that
        # scan found them: a pass follows one once it is written (`follow_awaited`), with no rescan for it
        self.first_line_awaited: dict[str, Found] = {}
        # copytruncate: a file truncated since the last scan, whose copy that scan may have left undecided
        self.truncated_since_scan = False
        self.copy_awaited_until = -float("inf")  # while a truncated file with a record open may wait for its copy

    # -- discovery --------------------------------------------------------------------------
    def apply_scan(self, scan: Scan) -> None:
        now = time.monotonic()
        self.seen = set()
        self.truncated_since_scan = False
        for found in sorted(scan.files, key=lambda f: f.rotated):  # originals before their copies
            key = (found.st.st_dev, found.st.st_ino)
            self.seen.add(key)
            tailed = self.files.get(key)
            if tailed is not None:
                if found.rotated and tailed.rotated_at is None:
                    self._rotated(tailed, now, "rename")
                    self._moved(tailed, os.path.realpath(found.path))
                continue
            if found.rotated and self.finished.get(key) == found.st.st_size:
                continue
            self._track(found, key)
        for key, tailed in self.files.items():
            if key not in self.seen and tailed.rotated_at is None:
                self._rotated(tailed, now, "delete_or_move")
                self._moved(tailed, "")
        self.first_line_awaited = {
            os.path.realpath(found.path): found for found in scan.files
            if not found.rotated and (found.st.st_dev, found.st.st_ino) not in self.files
            and (found.st.st_dev, found.st.st_ino) not in self.finished}
        self.finished = {k: v for k, v in self.finished.items() if k in self.seen}
        self.finished_ids = {k: v for k, v in self.finished_ids.items() if k in self.seen}
        self.first_start = False  # read_from applies to files present at the very first scan only
        self.metrics.files_tracked.set(len(self.files))

    def _rotated(self, tailed: TailedFile, now: float, kind: str) -> None:
        tailed.rotated_at = now  # renamed away or deleted: read to the end, then release
        self.metrics.rotations.labels(kind).inc()
        log.info("%s was rotated (%s); reading it to the end", tailed.path, kind)

    def _moved(self, tailed: TailedFile, real_path: str) -> None:
        """`tailed` is no longer at its real path (renamed to `real_path`, or gone from view: ""). Writes
        inotify reports for the old path are then another file's: the new `0.log`'s first line must get it
        followed (`follow_awaited`, or the rescan `untracked` asks for), not pass for the rotated file's."""
        self._uncount(tailed.real_path)
        tailed.real_path = real_path
        if real_path:
            self._count(real_path)

    def _count(self, real_path: str) -> None:
        self.real_paths[real_path] = self.real_paths.get(real_path, 0) + 1

    def _uncount(self, real_path: str) -> None:
        left = self.real_paths.pop(real_path, 1) - 1
        if left:
            self.real_paths[real_path] = left

    def _track(self, found: Found, key: Key) -> None:
        try:
            fd = os.open(found.path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            return
        st = os.fstat(fd)
        mark = fingerprint(fd) if (st.st_dev, st.st_ino) == key else None
        if mark is None:  # replaced meanwhile, or no complete first line yet: try again later
            os.close(fd)
            return
        saved = saved_for(self.checkpoints, key[0], key[1], mark)
        identity = ""
        copy = self._copy_of(key, mark) if found.rotated and saved is None else None
        if saved is not None:
            offset, generation = int(str(saved[1]["offset"])), int(str(saved[1]["generation"]))
        elif copy == "wait":  # a copy whose original is not truncated yet: decide at a later scan
            os.close(fd)
            return
        elif isinstance(copy, tuple):
            identity, offset, generation = copy
        elif found.rotated and st.st_ctime < self.since:
            offset, generation = -1, 0  # rotated before we last ran, and not ours: skip it
        elif self.first_start and self.settings.read_from == "tail" and not found.rotated:
            offset, generation = st.st_size, 0
        else:
            offset, generation = 0, next_generation(self.checkpoints, key[0], key[1])
        if found.rotated and (offset < 0 or offset >= st.st_size):
            self.finished[key] = st.st_size
            self.finished_ids[key] = identity or (saved[0] if saved else "")
            os.close(fd)
            return
        fmt = self.settings.format if self.settings.format != "auto" else detect_format(
            os.pread(fd, 64 * 1024, 0).split(b"\n")[:-1][:DETECT_LINES], is_pod_log(Path(found.path)))
        source = {"kind": "file", "node": self.settings.node_name, "path": found.path, "format": fmt,
                  **kubernetes_metadata(Path(found.path))}
        tailed = TailedFile(Path(found.path), fd, key[0], key[1], mark, generation, offset, fmt, source,
                            self.settings.max_line_bytes, identity=identity, real_path=os.path.realpath(found.path),
                            origin=found.origin or found.path)
        if saved is not None and "lead" in saved[1]:  # the lines a predecessor's record took (rotation_joins.py)
            tailed.lead_end = int(str(saved[1]["lead"]))
            tailed.read_offset = max(tailed.read_offset, tailed.lead_end)
        rule = rule_for(self.multiline_rules, tailed.rule_source)
        if rule is not None:
            tailed.joiner = MultilineJoiner(rule)
        if found.rotated:
            tailed.rotated_at = time.monotonic()
        self.files[key] = tailed
        self._count(tailed.real_path)
        # nothing before the start offset is ours to send: a failed send rewinds no further than this
        self.checkpoints.setdefault(tailed.stream_id, {"offset": offset, "generation": generation,
                                                       "path": found.path})
        log.info("following %s (%s) from offset %d%s", found.path, fmt, offset,
                 f" as a copy of {identity}" if identity else "")

    def _copy_of(self, key: Key, mark: str) -> tuple[str, int, int] | str | None:
        """For a rotated file holding content already read through another inode (a copytruncate copy):
        the stream it continues, from where, and its generation; "wait" while the original still holds
        that content (not truncated yet); None if it is no copy."""
        busy = {t.stream_id for t in self.files.values()}
        for tailed in self.files.values():
            if tailed.fingerprint == mark:
                return "wait"
            if tailed.previous_fingerprint == mark and tailed.previous_stream_id not in busy:
                generation = int(str(self.checkpoints.get(tailed.previous_stream_id, {}).get("generation", 0)))
                return tailed.previous_stream_id, tailed.truncated_at, generation
        return copied_from(self.checkpoints, key[0], key[1], mark, busy)

    # -- reading and publishing ---------------------------------------------------------------
    async def pump(self, modified: set[str] | None = None) -> int:
        """One pass; returns the number of bytes read. Without `modified` it looks at every file. With
        it (the real paths inotify saw written or truncated since the last pass) it reads only those,
        the files that left a backlog or were rewound, new ones, and rotated ones being finished; the
        others only get their due multiline flushes (their size, so their lag, is unchanged)."""
        total = self.lines_in_pass = self.fresh_in_pass = self.backlog_in_pass = 0
        now = time.monotonic()
        if modified is None:
            visit = list(self.files.items())
        else:  # a node's many quiet files cost one test each
            visit = [(key, tailed) for key, tailed in self.files.items()
                     if tailed.real_path in modified or tailed.needs_read or tailed.rotated_at is not None
                     or (tailed.joiner is not None and tailed.joiner.holding)]
        chunk_lines, chunk_bytes = self.settings.chunk_lines, self.settings.chunk_bytes
        for key, tailed in visit:
            if (modified is not None and not tailed.needs_read and tailed.rotated_at is None
                    and tailed.real_path not in modified):
                due = tailed.flush_due()  # multiline records idle for their flush timeout
                if due:
                    await self._publish(tailed, due)
                continue
            start = tailed.read_offset
            appended = tailed.take_appended(chunk_lines, chunk_bytes)
            if appended is None:  # anything but the usual visit
                read = await self._pump_file(key, tailed, now)
            else:  # the usual visit, in one step (a few whole common lines, or nothing): no coroutine for it
                read = tailed.read_offset - start
                tailed.needs_read = False  # the rest is _pump_file's for a file read to its end, not rotated
                if appended.count:
                    self.lines_in_pass += appended.count
                    if not self._sent_now(tailed, appended, tailed.read_offset):
                        await self._publish_wire(tailed, appended, tailed.read_offset)
                if tailed.lag_reported:  # read to its end: no lag
                    self._report_lag(tailed, 0)
            if read:
                total += read
                self.fresh_in_pass += 1
        if total:  # counted once per pass: a pass reads hundreds of files on a busy node
            self.metrics.bytes_read.inc(total)
        if self.lines_in_pass:
            self.metrics.lines_read.inc(self.lines_in_pass)
        self.metrics.files_tracked.set(len(self.files))
        return total

    async def _pump_file(self, key: Key, tailed: TailedFile, now: float) -> int:
        """Read what is new in one file (at most PASS_BYTES), flush due records, release it when done: a visit
        that TailedFile.take_appended declined (pump takes the usual one)."""
        if tailed.check_truncation():  # acks of the previous generation still count (settle_acks)
            self.metrics.rotations.labels("truncate").inc()
            log.info("%s was truncated; reading generation %d from 0", tailed.path, tailed.generation)
            self.truncated_since_scan = True  # its copy is decided at a scan, and no entry event comes now
            if tailed.awaiting_copy is not None:
                self.copy_awaited_until = tailed.awaiting_copy + self.settings.rotated_grace
        if self.joins.blocked(tailed, now):  # the file it replaced may still hand it an open record
            tailed.needs_read = True
            return 0
        start = tailed.read_offset
        truncated, bad_time, bad_prefix = tailed.lines_truncated, tailed.lines_bad_time, tailed.lines_bad_prefix
        tailed.needs_read = False
        appended = tailed.take_prefetched(self.settings.chunk_lines, self.settings.chunk_bytes)
        if appended is not None:  # the usual visit: a few whole common lines, or nothing
            at_end = True
            if appended.count:
                self.lines_in_pass += appended.count
                await self._publish_wire(tailed, appended, tailed.read_offset)
        else:
            at_end = await self._read_on(tailed, start)
        if tailed.joiner is not None:
            due = tailed.flush_due()  # multiline records idle for their flush timeout
            if due:
                await self._publish(tailed, due)
        if at_end and tailed.rotated_at is not None:
            await self.joins.extend(tailed, now)  # its open record may continue in the file that replaced it
        read = max(tailed.read_offset - start, 0)
        metrics = self.metrics
        if tailed.lines_truncated != truncated:
            metrics.lines_truncated.inc(tailed.lines_truncated - truncated)
        if tailed.lines_bad_time != bad_time:
            metrics.lines_bad_time.inc(tailed.lines_bad_time - bad_time)
        if tailed.lines_bad_prefix != bad_prefix:
            metrics.lines_bad_prefix.inc(tailed.lines_bad_prefix - bad_prefix)
        size = tailed.read_offset if at_end else tailed.size()
        lag = max(0, size - tailed.read_offset)
        if lag != tailed.lag_reported:
            self._report_lag(tailed, lag)
        if (tailed.rotated_at is not None and now - tailed.rotated_at > self.settings.rotated_grace
                and tailed.read_offset >= size and tailed.handoff is None):
            tailed.handed_over = True  # nothing continues its records any more
            unfinished = tailed.flush_pending()
            if unfinished:  # a rotated file ending in a partial line: send what there is
                await self._publish(tailed, unfinished)
            elif not self.acks.get(tailed.stream_id):
                self._release(key, tailed, size)
        return read

    def _report_lag(self, tailed: TailedFile, lag: int) -> None:
        """Set the file's lag gauge; callers set it only when it changed (a gauge per file, visited every pass)."""
        self.metrics.lag_bytes.labels(str(tailed.path)).set(lag)
        tailed.lag_reported = lag

    def watch_directories(self) -> set[str]:
        """Directories holding the followed files themselves (a symlink's target may lie elsewhere):
        their writes are reported there."""
        return {os.path.dirname(t.real_path) for t in self.files.values() if t.real_path}

    def wants_rescan(self, now: float) -> bool:
        """Whether copytruncate needs a scan that inotify's entry events do not ask for. The copy
        (`app.log.1`) is created before its original is truncated, so the scan its creation triggers
        leaves it undecided (collector._copy_of: "wait"); the truncation, seen by a read, comes as a
        mere write. So: a scan after every truncation, and while a file truncated with a multiline
        record open still waits for its copy (rotation_joins.RotationJoins.blocked, at most
        `rotated_grace`)."""
        if self.truncated_since_scan:
            return True
        return now < self.copy_awaited_until and any(t.awaiting_copy is not None for t in self.files.values())

    @property
    def waiting_for_first_line(self) -> bool:
        return bool(self.first_line_awaited)

    def follow_awaited(self, modified: set[str] | None) -> None:
        """Follow the files the last scan found without a complete first line that have one now: those
        inotify saw written (`modified`, real paths), or, when that is not known (None), those whose size
        changed since that scan (a stat each). A scan is not needed for that: such a file is known and
        matched already. (A rotation's new `0.log` used to cost a second scan of every directory once
        written, and with write events off a scan every `rescan_interval` while any file stayed empty.)
        One replaced since the scan stays awaited: its replacement's entry events bring a scan."""
        awaited = self.first_line_awaited
        if not awaited:
            return
        for real_path, found in list(awaited.items()):
            if modified is not None:
                if real_path not in modified:
                    continue
            else:
                try:
                    size = os.stat(found.path).st_size
                except OSError:
                    continue
                if size == found.st.st_size:
                    continue
            key = (found.st.st_dev, found.st.st_ino)
            if key not in self.files:
                self._track(found, key)
            if key in self.files:
                del awaited[real_path]
                self.metrics.files_tracked.set(len(self.files))

    def untracked(self, modified: set[str]) -> bool:
        """Whether a file written (real paths, as inotify reports them) is one the globs do not match, or
        one not followed that the last scan did not find: only a scan can tell whether it is to be
        followed. (A file that scan found without a complete first line is `follow_awaited`'s.)"""
        real_paths, awaited = self.real_paths, self.first_line_awaited
        return any(path not in real_paths and path not in awaited for path in modified)

    def _release(self, key: Key, tailed: TailedFile, size: int) -> None:
        tailed.close()
        del self.files[key]
        self._uncount(tailed.real_path)
        self.acks.pop(tailed.stream_id, None)
        self.stored.pop(tailed.stream_id, None)
        self.finished[key] = size
        self.finished_ids[key] = tailed.stream_id
        self.metrics.lag_bytes.remove(str(tailed.path))
        log.info("released %s after reading it to the end", tailed.path)

    def _known_in_flight(self, sid: str) -> deque[InFlight] | None:
        """The acks awaited for stream `sid` when it is already on disk, with nothing to save first (the
        usual case, answered without a coroutine); None when `_in_flight` must make it known."""
        if sid not in self.persisted or sid not in self.checkpoints:
            return None
        pending = self.acks.get(sid)
        if pending is None:
            pending = self.acks[sid] = deque()
        return pending

    async def _in_flight(self, tailed: TailedFile) -> deque[InFlight]:
        """The acks awaited for `tailed`'s stream, which is made known first (a restart must find it)."""
        sid = tailed.stream_id
        known = self._known_in_flight(sid)
        if known is not None:
            return known
        if tailed.generation and sid not in self.checkpoints:  # a restart must find this generation
            self.checkpoints[sid] = {"offset": 0, "generation": tailed.generation, "path": str(tailed.path)}
        if sid not in self.persisted:
            # A stream is on disk before its first line is sent: a collector killed right after a
            # truncation then finds the generation it published under (and its copy's content), and
            # cannot give those lines a second identity. One save covers every file tracked so far.
            await self.save_checkpoint()
        pending = self.acks.get(sid)  # after the save: it drops streams with nothing in flight
        if pending is None:
            pending = self.acks[sid] = deque()
        return pending

    async def _publish(self, tailed: TailedFile, lines: list[RawLine], end: int | None = None) -> None:
        """Send `lines` as chunks bounded by chunk_lines and chunk_bytes; remember each ack in order.
        `end` is where reading resumes after the last of them (default: the file's safe offset)."""
        max_lines, max_bytes = self.settings.chunk_lines, self.settings.chunk_bytes
        pending = await self._in_flight(tailed)
        sid = tailed.stream_id
        if len(lines) <= max_lines and sum([len(line[1]) for line in lines]) + 48 * len(lines) <= max_bytes:
            chunk = RawChunk(tailed.source, sid, time.time_ns(), lines)  # the usual case: one chunk
            pending.append((await self.publisher.publish(chunk), tailed.safe_offset if end is None else end,
                            len(lines), tailed))
            return
        start = 0
        while start < len(lines):
            stop, size = start, 0
            while stop < len(lines) and stop - start < max_lines and (size < max_bytes or stop == start):
                size += len(lines[stop][1]) + 48
                stop += 1
            resume = (tailed.safe_offset if end is None else end) if stop >= len(lines) \
                else tailed.resume_at(int(lines[stop][0]))
            chunk = RawChunk(tailed.source, sid, time.time_ns(), lines[start:stop])
            pending.append((await self.publisher.publish(chunk), resume, stop - start, tailed))
            start = stop

    async def _publish_blocks(self, tailed: TailedFile, blocks: list[Block]) -> None:
        """Send the blocks of one read (TailedFile.read_blocks) in order: an encoded block is one chunk
        (the scan bounded it), entries go through `_publish`. A chunk resumes where the next block begins."""
        for i, (lines, _) in enumerate(blocks):
            end = blocks[i + 1].resume if i + 1 < len(blocks) else tailed.safe_offset
            if isinstance(lines, list):
                self.lines_in_pass += len(lines)
                await self._publish(tailed, lines, end)
                continue
            self.lines_in_pass += lines.count
            await self._publish_wire(tailed, lines, end)

    async def _read_on(self, tailed: TailedFile, start: int) -> bool:
        """Read and publish what is new in `tailed` from `start` on, at most PASS_BYTES (a backlog is read on
        at the next pass); whether the reads reached the size the file had just now."""
        while True:
            if tailed.read_offset - start >= PASS_BYTES:
                tailed.needs_read = True  # a backlog: read on at the next pass whether written or not
                self.backlog_in_pass += 1
                return False
            before = tailed.read_offset
            if tailed.reads_wire:  # common CRI lines come already encoded, in chunk-sized blocks
                blocks = tailed.read_blocks(self.settings.chunk_lines, self.settings.chunk_bytes)
                if blocks:
                    await self._publish_blocks(tailed, blocks)
            else:
                lines = tailed.read_lines()
                if lines:
                    self.lines_in_pass += len(lines)
                    await self._publish(tailed, lines)
            if tailed.at_end or tailed.read_offset == before:
                return tailed.at_end  # read to the size the file had just now

    async def _publish_wire(self, tailed: TailedFile, lines: WireLines, end: int) -> None:
        """Send an encoded block as one chunk (the scan bounded it); reading resumes at `end` after it."""
        if self._sent_now(tailed, lines, end):
            return
        pending = await self._in_flight(tailed)
        chunk = RawChunk(tailed.source, tailed.stream_id, time.time_ns(), wire=lines)
        # waits while the batches closed before wait for the publisher (backpressure)
        pending.append((await self.publisher.publish(chunk), end, lines.count, tailed))

    def _sent_now(self, tailed: TailedFile, lines: WireLines, end: int) -> bool:
        """`_publish_wire` when it needs no wait: the stream is on disk and the sink has room (a visit's one
        chunk, handed over without a coroutine). False, with nothing sent, when `_publish_wire` must wait."""
        immediate = self.immediate
        if immediate is None or not immediate.has_room:
            return False
        sid = tailed.stream_id
        pending = self._known_in_flight(sid)
        if pending is None:
            return False
        chunk = RawChunk(tailed.source, sid, time.time_ns(), wire=lines)
        pending.append((immediate.publish_nowait(chunk, lines.size), end, lines.count, tailed))
        return True

    def settle_acks(self) -> None:
        """Advance checkpoints through the acked prefix of each stream; rewind a stream whose send failed."""
        following: dict[str, TailedFile] | None = None
        published = 0
        for sid, pending in list(self.acks.items()):  # a truncated generation's acks too (copytruncate)
            if pending and not pending[0][0].done():
                continue  # the usual case on a busy node: nothing acknowledged since the last pass
            tailed: TailedFile | None = pending[0][3] if pending else None
            if tailed is None or tailed.stream_id != sid:  # a truncated generation's: the copy continues it, if any
                if following is None:
                    following = {t.stream_id: t for t in self.files.values()}
                tailed = following.get(sid)
            entry = self.checkpoints.get(sid, {})
            offset = entry.get("offset", 0)
            if type(offset) is not int:
                offset = int(str(offset))
            moved = False
            stored: deque[tuple[ChunkAck, int]] | None = None
            while pending and pending[0][0].done():
                fut, resume, count, _ = pending.popleft()
                try:
                    ack = fut.result()
                except BaseException:  # the send failed (its error is stored in the future), or was given up
                    if moved:
                        self._advance(sid, tailed, entry, offset)
                        moved = False
                    self._send_failed(sid, tailed, offset)
                    pending.clear()
                    break
                published += count
                if stored is None:
                    stored = self.stored.get(sid)
                    if stored is None:  # not setdefault: that would build a deque for every stream every pass
                        stored = self.stored[sid] = deque(maxlen=STORED_CHUNKS)
                stored.append((ack, offset))  # the chunk, and the checkpoint before it
                offset = resume
                moved = True
            if moved:
                self._advance(sid, tailed, entry, offset)
            if not pending:
                del self.acks[sid]  # only streams with chunks in flight are kept: a pass looks at no other
        if published:
            self.metrics.lines_published.inc(published)
        self.joins.raise_floors()  # in the same save as the acknowledged joined records
        # after the acks that arrived before it: the loop may have been blocked in `publish` meanwhile
        if self.publisher.recoveries != self.recoveries_seen:
            self.recoveries_seen = self.publisher.recoveries
            self._resend_lost()

    def _advance(self, sid: str, tailed: TailedFile | None, entry: dict[str, object], offset: int) -> None:
        """The checkpoint of `sid`, after its acknowledged chunks, is `offset`."""
        self.checkpoints[sid] = tailed.checkpoint(offset) if tailed else {
            "generation": 0, "path": "", **entry, "offset": offset}

    def _send_failed(self, sid: str, tailed: TailedFile | None, restart: int) -> None:
        """Read again from the last acknowledged offset: in the file followed as `sid`, or, for a
        truncated generation, in the copy that will continue it."""
        self.metrics.send_errors.inc()
        log.warning("send failed for %s; re-reading from offset %d", tailed.path if tailed else sid, restart)
        self.publisher.discard(sid)  # its later lines not sent yet: they are read again after the rewind
        if tailed is not None:
            tailed.rewind(restart)
        for other in self.files.values():
            if other.previous_stream_id == sid:
                other.truncated_at = min(other.truncated_at, restart)

    def _resend_lost(self) -> None:
        """Rewind every file to before the first of its acknowledged chunks the broker no longer has."""
        for tailed in self.files.values():
            stored = self.stored.get(tailed.stream_id)
            lost = [before for ack, before in stored or () if self.publisher.lost(ack)]
            if not stored or not lost:
                continue
            restart = min(lost)
            if len(lost) == len(stored) == stored.maxlen:
                log.error("the broker lost all %d remembered chunks of %s; lines before offset %d may be "
                          "missing", len(lost), tailed.path, restart)
            log.warning("the broker lost %d acknowledged chunks of %s; re-reading from offset %d",
                        len(lost), tailed.path, restart)
            self.acks.pop(tailed.stream_id, None)
            self.publisher.discard(tailed.stream_id)
            stored.clear()
            tailed.rewind(restart)  # never before the lines a predecessor's record took
            restart = tailed.read_offset
            self.checkpoints[tailed.stream_id] = tailed.checkpoint(restart)

    def snapshot(self) -> dict[str, dict[str, object]]:
        """Checkpoints worth keeping: followed files, and rotated files still on disk (read or skipped)."""
        self.settle_acks()
        live = {f.stream_id for f in self.files.values()} | {f.previous_stream_id for f in self.files.values()}
        live |= set(self.finished_ids.values()) | {sid for sid, pending in self.acks.items() if pending}
        keep_prefix = {f"file:{d}:{i}:" for d, i in self.seen - set(self.files)}
        return {sid: c for sid, c in self.checkpoints.items()
                if sid in live or sid.rsplit(":", 2)[0] + ":" in keep_prefix}

    async def save_checkpoint(self, only_if_changed: bool = False) -> None:
        """Write the checkpoints. `only_if_changed` (the periodic save) skips a write that would store
        what the file holds already, unless the file is CHECKPOINT_REFRESH old (its age tells a restart
        when the collector last ran)."""
        entries = self.snapshot()
        now = time.monotonic()
        if only_if_changed and entries == self.saved and now - self.saved_at < CHECKPOINT_REFRESH:
            self.metrics.checkpoint_age.set(0)
            return
        await asyncio.to_thread(self.store.save, entries)
        self.saved, self.saved_at = {sid: dict(entry) for sid, entry in entries.items()}, now
        self.persisted = set(entries)
        self.metrics.checkpoint_age.set(0)

    def close(self) -> None:
        for tailed in self.files.values():
            tailed.close()
        self.files.clear()
        self.real_paths.clear()
