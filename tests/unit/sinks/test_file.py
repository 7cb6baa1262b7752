"""The file sink on real files: rotation by size, and no duplicate after retries, replays or a crash, for
batches of lines and for whole records packed by the drain (the real DrainRunner in front)."""

from __future__ import annotations

import ctypes
import mmap
import os
from pathlib import Path
from typing import Any

import orjson
import pytest

import sinks.file as file_sink
from agents.drain_runner import DrainRunner, SinkRecord, to_sink_lines
from core.codec import compressor
from core.models import ParsedChunk
from core.settings import FileSinkSettings, Settings
from sinks.base import SinkBatch, SinkLine
from sinks.file import FileSink


def batch(offsets: range, per_record: int = 2, partition: int = 0) -> SinkBatch:
    lines = [SinkLine(f"id{o}-{i}", "t", 0, "info", "svc", b'{"o":%d,"i":%d}' % (o, i), o, i)
             for o in offsets for i in range(per_record)]
    return SinkBatch("sink.file", partition, lines)


def read_all(directory: Path) -> list[bytes]:
    lines = []
    for segment in sorted(directory.rglob("*.ndjson")):
        lines.extend(segment.read_bytes().splitlines())
    return lines


async def test_writes_and_replays_do_not_duplicate(tmp_path: Path) -> None:
    sink = FileSink(FileSinkSettings(directory=tmp_path), 1000, 1 << 20, 1.0)
    await sink.start()
    await sink.write_batch(batch(range(0, 5)))
    await sink.write_batch(batch(range(0, 5)))  # retry
    await sink.write_batch(batch(range(3, 8)))  # overlapping replay
    assert len(read_all(tmp_path)) == 16
    fresh = FileSink(FileSinkSettings(directory=tmp_path), 1000, 1 << 20, 1.0)  # restart
    await fresh.write_batch(batch(range(0, 8)))
    assert len(read_all(tmp_path)) == 16


async def test_crash_between_append_and_position_is_truncated(tmp_path: Path) -> None:
    sink = FileSink(FileSinkSettings(directory=tmp_path), 1000, 1 << 20, 1.0)
    await sink.write_batch(batch(range(0, 3)))
    segment = next(tmp_path.rglob("*.ndjson"))
    with open(segment, "ab") as handle:  # an append whose position update never happened
        handle.write(b'{"o":3,"i":0}\n{"o":3,"i":1}\n{"o":4,"i"')
    restarted = FileSink(FileSinkSettings(directory=tmp_path), 1000, 1 << 20, 1.0)
    await restarted.write_batch(batch(range(3, 5)))
    lines = read_all(tmp_path)
    assert len(lines) == 10 and len(set(lines)) == 10 and lines[-1] == b'{"o":4,"i":1}'


async def test_rotates_by_size_into_offset_named_segments(tmp_path: Path) -> None:
    sink = FileSink(FileSinkSettings(directory=tmp_path, rotate_bytes=100), 1000, 1 << 20, 1.0)
    for start in range(0, 20, 4):
        await sink.write_batch(batch(range(start, start + 4)))
    segments = sorted(p.name for p in (tmp_path / "sink.file-0").glob("*.ndjson"))
    assert len(segments) == 5 and segments[1] == f"{4:019d}.ndjson"
    assert len(read_all(tmp_path)) == 40
    assert not [p for p in (tmp_path / "sink.file-0").iterdir() if p.name.endswith(".tmp")]
    assert os.path.exists(tmp_path / "sink.file-0" / "position.json")


async def test_line_forwarded_again_under_new_offsets_is_written_once(tmp_path: Path) -> None:
    """A worker crash upstream can re-forward a chunk under new sink-topic offsets: the per-stream
    marks in the position file recognise its lines by their ids."""
    sink = FileSink(FileSinkSettings(directory=tmp_path), 1000, 1 << 20, 1.0)
    first = [SinkLine(f"stream-{pos:x}", "t", 0, "info", "svc", b'{"p":%d}' % pos, 10, i)
             for i, pos in enumerate((100, 200, 300))]
    await sink.write_batch(SinkBatch("sink.file", 0, first))
    again = [SinkLine(line.line_id, "t", 0, "info", "svc", line.document, 42, i) for i, line in enumerate(first)]
    newer = SinkLine("stream-190", "t", 0, "info", "svc", b'{"p":400}', 43, 0)
    await sink.write_batch(SinkBatch("sink.file", 0, [*again, newer]))
    assert read_all(tmp_path) == [b'{"p":100}', b'{"p":200}', b'{"p":300}', b'{"p":400}']

async def test_writers_sharing_a_directory_write_each_line_once(tmp_path: Path) -> None:
    """A drain and a replay (or two workers after a rebalance) in one directory, interleaved and at
    the same time from threads, each writing its own batches in offset order: the partition lock and
    the fresh position read keep every line once."""
    import asyncio

    async def write_in_order(sink: FileSink, step: int) -> None:
        for start in range(20, 220, step):
            await sink.write_batch(batch(range(start, min(start + step, 220))))

    drain = FileSink(FileSinkSettings(directory=tmp_path), 1000, 1 << 20, 1.0)
    replay = FileSink(FileSinkSettings(directory=tmp_path), 1000, 1 << 20, 1.0)
    await drain.write_batch(batch(range(0, 10)))
    await replay.write_batch(batch(range(0, 20)))  # replay goes further than the drain
    await drain.write_batch(batch(range(10, 20)))  # the drain's next batch: already written
    await asyncio.gather(write_in_order(drain, 7), write_in_order(replay, 13))
    lines = read_all(tmp_path)
    assert len(lines) == len(set(lines)) == 2 * 220


async def test_the_position_file_records_segment_size_last_line_and_stream_marks(tmp_path: Path) -> None:
    sink = FileSink(FileSinkSettings(directory=tmp_path), 1000, 1 << 20, 1.0)
    await sink.start()
    lines = [SinkLine(f"{stream}-{position:x}", "t", 0, "info", "svc", b'{"p":%d}' % position, 7, index)
             for index, (stream, position) in enumerate([("aa", 1), ("bb", 5), ("aa", 2)])]
    await sink.write_batch(SinkBatch("sink.file", 0, lines))
    position = orjson.loads((tmp_path / "sink.file-0" / "position.json").read_bytes())
    size = (tmp_path / "sink.file-0" / position["segment"]).stat().st_size
    assert position == {"segment": f"{7:019d}.ndjson", "size": size, "offset": 7, "index": 2,
                        "streams": {"aa": 2, "bb": 5}}


# -- whole records packed by the drain (sinks/packed.py) ---------------------------------------------------
def sink_record(partition: int, offset: int, positions: range, stream: str = "s1") -> SinkRecord:
    lines = [[0, stream, pos, 1_700_000_000_000_000_000 + pos, f"t{pos % 3}", "info", "web",
              orjson.dumps({"n": pos}).decode(), "stdout"] for pos in positions]
    return SinkRecord(partition, offset, compressor("lz4")(ParsedChunk([{"kind": "file"}], lines).encode()))


def drain_runner(directory: Path, lines: int = 1000) -> DrainRunner:
    async def no_dead_letters(items: Any) -> None:
        raise AssertionError(f"dead letters from the file sink: {items}")

    settings = Settings(sinks={"file": {"directory": str(directory), "batch_lines": lines}})
    return DrainRunner(FileSink.from_settings(settings), settings, "sink.file", no_dead_letters)


def numbers_in(directory: Path) -> list[int]:
    return [orjson.loads(line)["n"] for line in read_all(directory)]


async def test_packed_records_are_written_once_across_retries_replays_and_restarts(tmp_path: Path) -> None:
    runner = drain_runner(tmp_path)
    assert runner.sink.takes_packed
    records = [sink_record(0, offset, range(offset * 10, offset * 10 + 10)) for offset in range(6)]
    await runner.deliver(records[:3])
    await runner.deliver(records[:3])  # redelivered after a lost ack
    await runner.deliver(records[2:5])  # an overlapping replay
    await drain_runner(tmp_path).deliver(records)  # a restarted worker from an older committed offset
    assert numbers_in(tmp_path) == list(range(60))


async def test_packed_and_line_batches_write_the_same_bytes(tmp_path: Path) -> None:
    records = [sink_record(1, offset, range(offset * 3, offset * 3 + 3), stream=f"s{offset % 2}")
               for offset in range(4)]
    await drain_runner(tmp_path / "packed").deliver(records)
    lines_sink = FileSink(FileSinkSettings(directory=tmp_path / "lines"), 1000, 1 << 20, 1.0)
    await lines_sink.write_batch(SinkBatch("sink.file", 1, [x for r in records for x in to_sink_lines(r, "logweave")]))
    for name in ("position.json", f"{0:019d}.ndjson"):
        packed = (tmp_path / "packed" / "sink.file-1" / name).read_bytes()
        assert packed == (tmp_path / "lines" / "sink.file-1" / name).read_bytes()


async def test_a_re_sent_packed_record_is_skipped_by_its_stream_marks(tmp_path: Path) -> None:
    runner = drain_runner(tmp_path)
    await runner.deliver([sink_record(0, 0, range(0, 5)), sink_record(0, 1, range(5, 8))])
    # the group stage re-forwards lines 3..9 under new offsets after a crash upstream
    await runner.deliver([sink_record(0, 2, range(3, 10))])
    assert numbers_in(tmp_path) == list(range(10))


async def test_a_crashed_packed_append_is_truncated_before_the_next(tmp_path: Path) -> None:
    runner = drain_runner(tmp_path)
    await runner.deliver([sink_record(0, 0, range(0, 4))])
    segment = next(tmp_path.rglob("*.ndjson"))
    with open(segment, "ab") as handle:
        handle.write(b'{"n":4}\n{"n":')  # an append whose position update never happened
    await drain_runner(tmp_path).deliver([sink_record(0, 0, range(0, 4)), sink_record(0, 1, range(4, 6))])
    assert numbers_in(tmp_path) == list(range(6))


async def test_one_batch_is_one_writev_and_one_position_update(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    real = os.writev

    def counting(fd: int, buffers: Any) -> int:
        calls.append(len(buffers))
        return real(fd, buffers)

    monkeypatch.setattr(file_sink.os, "writev", counting)
    runner = drain_runner(tmp_path, lines=25)
    await runner.deliver([sink_record(0, offset, range(offset * 10, offset * 10 + 10)) for offset in range(5)])
    # 5 records of 10 lines, 25 lines a batch: whole records, 2 + 2 + 1, one writev each with a buffer per record
    assert calls == [2, 2, 1]
    assert numbers_in(tmp_path) == list(range(50))
    position = orjson.loads((tmp_path / "sink.file-0" / "position.json").read_bytes())
    assert (position["offset"], position["index"]) == (4, 9)


def test_short_writes_are_finished(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = os.writev

    def at_most_five_bytes(fd: int, buffers: Any) -> int:
        return real(fd, [bytes(buffers[0])[:5]])

    monkeypatch.setattr(file_sink.os, "writev", at_most_five_bytes)
    path = tmp_path / "segment"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    try:
        file_sink.write_all(fd, [b"0123456789\n", b"", b"abc\n", b"xyz" * 7])
    finally:
        os.close(fd)
    assert path.read_bytes() == b"0123456789\nabc\n" + b"xyz" * 7


@pytest.mark.parametrize(("rotate_bytes", "before"), [(1 << 20, 2), (10, 2), (1 << 20, 0)],
                         ids=["same segment", "new segment", "first segment"])
async def test_a_batch_retried_after_a_failed_position_update_is_written_once(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, rotate_bytes: int, before: int) -> None:
    """The append went through, the position file did not: the retry (or the next worker) must cut the
    unrecorded bytes off, in the segment the position names and in a segment it had just begun."""
    sink = FileSink(FileSinkSettings(directory=tmp_path, rotate_bytes=rotate_bytes), 1000, 1 << 20, 1.0)
    if before:
        await sink.write_batch(batch(range(0, before)))
    real = os.replace

    def fail_once(src: Any, dst: Any) -> None:
        monkeypatch.setattr(file_sink.os, "replace", real)
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(file_sink.os, "replace", fail_once)
    with pytest.raises(OSError):
        await sink.write_batch(batch(range(before, 4)))
    await sink.write_batch(batch(range(before, 4)))
    lines = read_all(tmp_path)
    assert len(lines) == len(set(lines)) == 8


async def test_a_record_split_across_batches_stays_in_its_segment_past_the_rotation_size(tmp_path: Path) -> None:
    """The next batch begins inside the record the last one ended in: its segment is already named by that
    offset and holds recorded lines, so it is appended to, never started afresh."""
    sink = FileSink(FileSinkSettings(directory=tmp_path, rotate_bytes=10), 1000, 1 << 20, 1.0)
    lines = batch(range(5, 6), per_record=4).lines
    await sink.write_batch(SinkBatch("sink.file", 0, lines[:2]))
    await sink.write_batch(SinkBatch("sink.file", 0, lines[2:]))
    await sink.write_batch(batch(range(6, 7)))
    assert read_all(tmp_path) == [b'{"o":5,"i":%d}' % i for i in range(4)] + [b'{"o":6,"i":0}', b'{"o":6,"i":1}']
    assert sorted(p.name for p in (tmp_path / "sink.file-0").glob("*.ndjson")) == [f"{5:019d}.ndjson",
                                                                                   f"{6:019d}.ndjson"]


def resident_pages(path: Path) -> int:
    """Pages of `path` in the page cache (mincore over a read-only mapping; mapping reads nothing)."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mmap.restype = ctypes.c_void_p
    libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
    libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_char_p]
    libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
    size, page = path.stat().st_size, mmap.PAGESIZE
    fd = os.open(path, os.O_RDONLY)
    try:
        address = libc.mmap(None, size, mmap.PROT_READ, mmap.MAP_SHARED, fd, 0)
        assert address not in (None, ctypes.c_void_p(-1).value), os.strerror(ctypes.get_errno())
        try:
            vector = ctypes.create_string_buffer((size + page - 1) // page)
            assert libc.mincore(address, size, vector) == 0, os.strerror(ctypes.get_errno())
            return sum(byte & 1 for byte in vector.raw)
        finally:
            libc.munmap(address, size)
    finally:
        os.close(fd)


def filesystem_of(path: Path) -> str:
    """The type of the filesystem `path` lives on (the longest mount point above it in mountinfo)."""
    best, kind = "", ""
    for row in Path("/proc/self/mountinfo").read_text().splitlines():
        fields = row.split()
        mount, fstype = fields[4], fields[fields.index("-") + 1]
        if (str(path) + "/").startswith(mount.rstrip("/") + "/") and len(mount) >= len(best):
            best, kind = mount, fstype
    return kind


@pytest.mark.parametrize("drop", [True, False])
async def test_written_pages_leave_the_page_cache_once_fsynced(tmp_path: Path, drop: bool,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """sinks.file.drop_written_pages (default on): a batch's pages are dropped from the page cache after its
    fsync, so the next appends reuse them; off, the sink asks nothing and the kernel keeps them. Checked with
    mincore on a real file, and by the hints the sink gave (each batch's own appended range).

    Off, the kernel may still evict a few clean pages on its own (a busy machine's memory pressure: 3 of 697
    were gone once during a parallel `make test`), so that control asserts the sink gave no hint and most
    pages stayed, not that every page did."""
    if filesystem_of(tmp_path) in ("tmpfs", "ramfs", "overlay"):
        pytest.skip(f"{filesystem_of(tmp_path)}: its pages are its storage, or it may not pass the hint on")
    hints: list[tuple[int, int, int]] = []
    give_hint = os.posix_fadvise

    def recorded(fd: int, offset: int, length: int, advice: int) -> None:
        hints.append((offset, length, advice))
        give_hint(fd, offset, length, advice)

    monkeypatch.setattr(os, "posix_fadvise", recorded)
    sink = FileSink(FileSinkSettings(directory=tmp_path, drop_written_pages=drop), 100_000, 1 << 30, 1.0)
    await sink.write_batch(batch(range(0, 40_000)))  # ~1.3 MB
    first = next(tmp_path.rglob("*.ndjson")).stat().st_size
    await sink.write_batch(batch(range(40_000, 80_000)))  # appended: its own range is dropped too
    segment = next(tmp_path.rglob("*.ndjson"))
    size = segment.stat().st_size
    pages = size // mmap.PAGESIZE
    assert pages > 300
    resident = resident_pages(segment)
    if drop:
        assert hints == [(0, first, os.POSIX_FADV_DONTNEED), (first, size - first, os.POSIX_FADV_DONTNEED)]
        assert resident <= 2, f"{resident} of {pages} pages still cached"
    else:
        assert hints == []
        assert resident >= pages // 2, f"only {resident} of {pages} pages cached"
    assert len(read_all(tmp_path)) == 160_000  # and read back whole from the disk


async def test_a_filesystem_refusing_the_page_hint_fails_no_batch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                   caplog: pytest.LogCaptureFixture) -> None:
    """posix_fadvise is a hint: refused (some FUSE filesystems), the batch is still written once, with one
    warning naming the setting, and the sink stops asking."""
    asked: list[int] = []

    def refusing(fd: int, offset: int, length: int, advice: int) -> None:
        asked.append(offset)
        raise OSError(95, "Operation not supported")

    monkeypatch.setattr(file_sink.os, "posix_fadvise", refusing)
    sink = FileSink(FileSinkSettings(directory=tmp_path), 1000, 1 << 20, 1.0)
    for offsets in (range(0, 5), range(5, 10)):
        result = await sink.write_batch(batch(offsets))
        assert not result.permanent and not result.retry
    assert len(read_all(tmp_path)) == 20 and asked == [0]
    assert sum("drop_written_pages" in r.getMessage() for r in caplog.records) == 1
