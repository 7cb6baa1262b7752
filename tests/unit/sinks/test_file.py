"""The file sink on real files: rotation by size, and no duplicate after retries, replays or a crash."""

from __future__ import annotations

import os
from pathlib import Path

import orjson

from core.settings import FileSinkSettings
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
