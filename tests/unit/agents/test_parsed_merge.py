"""Merging the parse outputs of many raw chunks: one chunk per partition, lines moved, order kept."""

from __future__ import annotations

import orjson

from agents.encoded_lines import EncodedChunk, EncodedLines
from agents.line_parser import LineParser
from agents.parsed_merge import MergedChunks
from core.models import P_POS, P_SID, P_SRC, ParsedChunk, RawChunk, make_raw_line
from core.settings import ParseSettings

PARSER = LineParser(ParseSettings())


def raw(stream: str, first: int, count: int, source: dict[str, str] | None = None, pad: str = "") -> RawChunk:
    lines = [make_raw_line(n, orjson.dumps({"time": "2025-06-10T08:25:41.000000001Z", "traceId": f"t{n % 9}",
                                            "msg": f"m{n}{pad}", "n": n}), "stdout")
             for n in range(first, first + count)]
    return RawChunk(source or {"kind": "file", "pod": stream}, stream, 1, lines)


def add(merged: MergedChunks, chunk: RawChunk) -> None:
    outputs, dead = PARSER.parse_chunk(chunk, 4)
    assert not dead
    merged.add(chunk.source, chunk.stream_id,
               {part: EncodedLines.from_entries(out.lines) for part, out in outputs.items()})


def decoded(chunks: list[tuple[int, EncodedChunk]]) -> dict[int, list[ParsedChunk]]:
    out: dict[int, list[ParsedChunk]] = {}
    for partition, chunk in chunks:
        out.setdefault(partition, []).append(ParsedChunk.decode(chunk.encode()))
    return out


def test_many_small_chunks_make_one_chunk_per_partition_with_each_source_once() -> None:
    merged = MergedChunks(1_000_000, 10_000)
    for record in range(30):  # 10 streams, 3 records each, 3 lines per record
        add(merged, raw(f"s{record % 10}", record * 3, 3))
    out = decoded(merged.take())
    assert all(len(chunks) == 1 for chunks in out.values()), "one chunk per partition"
    lines = 0
    for (chunk,) in out.values():
        assert len(chunk.sources) == len({line[P_SID] for line in chunk.lines}), "a stream's source listed once"
        for line in chunk.lines:
            assert chunk.sources[line[P_SRC]] == {"kind": "file", "pod": line[P_SID]}, "line points at its source"
        for stream in {line[P_SID] for line in chunk.lines}:
            positions = [line[P_POS] for line in chunk.lines if line[P_SID] == stream]
            assert positions == sorted(positions), "a stream's lines stay in position order"
        lines += len(chunk.lines)
    assert lines == 90
    assert merged.take() == [] and merged.lines == 0


def test_a_stream_whose_source_changes_gets_a_new_source_entry() -> None:
    merged = MergedChunks(1_000_000, 10_000)
    add(merged, raw("s", 0, 9, {"pod": "a"}))
    add(merged, raw("s", 9, 9, {"pod": "b"}))
    chunks = [ParsedChunk.decode(chunk.encode()) for _, chunk in merged.take()]
    assert any(len(chunk.sources) == 2 for chunk in chunks)
    for chunk in chunks:
        for line in chunk.lines:
            assert chunk.sources[line[P_SRC]] == ({"pod": "a"} if line[P_POS] < 9 else {"pod": "b"})


def test_size_and_line_bounds_split_in_order() -> None:
    merged = MergedChunks(20_000, 40)
    for record in range(20):
        add(merged, raw("s", record * 10, 10))
    assert merged.ready, "full chunks are ready before the batch ends"
    add(merged, raw("big", 1000, 200, pad="x" * 300))  # one chunk's lines alone exceed the size bound
    encoded = merged.take()
    for _, chunk in encoded:
        assert len(chunk.encode()) <= 20_000, "a record stays within the size bound"
    chunks = [(partition, ParsedChunk.decode(chunk.encode())) for partition, chunk in encoded]
    assert all(len(chunk.lines) <= 40 for _, chunk in chunks)
    for partition in {p for p, _ in chunks}:
        for stream in ("s", "big"):
            positions = [line[P_POS] for p, c in chunks if p == partition for line in c.lines if line[P_SID] == stream]
            assert positions == sorted(positions)
    assert sum(len(c.lines) for _, c in chunks) == 400
