"""The C scan's wire encoding (collectors/files/_filescan.c, cri_wire) against its Python reference.

The file collector's common CRI lines leave the C scan already encoded (core.models.WireLines). What it
publishes must be byte for byte what the Python path (`LOGWEAVE_PURE=1`: entries, encoded by orjson in
RawBatch.encode) publishes: the same `logs.raw` records, for any lines (escapes, non-ASCII, invalid
UTF-8, partial lines, lines cut by a read, over the limit) and any chunk limits; and each encoded block
resumes where the Python path would resume.
"""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from collectors.files.collector import FileCollector
from collectors.files.discovery import discover
from collectors.files.metrics import FileMetrics
from collectors.files.tailer import PREFETCH_BYTES, TailedFile
from core.models import RawBatch, WireLines, wire_lines
from core.settings import load_settings
from kafka_io.partition_batcher import PartitionBatcher
from kafka_io.publisher import ChunkAck
from tests.unit.collectors.files.test_filescan import FIRST, follow, lines, python_path, scan

pytest.importorskip("collectors.files._filescan", reason="C extension not built (pure-Python install)")

STAMP = b"2025-06-10T08:25:41.000000001Z"
# every character orjson escapes, and the ones it leaves alone (DEL, '/', non-ASCII up to 4 bytes)
texts = st.one_of(st.text(max_size=60), st.text(alphabet="\"\\\x00\x01\x08\t\x0b\x0c\r\x1f\x7f/ é€😀", max_size=30))
common_lines = st.builds(lambda stream, text: STAMP + b" " + stream + b" F " + text.replace("\n", " ").encode(),
                         st.sampled_from([b"stdout", b"stderr"]), texts)
any_lines = st.one_of(common_lines, lines)


def limited(entries: list[Any], max_lines: int, max_bytes: int) -> list[Any]:
    """The first chunk FileCollector._publish makes of `entries`."""
    stop = size = 0
    while stop < len(entries) and stop < max_lines and (size < max_bytes or stop == 0):
        size += len(entries[stop][1]) + 48
        stop += 1
    return entries[:stop]


@settings(max_examples=400, deadline=None)
@given(st.lists(any_lines, max_size=20), st.integers(1, 8), st.integers(1, 600), st.integers(0, 80))
def test_the_scan_writes_what_orjson_writes_for_the_lines_it_takes(body: list[bytes], max_lines: int, max_bytes: int,
                                                                   room: int) -> None:
    buffer = b"".join(line + b"\n" for line in body)
    assert scan is not None
    entries: list[Any] = []
    scan.cri_lines(buffer, 0, len(buffer), 7, room, "stdout", "stderr", entries)  # itself held to the Python path
    taken = limited(entries, max_lines, max_bytes)
    at, data, count, size = scan.cri_wire(buffer, 0, len(buffer), 7, room, max_lines, max_bytes)
    reference = wire_lines(taken)
    assert (data, count, size) == (b",".join(reference.pieces), reference.count, reference.size)
    assert at == (buffer.index(b"\n", taken[-1][0] - 7) + 1 if taken else 0)  # after the last line taken
    assert orjson.loads(b"[%s]" % data) == taken


def test_the_scan_refuses_what_python_refuses_as_utf8() -> None:
    assert scan is not None
    for content in (b"\xc0\xaf", b"\xe0\x80\xaf", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\xf8\x88\x80\x80\x80",
                    b"\xc3", b"ok \xe2\x82", b"\x80", b"\xff"):
        buffer = STAMP + b" stdout F " + content + b"\n"
        assert scan.cri_wire(buffer, 0, len(buffer), 0, 1 << 20, 10, 1 << 20) == (0, b"", 0, 0), content
    with pytest.raises(ValueError, match="within the buffer"):
        scan.cri_wire(b"abc\n", 0, 5, 0, 10, 1, 1)


def read_everything(path: Path, budgets: list[int], max_line: int, max_lines: int, max_bytes: int) -> list[Any]:
    """Read after read: the blocks (decoded, their resumes) and where the file stands."""
    tail = follow(path, max_line, False)
    said: list[Any] = []
    try:
        assert tail.reads_wire
        for budget in budgets + [1 << 20]:
            blocks = tail.read_blocks(max_lines, max_bytes, budget)
            for block in blocks:
                if isinstance(block.lines, WireLines):
                    assert 0 < block.lines.count <= max_lines
                    assert block.lines.decode() == limited(block.lines.decode(), max_lines, max_bytes)
            said.append(([(block.lines.decode() if isinstance(block.lines, WireLines) else block.lines, block.resume)
                          for block in blocks], tail.safe_offset, tail.read_offset))
    finally:
        tail.close()
    return said


def read_python(path: Path, budgets: list[int], max_line: int) -> list[Any]:
    tail = follow(path, max_line, False)
    said: list[Any] = []
    try:
        with python_path():
            for budget in budgets + [1 << 20]:
                got = tail.read_lines(budget)
                said.append((got, [tail.resume_at(line[0]) for line in got], tail.safe_offset, tail.read_offset))
    finally:
        tail.close()
    return said


@settings(max_examples=200, deadline=None)
@given(st.lists(any_lines, max_size=25), st.booleans(), st.lists(st.integers(1, 400), max_size=5),
       st.integers(16, 64), st.integers(1, 6), st.integers(1, 400))
def test_blocks_hold_the_python_paths_lines_and_resumes(body: list[bytes], ends_whole: bool, budgets: list[int],
                                                        max_line: int, max_lines: int, max_bytes: int) -> None:
    data = FIRST + b"\n".join(body) + (b"\n" if ends_whole and body else b"")
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "0.log"
        path.write_bytes(data)
        got = read_everything(path, budgets, max_line, max_lines, max_bytes)
        expected = read_python(path, budgets, max_line)
    for (blocks, safe, offset), (entries, resumes, safe_py, offset_py) in zip(got, expected, strict=True):
        assert [line for block, _ in blocks for line in block] == entries
        assert (safe, offset) == (safe_py, offset_py)
        at = 0
        for block, resume in blocks:  # a block resumes where the Python path resumes its first line
            assert resume == resumes[at]
            at += len(block)


class Recorder:
    """A publisher that records each record's bytes and acknowledges it at once."""

    recoveries = 0

    def __init__(self) -> None:
        self.records: list[bytes] = []

    def partition_for(self, stream_id: str) -> int:
        return 0

    async def publish(self, batch: RawBatch, partition: int | None = None) -> asyncio.Future[ChunkAck]:
        self.records.append(batch.encode())
        ack: asyncio.Future[ChunkAck] = asyncio.get_running_loop().create_future()
        ack.set_result(ChunkAck(0, len(self.records)))
        return ack

    def lost(self, ack: ChunkAck) -> bool:
        return False


async def collect(root: Path, pieces: list[bytes], chunk_lines: int, chunk_bytes: int,
                  waiting_bytes: int = 1 << 30) -> tuple[list[bytes], Any]:
    """Run a FileCollector over one pod log written in `pieces`, every read of it a record: the records
    and the checkpoint it ends with."""
    settings_ = load_settings(environ={}, collector={"paths": [str(root / "pods" / "*" / "*" / "*.log")],
                                                     "checkpoint_dir": str(root / "ckpt"), "max_line_bytes": 48,
                                                     "chunk_lines": chunk_lines, "chunk_bytes": chunk_bytes}).collector
    path = root / "pods" / "ns_pod_uid" / "app" / "0.log"
    recorder = Recorder()
    batcher = PartitionBatcher(recorder, 60.0, 10_000, 1 << 30, waiting_bytes)  # type: ignore[arg-type]
    collector = FileCollector(settings_, batcher, FileMetrics())
    try:
        for piece in pieces:
            with open(path, "ab") as handle:
                handle.write(piece)
            collector.apply_scan(discover(settings_.paths, []))
            await collector.pump()
            batcher.flush()
            await batcher.stop()
            collector.settle_acks()
        (tailed,) = collector.files.values()
        # the two runs' files differ in path and inode only: name them alike
        records = [record.replace(tailed.stream_id.encode(), b"SID").replace(str(root).encode(), b"ROOT")
                   for record in recorder.records]
        return records, {**collector.checkpoints[tailed.stream_id], "path": ""}
    finally:
        collector.close()


def assert_same_as_the_python_path(pieces: list[bytes], chunk_lines: int, chunk_bytes: int,
                                   waiting_bytes: int = 1 << 30) -> None:
    """The collector's records and final checkpoint for a pod log written in `pieces`: the same with the C
    scan as on the Python path."""
    results = []
    for pure in (False, True):
        with tempfile.TemporaryDirectory() as directory:
            root = Path(directory)
            (root / "pods" / "ns_pod_uid" / "app").mkdir(parents=True)
            with pytest.MonkeyPatch.context() as patch:
                patch.setattr("collectors.files.collector.time.time_ns", lambda: 1_000_000)
                if pure:
                    patch.setattr("collectors.files.tailer.native_module", lambda name: None)
                results.append(asyncio.run(collect(root, pieces, chunk_lines, chunk_bytes, waiting_bytes)))
    (records, checkpoint), (records_py, checkpoint_py) = results
    assert records == records_py
    assert checkpoint == checkpoint_py


@settings(max_examples=60, deadline=None)
@given(st.lists(any_lines, min_size=1, max_size=25), st.lists(st.integers(0, 25), max_size=3), st.integers(1, 6),
       st.integers(1, 2000))
def test_the_collectors_records_are_byte_identical_to_the_python_paths(body: list[bytes], cuts: list[int],
                                                                      chunk_lines: int, chunk_bytes: int) -> None:
    data = FIRST + b"".join(line + b"\n" for line in body)
    marks = sorted({0, len(data)} | {min(len(data), len(FIRST) + 40 * cut) for cut in cuts})
    pieces = [data[a:b] for a, b in zip(marks, marks[1:], strict=False)]
    assert_same_as_the_python_path(pieces, chunk_lines, chunk_bytes)


def test_a_read_larger_than_the_scans_stack_buffer_is_encoded_whole() -> None:
    """A bulk read: megabytes of lines with escapes and non-ASCII, past the scan's 16 KiB on the stack."""
    text = b'{"n": %d, "msg": "caf\xc3\xa9 \\\\ \t \xf0\x9f\x98\x80 %s"}\n'
    body = b"".join(STAMP + b" stderr F " + text % (n, b"q\"" * (n % 300)) for n in range(5000))
    assert scan is not None
    entries: list[Any] = []
    assert scan.cri_lines(body, 0, len(body), 0, 1 << 20, "stdout", "stderr", entries) == len(body)
    at, data, count, size = scan.cri_wire(body, 0, len(body), 0, 1 << 20, 10_000, 1 << 30)
    reference = wire_lines(entries)
    assert (at, data, count, size) == (len(body), reference.pieces[0], 5000, reference.size)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.lists(any_lines, min_size=0, max_size=6), min_size=1, max_size=6), st.integers(1, 6),
       st.integers(1, 2000))
def test_visits_of_whole_appended_lines_publish_what_the_python_path_does(writes: list[list[bytes]], chunk_lines: int,
                                                                          chunk_bytes: int) -> None:
    """Each write a run of whole lines, as a runtime appends them: most visits then take the one-step read
    (TailedFile.take_prefetched) and fall back for an uncommon line, a partial one or more than a chunk."""
    pieces = [FIRST] + [b"".join(line + b"\n" for line in lines_) for lines_ in writes]
    assert_same_as_the_python_path(pieces, chunk_lines, chunk_bytes)


async def test_a_visit_waits_for_room_when_the_batcher_has_none(tmp_path: Path) -> None:
    """Two files each appended a line, one pass: the first visit's chunk closes a batch that leaves the
    batcher no room (max_lines 1, max_waiting_bytes 1), so the second visit's chunk is not handed over at
    once but waits in `publish` as any chunk would; every line is sent once, in order, and both
    checkpoints advance to the files' ends."""
    paths = [tmp_path / "pods" / f"ns_pod{n}_uid" / "app" / "0.log" for n in range(2)]
    for path in paths:
        path.parent.mkdir(parents=True)
        path.write_bytes(FIRST)
    settings_ = load_settings(environ={}, collector={"paths": [str(tmp_path / "pods" / "*" / "*" / "*.log")],
                                                     "checkpoint_dir": str(tmp_path / "ckpt")}).collector
    recorder = Recorder()
    batcher = PartitionBatcher(recorder, 60.0, 1, 1 << 30, 1)  # type: ignore[arg-type]
    waited: list[int] = []
    publish = batcher.publish

    async def counted(chunk: Any, text_size: int | None = None) -> Any:
        waited.append(chunk.line_count)
        return await publish(chunk, text_size)

    batcher.publish = counted  # type: ignore[method-assign]
    collector = FileCollector(settings_, batcher, FileMetrics())
    try:
        collector.apply_scan(discover(settings_.paths, []))
        await collector.pump()  # the first lines: the streams are saved first, so these take `publish`
        await batcher.stop()
        collector.settle_acks()
        waited.clear()
        line = STAMP + b" stdout F appended\n"
        for path in paths:
            with open(path, "ab") as handle:
                handle.write(line)
        await collector.pump()
        await batcher.stop()
        collector.settle_acks()
        assert waited == [1]  # the second visit's chunk waited for room; the first was handed over at once
        sent = b"".join(recorder.records)
        assert sent.count(b"appended") == 2 and sent.count(b"the first line") == 2
        for tailed in collector.files.values():
            assert collector.checkpoints[tailed.stream_id]["offset"] == len(FIRST) + len(line)
    finally:
        collector.close()


def test_an_appended_run_of_common_lines_is_read_in_one_step_and_anything_else_is_left_to_the_general_path(
        tmp_path: Path) -> None:
    path = tmp_path / "0.log"
    path.write_bytes(FIRST)
    tailed = follow(path, 1000, multiline=False)

    def visit(max_lines: int = 1000) -> WireLines | None:
        """A pass's look at the file as FileCollector._pump_file takes it: the truncation check, then one step."""
        assert tailed.check_truncation() is False
        return tailed.take_prefetched(max_lines, 1 << 20)

    assert visit() is None  # nothing read yet: the general path takes the first read
    assert len(tailed.read_blocks(1000, 1 << 20)) == 1
    line = STAMP + b' stdout F {"msg": "caf\xc3\xa9"}\n'

    def append(data: bytes) -> None:
        with open(path, "ab") as handle:
            handle.write(data)

    append(line * 3)
    got = visit()
    assert got is not None and got.count == 3 and tailed.read_offset == len(FIRST) + 3 * len(line)
    reference: list[Any] = []
    assert scan is not None
    scan.cri_lines(line * 3, 0, 3 * len(line), len(FIRST), 1000, "stdout", "stderr", reference)
    assert got.pieces == wire_lines(reference).pieces and tailed.at_end
    nothing = visit()
    assert nothing is not None and nothing.count == 0 and tailed.read_offset == len(FIRST) + 3 * len(line)
    offset = tailed.read_offset
    for refused, rest in ((line[:20], line[20:]),  # a partial line (then its end)
                          (STAMP + b" stdout P a partial line\n", line),  # a line the scan does not answer for
                          (line * 2, b"")):  # (with chunk_lines 1 below) more than one chunk
        append(refused)
        assert visit(1) is None and tailed.read_offset == offset  # nothing taken: read_blocks takes it
        while tailed.read_blocks(1, 1 << 20):
            pass
        append(rest)
        while tailed.read_blocks(1, 1 << 20):
            pass
        assert tailed.read_whole
        offset = tailed.read_offset
    # copytruncate, then regrown past the offset read: other bytes before it, whole common lines after it
    head = STAMP + b" stdout F "
    other = head + b"x" * (offset - len(FIRST) - len(head) - 1) + b"\n"
    path.write_bytes(FIRST + other + line * 2)
    assert tailed.check_truncation() is True
    assert tailed.take_prefetched(1000, 1 << 20) is None and tailed.read_offset == 0


def visit_state(tailed: TailedFile) -> tuple[Any, ...]:
    """What a visit leaves in a followed file that the next one reads."""
    return (tailed.read_offset, tailed.size_seen, tailed.at_end, tailed._tail, tailed._tail_at, tailed._prefetch,
            tailed._prefetch_at, tailed.generation, tailed.fingerprint, tailed._leftover, dict(tailed._resumes))


def general_visit(tailed: TailedFile, max_lines: int, max_bytes: int) -> list[Any]:
    """A visit as FileCollector._pump_file takes it without the one-step read: the truncation check, then
    take_prefetched, else read_blocks to the end (what each block holds, and where it resumes)."""
    truncated = tailed.check_truncation()
    appended = tailed.take_prefetched(max_lines, max_bytes)
    if appended is not None:
        return [truncated, "one step", appended.pieces, appended.count, appended.size]
    blocks: list[Any] = [truncated]
    while read := tailed.read_blocks(max_lines, max_bytes):
        blocks += [(b.lines.pieces, b.lines.count, b.lines.size) if isinstance(b.lines, WireLines) else b.lines
                   for b in read]
        blocks += [b.resume for b in read]
        if tailed.at_end:
            break
    return blocks


changes = st.one_of(
    st.lists(common_lines, min_size=1, max_size=5).map(lambda ls: ("append", b"".join(line + b"\n" for line in ls))),
    st.lists(any_lines, min_size=1, max_size=3).map(lambda ls: ("append", b"".join(line + b"\n" for line in ls))),
    common_lines.map(lambda line: ("append", line[:45])),  # a partial line: its end comes with the next change
    st.just(("append", b"")),  # nothing written between two visits
    st.integers(0, 120).map(lambda keep: ("rewrite", keep)))  # copytruncate and regrown, same first line


@settings(max_examples=300, deadline=None)
@given(st.lists(changes, min_size=1, max_size=12), st.integers(1, 6), st.integers(1, 600))
def test_the_one_step_visit_leaves_what_the_truncation_check_and_take_prefetched_leave(
        steps: list[tuple[str, Any]], max_lines: int, max_bytes: int) -> None:
    """TailedFile.take_appended (the C `visit`) against the two Python steps it stands for, over any sequence of
    appends, partial lines, lines the scan leaves to the reference and copytruncates regrown past the offset:
    where it takes the visit it returns what they return and leaves the file as they leave it; where it
    declines, it changed nothing, and the general path that follows gives what it gives alone."""
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "0.log"
        path.write_bytes(FIRST)
        one_step, reference = follow(path, 1000, multiline=False), follow(path, 1000, multiline=False)
        try:
            for kind, value in steps:
                if kind == "append":
                    with open(path, "ab") as handle:
                        handle.write(value)
                else:  # the same first line, then other bytes: the bytes read last are no longer there
                    data = path.read_bytes()
                    path.write_bytes(FIRST + b"-" * value + data[len(FIRST) + value:] + b"\n")
                before = visit_state(one_step)
                taken = one_step.take_appended(max_lines, max_bytes)
                expected = general_visit(reference, max_lines, max_bytes)
                if taken is None:
                    assert visit_state(one_step) == before
                    assert general_visit(one_step, max_lines, max_bytes) == expected
                else:
                    assert [False, "one step", taken.pieces, taken.count, taken.size] == expected
                assert visit_state(one_step) == visit_state(reference)
        finally:
            one_step.close()
            reference.close()


def test_the_one_step_visit_takes_the_usual_visits_and_declines_the_rest(tmp_path: Path) -> None:
    path = tmp_path / "0.log"
    path.write_bytes(FIRST)
    tailed = follow(path, 1000, multiline=False)
    assert tailed.take_appended(1000, 1 << 20) is None  # nothing read yet: no bytes to check
    assert len(tailed.read_blocks(1000, 1 << 20)) == 1
    nothing = tailed.take_appended(1000, 1 << 20)
    assert nothing is not None and nothing.count == 0 and tailed.read_offset == len(FIRST)
    line = STAMP + b' stdout F {"msg": "caf\xc3\xa9"}\n'
    with open(path, "ab") as handle:
        handle.write(line * 2)
    taken = tailed.take_appended(1000, 1 << 20)
    assert taken is not None and taken.count == 2 and tailed.read_offset == len(FIRST) + 2 * len(line)
    with open(path, "ab") as handle:
        handle.write(line * (PREFETCH_BYTES // len(line) + 1))  # more than one look reads
    assert tailed.take_appended(1 << 20, 1 << 30) is None and tailed.read_offset == len(FIRST) + 2 * len(line)
    tailed.close()
