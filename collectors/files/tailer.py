"""Reads one file from an offset: physical lines -> format parsing -> partial merging -> raw lines.

Positions are byte offsets of line starts in the file. A merged partial line takes the offset of
its last (`F`) fragment: lines are emitted in the order their last fragment appears, so positions
strictly increase within the stream even when stdout and stderr partials interleave, and a line
re-read after a restart carries the same position. `safe_offset`
is where reading must resume after a crash: the start of the first line not yet fully emitted.
"""

from __future__ import annotations

import hashlib
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from collectors.files.formats import CRI_STREAMS, PARSERS, Format, cri_time_ns, detect_format
from collectors.multiline import MultilineJoiner
from core.models import FLAG_BAD_PREFIX, FLAG_BAD_TIME, FLAG_TRUNCATED, RawLine, WireLines, make_raw_line
from core.native import native_module

if TYPE_CHECKING:
    from collectors.files.rotation_joins import Handoff

READ_SIZE = 1 << 20
FINGERPRINT_BYTES = 256
TAIL_BYTES = 64  # the bytes kept from just before the read offset: the next read re-reads them to check them
PREFETCH_BYTES = 64 * 1024  # new data up to this size is read by the truncation check itself (one pread)


def first_line(fd: int) -> bytes | None:
    """The first line, newline included (at most 256 bytes), or None while the file has none complete."""
    head = os.pread(fd, FINGERPRINT_BYTES, 0)
    end = head.find(b"\n")
    if end < 0 and len(head) < FINGERPRINT_BYTES:
        return None
    return head if end < 0 else head[: end + 1]


def hash_line(head: bytes) -> str:
    return hashlib.blake2b(head, digest_size=8).hexdigest()


def fingerprint(fd: int) -> str | None:
    """Hash of the first line (up to 256 bytes), or None while the file has no complete first line."""
    head = first_line(fd)
    return None if head is None else hash_line(head)


class Block(NamedTuple):
    """Lines of one read (TailedFile.read_blocks): encoded, or entries; and where reading resumes to get
    the first of them again."""

    lines: WireLines | list[RawLine]
    resume: int


@dataclass
class _Pending:
    offset: int
    source_ns: int
    parts: list[bytes]
    size: int
    truncated: bool = False
    flags: int = 0


@dataclass(slots=True)
class TailedFile:
    """An open file being followed, identified by device, inode and first-line fingerprint."""

    path: Path
    fd: int
    dev: int
    ino: int
    fingerprint: str
    generation: int
    read_offset: int
    fmt: Format | None
    source: dict[str, Any]
    max_line_bytes: int
    rotated_at: float | None = None
    _leftover: bytes = b""
    _discard_from: int | None = None
    _pending: dict[str, _Pending] = field(default_factory=dict)
    lines_truncated: int = 0
    lines_bad_time: int = 0  # CRI timestamps that did not parse (FLAG_BAD_TIME)
    lines_bad_prefix: int = 0  # lines of a CRI file without the prefix (FLAG_BAD_PREFIX)
    truncated_at: int = -1  # where the previous generation's unread part began (copytruncate copies)
    previous_fingerprint: str = ""
    previous_stream_id: str = ""  # the stream the previous generation was read as (a copy continues it)
    identity: str = ""  # a copytruncate copy: the stream id of the file it is a copy of
    joiner: MultilineJoiner | None = None  # multiline records (collectors/multiline.py), if a rule applies
    _resumes: dict[int, int] = field(default_factory=dict)  # position -> first byte, of the last lines returned
    real_path: str = ""  # symlinks resolved: where inotify reports its writes (collectors/files/inotify.py)
    needs_read: bool = True  # look at it in the next pass though no write was reported (new, backlog, rewound)
    lag_reported: int = -1  # the lag_bytes last set for it (a gauge set only when it changes)
    _stream_id: str = ""  # stream_id, kept: it is looked up for every file in every pass
    origin: str = ""  # the path it was written under (a rotated file: the path it was rotated from)
    lead_end: int | None = None  # where its own lines begin after those its predecessor's record took
    handed_over: bool = False  # rotated and read to its end: its open records took the successor's lines
    handoff: Handoff | None = None  # taking them now (collectors/files/rotation_joins.py)
    awaiting_copy: float | None = None  # truncated with a record open: when (its copy may continue it)
    _head: bytes = b""  # the first line the fingerprint hashes, kept: comparing it is cheaper than hashing
    at_end: bool = False  # the last read_lines read to the end the file had when its size was last taken
    size_seen: int = 0  # the file's size when last taken (fstat): reads ask for no more than what is there
    _path_text: str = ""  # str(path), kept: every acknowledged chunk writes it into the checkpoint entry
    _tail: bytes = b""  # the last bytes read, ending at _tail_at (valid only while that is read_offset)
    _tail_at: int = -1
    _prefetch: bytes = b""  # new data the truncation check read, starting at _prefetch_at (one use)
    _prefetch_at: int = -1

    @property
    def stream_id(self) -> str:
        if not self._stream_id:
            self._stream_id = self.identity or f"file:{self.dev}:{self.ino}:{self.fingerprint}:{self.generation}"
        return self._stream_id

    @property
    def rule_source(self) -> dict[str, Any]:
        """What multiline rules are chosen by: a rotated file is matched as the path it was written under."""
        return {**self.source, "path": self.origin} if self.origin and self.origin != self.source.get("path") \
            else self.source

    @property
    def read_whole(self) -> bool:
        """No partial line is waiting for its end."""
        return not self._pending and not self._leftover and self._discard_from is None

    @property
    def safe_offset(self) -> int:
        if not self._pending and not self._leftover and self._discard_from is None and self.joiner is None:
            return self.read_offset  # the usual case: every line read was complete and is returned
        starts = [p.offset for p in self._pending.values()]
        if self._leftover:
            starts.append(self.read_offset - len(self._leftover))
        if self._discard_from is not None:
            starts.append(self._discard_from)
        held = self.joiner.min_resume if self.joiner is not None else None
        if held is not None:
            starts.append(held)
        return min(starts) if starts else self.read_offset

    def checkpoint(self, offset: int) -> dict[str, object]:
        """Its checkpoint entry at `offset`, with the lines a predecessor's record took (rotation_joins.py)."""
        if not self._path_text:
            self._path_text = str(self.path)
        entry: dict[str, object] = {"offset": offset, "generation": self.generation, "path": self._path_text}
        if self.lead_end is not None:
            entry["lead"] = self.lead_end
        return entry

    def resume_at(self, position: int) -> int:
        """Where to start reading to get the line at `position` (of the lines last returned) again whole:
        a merged partial line or a joined record begins before its position."""
        return self._resumes.get(position, position)

    def _out(self, raw: RawLine, resume: int, out: list[RawLine]) -> None:
        if resume != raw[0]:
            self._resumes[raw[0]] = resume
        out.append(raw)

    def _joined(self, lines: list[RawLine], now: float) -> list[RawLine]:
        """`lines` through the multiline joiner: the records it completes (resume offsets noted)."""
        if self.joiner is None:
            return lines
        resumes, self._resumes = self._resumes, {}
        out: list[RawLine] = []
        self.joiner.push_into(lines, resumes, now, out, self._resumes)
        return out

    def _take(self, emitted: list[tuple[RawLine, int]], out: list[RawLine]) -> None:
        for raw, resume in emitted:
            if resume != raw[0]:
                self._resumes[raw[0]] = resume
            out.append(raw)

    def release_joiner(self) -> list[RawLine]:
        """Stop joining (a new rules version has no multiline rule for this file): its records, closed."""
        self._resumes = {}
        out: list[RawLine] = []
        if self.joiner is not None:
            self._take(self.joiner.flush_all(), out)
            self.joiner = None
        return out

    def flush_due(self) -> list[RawLine]:
        """Multiline records whose flush timeout passed."""
        self._resumes = {}
        out: list[RawLine] = []
        if self.joiner is not None and self.joiner.holding:
            self._take(self.joiner.flush_due(time.monotonic()), out)
        return out

    def size(self) -> int:
        """The file's size: where its end is (a quarter of an fstat's cost, which builds a whole stat result;
        every read is a pread, so the descriptor's own offset is nobody's)."""
        return os.lseek(self.fd, 0, os.SEEK_END)

    def check_truncation(self) -> bool:
        """copytruncate: the file shrank below what was read, or (when it regrew before we looked)
        what it held changed; start a new generation at 0. Checked before every read of new data.

        A file that grew is checked where it matters, just before the read offset: the bytes read last
        (`_tail`) must still be there. That read also takes the new data (up to PREFETCH_BYTES), so a
        file written a line at a time costs one pread per look, not a head check and then a read. Without
        those bytes (the first read after a start or a rewind), its first line is compared instead."""
        self._prefetch, self._prefetch_at = b"", -1
        size = self.size_seen = self.size()
        if size == self.read_offset or not self.fingerprint:
            return False
        if size > self.read_offset:
            tail = self._tail if self._tail_at == self.read_offset else b""
            new = size - self.read_offset
            if not tail or new > PREFETCH_BYTES:
                if self._same_head():
                    return False
            else:
                data = os.pread(self.fd, len(tail) + new, self.read_offset - len(tail))
                if data.startswith(tail):
                    self._prefetch, self._prefetch_at = data[len(tail):], self.read_offset
                    return False
        self.truncated_at = self.safe_offset
        self.awaiting_copy = time.monotonic() if self.joiner is not None and self.joiner.open else None
        self.lead_end, self.handed_over, self.handoff = None, False, None
        self.previous_stream_id, self.identity = self.stream_id, ""
        self.previous_fingerprint, self.fingerprint = self.fingerprint, ""  # taken from the new first line
        self._head = self._tail = b""
        self.generation += 1
        self._stream_id = ""
        self.read_offset = 0
        self._leftover, self._discard_from, self._pending = b"", None, {}
        self._reset_joiner()
        return True

    def _same_head(self) -> bool:
        """The file still begins with the first line its fingerprint was taken from."""
        if not self._head:
            head = first_line(self.fd)
            if head is None or hash_line(head) != self.fingerprint:
                return False
            self._head = head
            return True
        return os.pread(self.fd, len(self._head), 0) == self._head

    def _reset_joiner(self) -> None:
        if self.joiner is not None:
            self.joiner = MultilineJoiner(self.joiner.rule)

    def take_fingerprint(self) -> str:
        """Its fingerprint, taken from the first line once a new generation has a complete one ("" until)."""
        if not self.fingerprint:
            head = first_line(self.fd)
            self._head, self.fingerprint = (b"", "") if head is None else (head, hash_line(head))
            self._stream_id = ""
        return self.fingerprint

    def read_lines(self, budget: int = READ_SIZE) -> list[RawLine]:
        """Read up to `budget` new bytes and return the complete lines they finish. `at_end` tells
        whether the read reached the end of the file as of its last size taken (no need to ask again
        now). It asks for what the file holds, not for `budget`: a 1 MiB buffer for a few hundred
        new bytes cost ten times the read."""
        read = self._read(budget)
        if read is None:
            return []
        buffer, start, stop, base = read
        out: list[RawLine] = []
        if start < stop:
            if self.fmt == "cri":
                self._cri_lines(buffer, start, stop, base, out)
            else:
                emit = self._emit
                for line in buffer[start:stop - 1].split(b"\n"):
                    emit(line, base + start, out)
                    start += len(line) + 1
        self._keep_rest(buffer, stop, base, out)
        return self._joined(out, time.monotonic()) if self.joiner is not None else out

    @property
    def reads_wire(self) -> bool:
        """Whether `read_blocks` serves it: a CRI file without a multiline rule, the C scan on."""
        return self.fmt == "cri" and self.joiner is None and native_module("file_scan") is not None

    def read_blocks(self, max_lines: int, max_bytes: int, budget: int = READ_SIZE) -> list[Block]:
        """`read_lines` for a file that `reads_wire`, its lines in blocks: each run of common lines
        already in the wire encoding (core.models.WireLines), at most one chunk's worth (`max_lines`,
        `max_bytes`, as FileCollector._publish counts them), and the other lines as entries. Each block
        comes with where reading must resume to get its first line again."""
        read = self._read(budget)
        if read is None:
            return []
        buffer, start, stop, base = read
        scan = native_module("file_scan")
        assert scan is not None, "read_blocks needs the C scan (reads_wire)"
        blocks: list[Block] = []
        entries: list[RawLine] = []
        room, emit = self.max_line_bytes, self._emit
        while start < stop:
            if not self._pending:
                at, data, count, size = scan.cri_wire(buffer, start, stop, base, room, max_lines, max_bytes)
                if count:
                    if entries:
                        blocks.append(Block(entries, self.resume_at(entries[0][0])))
                        entries = []
                    blocks.append(Block(WireLines([data], count, size), base + start))
                    start = at
                    continue
            end = buffer.index(b"\n", start)
            emit(buffer[start:end], base + start, entries)
            start = end + 1
        self._keep_rest(buffer, stop, base, entries)
        if entries:
            blocks.append(Block(entries, self.resume_at(entries[0][0])))
        return blocks

    def _one_step_possible(self) -> bool:
        """Whether a visit may be taken in one step (take_prefetched, take_appended): no partial line or
        over-long line held, no multiline rule, not rotated, a fingerprint, a CRI file."""
        return not (self._pending or self._leftover or self._discard_from is not None or self.joiner is not None
                    or self.rotated_at is not None or not self.fingerprint or self.fmt != "cri")

    def take_prefetched(self, max_lines: int, max_bytes: int) -> WireLines | None:
        """After check_truncation, a visit's usual case in one step: what it found appended (its prefetch) is
        whole common CRI lines, at most one chunk's worth (`max_lines` / `max_bytes` as read_blocks bounds
        them), taken with the C scan and the file left as read_blocks would leave it; count 0 when nothing
        was added. None, with nothing changed, when read_blocks must take the visit (a partial or uncommon
        line, more than one chunk or than PREFETCH_BYTES, a new generation, a rotated file, a multiline
        rule, no C scan).

        On a node of many slow writers each visit brings a line or two, and read_blocks' steps (a read that
        finds its data prefetched, blocks, a kept rest) cost more than the read itself."""
        if not self._one_step_possible():
            return None
        if self.size_seen == self.read_offset:
            self.at_end = True
            if self._resumes:
                self._resumes = {}
            return WireLines([], 0, 0)
        data = self._prefetch
        if self._prefetch_at != self.read_offset or not data:
            return None
        scan = native_module("file_scan")
        if scan is None:
            return None
        at, wire, count, size = scan.cri_wire(data, 0, len(data), self.read_offset, self.max_line_bytes, max_lines,
                                              max_bytes)
        if at != len(data):  # a partial line, a line the scan does not answer for, or more than a chunk
            return None
        self.at_end = True
        self._prefetch, self._prefetch_at = b"", -1
        if self._resumes:
            self._resumes = {}
        self._keep_tail(data)
        return WireLines([wire], count, size)

    def take_appended(self, max_lines: int, max_bytes: int) -> WireLines | None:
        """check_truncation, then take_prefetched, in one C call (collectors/files/_filescan.c, `visit`), for the
        visit those two end with nothing changed but the lines taken: the file unchanged, or grown by whole
        common lines (at most one chunk's worth, `max_lines` / `max_bytes`, and PREFETCH_BYTES) after the bytes
        read last, which are still there. None, with nothing changed, when they must take the visit (the
        file shrank or changed before the read offset, a partial or uncommon line, more than a chunk, nothing
        read yet, anything take_prefetched declines, no C scan).

        A node of many slow writers visits a file per line or two: the truncation check's and take_prefetched's
        Python steps cost more than the file's lseek, pread and scan."""
        if not self._tail or self._tail_at != self.read_offset or not self._one_step_possible():
            return None
        scan = native_module("file_scan")
        if scan is None:
            return None
        found = scan.visit(self.fd, self.read_offset, self._tail, self.max_line_bytes, max_lines, max_bytes,
                           PREFETCH_BYTES, TAIL_BYTES)
        if found is None:
            return None
        self._prefetch, self._prefetch_at = b"", -1
        self.at_end = True
        if self._resumes:
            self._resumes = {}
        if type(found) is int:
            self.size_seen = found
            return WireLines([], 0, 0)
        size, wire, count, chars, tail = found
        self.size_seen = self.read_offset = self._tail_at = size
        self._tail = tail
        return WireLines([wire], count, chars)

    def _read(self, budget: int) -> tuple[bytes, int, int, int] | None:
        """Read up to `budget` new bytes: (buffer, start, stop, base) with buffer[start:stop] the complete
        lines to take (`base` the file offset of buffer[0]), or None when nothing was read."""
        self.at_end = False
        if not self.take_fingerprint():
            return None  # the new generation has no complete first line yet
        self._resumes = {}
        base = self.read_offset - len(self._leftover)
        want = min(budget, self.size_seen - self.read_offset)
        if want <= 0:
            self.size_seen = self.size()  # read to the size seen last: the file may have grown since
            want = min(budget, self.size_seen - self.read_offset)
            if want <= 0:
                self.at_end = True
                return None
        if self._prefetch_at == self.read_offset and len(self._prefetch) >= want:
            data = self._prefetch if len(self._prefetch) == want else self._prefetch[:want]
        else:
            data = os.pread(self.fd, want, self.read_offset)
        self._prefetch, self._prefetch_at = b"", -1  # one use: it may be stale by the next read
        self.at_end = len(data) < want or self.read_offset + len(data) >= self.size_seen
        if not data:
            return None
        self._keep_tail(data)
        buffer = self._leftover + data if self._leftover else data
        stop = buffer.rfind(b"\n") + 1  # just after the last complete line
        start = 0
        if self._discard_from is not None and stop:
            self._discard_from = None  # the rest of an over-long line ends here
            start = buffer.index(b"\n") + 1
        return buffer, start, stop, base

    def _keep_tail(self, data: bytes) -> None:
        """`data` was read at the read offset: move past it, keeping its last bytes for the next check."""
        tail = data[-TAIL_BYTES:]
        if len(tail) < TAIL_BYTES and self._tail_at == self.read_offset:
            tail = (self._tail + tail)[-TAIL_BYTES:]
        self.read_offset += len(data)
        self._tail, self._tail_at = tail, self.read_offset

    def _keep_rest(self, buffer: bytes, stop: int, base: int, out: list[RawLine]) -> None:
        """Keep the incomplete line after `stop` for the next read (an over-long one: its start, cut)."""
        rest = buffer[stop:]
        self._leftover = b""
        if self._discard_from is None:
            if len(rest) > self.max_line_bytes:
                self._emit(rest[: self.max_line_bytes], base + stop, out, truncated=True)
                self._discard_from = base + stop
            else:
                self._leftover = rest

    def _cri_lines(self, buffer: bytes, start: int, stop: int, base: int, out: list[RawLine]) -> None:
        """`_emit` for each line of buffer[start:stop] (complete lines of a CRI file; `base` is the file
        offset of buffer[0]). The common line (a full `F` line of stdout or stderr, a timestamp that
        parses, UTF-8 content within max_line_bytes, no partial line of the file pending) is built
        without the general path's steps, in C when the extension is there (collectors/files/_filescan.c,
        which hands every other line back), else by `_cri_common`: the same entries."""
        scan = native_module("file_scan")
        if scan is None:
            self._cri_common(buffer[start:stop - 1].split(b"\n"), base + start, out)
            return
        room, pending, emit = self.max_line_bytes, self._pending, self._emit
        while start < stop:
            if not pending:
                start = scan.cri_lines(buffer, start, stop, base, room, "stdout", "stderr", out)
                if start >= stop:
                    return
            end = buffer.index(b"\n", start)
            emit(buffer[start:end], base + start, out)
            start = end + 1

    def _cri_common(self, pieces: list[bytes], offset: int, out: list[RawLine]) -> None:
        """The Python path of `_cri_lines` over its lines, split (the reference of the C scan)."""
        emit, pending, streams, room = self._emit, self._pending, CRI_STREAMS, self.max_line_bytes
        append = out.append
        for line in pieces:
            parts = line.split(b" ", 3)
            if (not pending and len(parts) == 4 and parts[2] == b"F" and len(parts[3]) <= room
                    and not line.endswith(b"\r")):
                stream = streams.get(parts[1])
                source_ns = cri_time_ns(parts[0]) if stream is not None else 0
                if source_ns:
                    try:
                        append([offset, parts[3].decode(), stream, source_ns, 0])
                        offset += len(line) + 1
                        continue
                    except UnicodeDecodeError:
                        pass
            emit(line, offset, out)
            offset += len(line) + 1

    def _emit(self, line: bytes, offset: int, out: list[RawLine], truncated: bool = False) -> None:
        if line.endswith(b"\r"):
            line = line[:-1]
        if self.fmt is None:
            self.fmt = detect_format(line)
        source_ns, stream, partial, content, marks = PARSERS[self.fmt](line)
        if marks:
            self.lines_bad_time += bool(marks & FLAG_BAD_TIME)
            self.lines_bad_prefix += bool(marks & FLAG_BAD_PREFIX)
        pending = self._pending.get(stream)
        if pending is None and not partial:
            flags = FLAG_TRUNCATED if truncated else 0
            if len(content) > self.max_line_bytes:
                content, flags = content[: self.max_line_bytes], FLAG_TRUNCATED
            if flags:
                self.lines_truncated += 1
            self._out(make_raw_line(offset, content, stream, source_ns, flags | marks), offset, out)
            return
        if pending is None:
            pending = self._pending[stream] = _Pending(offset, source_ns, [], 0)
        pending.flags |= marks
        room = self.max_line_bytes - pending.size
        if room > 0:
            pending.parts.append(content[:room])
            pending.size += min(len(content), room)
        pending.truncated |= len(content) > room or truncated
        if not partial:
            del self._pending[stream]
            flags = FLAG_TRUNCATED if pending.truncated else 0
            self.lines_truncated += bool(flags)
            self._out(make_raw_line(offset, b"".join(pending.parts), stream, pending.source_ns,
                                    flags | pending.flags), pending.offset, out)

    def flush_pending(self) -> list[RawLine]:
        """Partial lines that will never be completed, and open multiline records (their file was rotated
        away and fully read)."""
        self._resumes = {}
        out: list[RawLine] = []
        for i, (stream, p) in enumerate(sorted(self._pending.items(), key=lambda item: item[1].offset)):
            raw = make_raw_line(self.read_offset - len(self._leftover) + i, b"".join(p.parts), stream, p.source_ns,
                                (FLAG_TRUNCATED if p.truncated else 0) | p.flags)
            self._out(raw, p.offset, out)
        self._pending = {}
        if self.joiner is not None:
            out = self._joined(out, time.monotonic())
            self._take(self.joiner.flush_all(), out)
        return out

    def rewind(self, offset: int) -> None:
        """Read again from `offset` (a line start): used when a send failed after retries. Never before
        the lines a predecessor's record took (rotation_joins.py): its record is read again with them."""
        self.read_offset = max(offset, self.lead_end or 0)
        self.handed_over, self.handoff = False, None
        self.needs_read = True
        self._leftover, self._discard_from, self._pending = b"", None, {}
        self._reset_joiner()

    def close(self) -> None:
        os.close(self.fd)
