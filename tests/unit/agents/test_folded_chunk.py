"""Large parsed records are folded from their bytes (agents/folded_chunk.py) with the decoded path's result.

Differential: the same sequence of records goes through two groupers on two in-memory stores, one the
way the group agent reads them now (`read_parsed`, then `process_folded`, falling back to the lines),
one decoding every record (`process_chunk`); the stores and what reached the sinks must be equal, with
replays, a closed trace seen again and a stream re-sent under its old positions among the records.
"""

from __future__ import annotations

from typing import Any

import pytest

import agents.grouper as grouper_module
from agents.folded_chunk import FOLD_ENCODED_BYTES, FoldedChunk, read_parsed
from agents.grouper import TraceGrouper
from core.codec import compressor
from core.errors import ChunkFormatError
from core.models import ParsedChunk
from core.native import native_module
from tests.unit.agents.test_grouper import FAR, MemoryTraceTable, S, make

if native_module("trace_fold") is None or native_module("line_scan") is None:
    pytest.skip("the C loops are off in this process (LOGWEAVE_PURE=1 or not built)", allow_module_level=True)

COMPRESS = compressor("lz4")
SOURCES = [{"kind": "file", "pod": "p1"}, {"kind": "file", "pod": "p2"}]


def lines_of(stream: str, first: int, count: int, traces: int, start_s: int = 100) -> list[list[Any]]:
    """`count` ~270-byte JSON lines of `stream` from position `first`, spread over `traces` trace ids."""
    return [[n % 2, stream, first + n, (start_s + n) * S, f"trace-{(first + n) % traces}",
             "error" if n % 7 == 0 else "info", f"svc{n % 3}",
             f'{{"msg":"step {n} \\"done\\"","pad":"{"x" * 220}"}}', "stdout"] for n in range(count)]


def record(lines: list[list[Any]], ordered: bool = True) -> bytes:
    return COMPRESS(ParsedChunk(SOURCES, lines, ordered, 1_749_543_941 * S).encode())


def test_a_large_ordered_record_is_folded_and_anything_else_decoded() -> None:
    large = record(lines_of("s1", 0, 400, 40))
    read = read_parsed(large, 5)
    assert isinstance(read, FoldedChunk) and read.line_count == 400
    assert read.sources == SOURCES and read.collected_ns == 1_749_543_941 * S
    assert read.encoded.streams == [["s1", 0, 399]]
    assert read.lines == ParsedChunk.decode(large).lines  # decoded on demand, the same lines
    assert len(ParsedChunk.decode(record(lines_of("s1", 0, 400, 40))).encode()) >= FOLD_ENCODED_BYTES
    assert type(read_parsed(record(lines_of("s1", 0, 20, 4)), 5)) is ParsedChunk  # small: merged with others
    assert type(read_parsed(record(lines_of("s1", 0, 400, 40), ordered=False), 5)) is ParsedChunk
    assert type(read_parsed(record([*lines_of("s1", 5, 300, 9), *lines_of("s1", 0, 3, 9)]), 5)) is ParsedChunk
    with pytest.raises(ChunkFormatError, match="not JSON"):
        read_parsed(COMPRESS(b"[" * FOLD_ENCODED_BYTES), 5)


def apply_both(records: list[tuple[int, bytes]], monkeypatch: pytest.MonkeyPatch,
               **traces: Any) -> tuple[tuple[MemoryTraceTable, list[tuple[str, bytes]], TraceGrouper], ...]:
    """Each record through the group agent's way (folded when it can) and through the decoded way."""
    monkeypatch.setattr(grouper_module.time, "time_ns", lambda: 1_749_543_999 * S)  # both stamp the same times
    folded_table, decoded_table = MemoryTraceTable(), MemoryTraceTable()
    folded, folded_sent, _ = make(folded_table, **traces)
    decoded, decoded_sent, _ = make(decoded_table, **traces)
    took_folded = 0
    for partition, value in records:
        chunk = read_parsed(value, folded.traces.sample_lines)
        count = folded.process_folded(partition, chunk, value) if isinstance(chunk, FoldedChunk) else None
        took_folded += count is not None
        if count is None:
            count = folded.process_chunk(partition, chunk.sources, chunk.lines, value)
        plain = ParsedChunk.decode(value)
        assert count == decoded.process_chunk(partition, plain.sources, plain.lines, value)
    assert took_folded, "no record took the folded path"
    return (folded_table, folded_sent, folded), (decoded_table, decoded_sent, decoded)


def test_the_folded_path_stores_and_sends_what_the_decoded_path_does(monkeypatch: pytest.MonkeyPatch) -> None:
    first = record([*lines_of("s1", 0, 300, 30), *lines_of("s2", 0, 200, 25)])
    records = [
        (0, first),
        (0, record(lines_of("s1", 300, 400, 30))),  # the same traces again: their stored states grow
        (0, first),  # a re-sent record: every line at or below its stream's mark, deduped line by line
        (0, record([*lines_of("s2", 150, 300, 25), *lines_of("s3", 0, 300, 7)])),  # half of s2 seen before
        (0, record(lines_of("s1", 699, 300, 30))),  # its first line is the stream's last one stored
        (1, record(lines_of("s1", 700, 300, 11))),  # another partition, its own marks
        (0, record(lines_of("s4", 0, 20, 3))),  # small: decoded
    ]
    (folded_table, folded_sent, folded), (decoded_table, decoded_sent, decoded) = apply_both(records, monkeypatch)
    assert folded_table.stores == decoded_table.stores
    assert folded_sent == decoded_sent
    assert folded.open_traces() == decoded.open_traces() > 0
    assert folded.close_overdue(0, now_ns=FAR) == decoded.close_overdue(0, now_ns=FAR) > 0
    assert folded_table.stores == decoded_table.stores


def test_rules_that_route_line_by_line_take_the_lines(monkeypatch: pytest.MonkeyPatch) -> None:
    value = record(lines_of("s1", 0, 400, 40))
    grouper, sent, _ = make(MemoryTraceTable())
    grouper.router.default_all = False  # as with any routing rule
    chunk = read_parsed(value, 5)
    assert isinstance(chunk, FoldedChunk)
    assert grouper.process_folded(0, chunk, value) is None and sent == []
