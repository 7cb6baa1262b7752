"""Chunk records: versioned, compressed or not, and metadata spliced without re-parsing."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.codec import compressor
from core.errors import ChunkFormatError
from core.models import (
    ParsedChunk,
    RawBatch,
    RawChunk,
    decode_raw_chunks,
    line_id,
    make_raw_line,
    raw_line_bytes,
    splice_metadata,
    wire_lines,
)


@pytest.mark.parametrize("codec", ["none", "lz4", "zstd"])
def test_raw_chunk_round_trip_with_every_codec(codec: str) -> None:
    chunk = RawChunk({"kind": "file"}, "sid", 5, [make_raw_line(0, b"hello"), make_raw_line(6, b"\xffbad")])
    decoded = RawChunk.decode(compressor(codec)(chunk.encode()))
    assert decoded == chunk
    assert raw_line_bytes(decoded.lines[1]) == b"\xffbad"


@pytest.mark.parametrize("codec", ["none", "lz4", "zstd"])
def test_decode_raw_chunks_reads_version_1_and_version_2(codec: str) -> None:
    one = RawChunk({"kind": "file", "path": "/a"}, "file:1:1:x:0", 5,
                   [make_raw_line(0, b"a"), make_raw_line(2, b"\xff")])
    two = RawChunk({"kind": "file", "path": "/b"}, "file:1:2:y:0", 5, [make_raw_line(7, b"b", "stderr", 9, 2)])
    assert decode_raw_chunks(compressor(codec)(one.encode())) == [one]
    batch = RawBatch(5, [one, two])
    assert orjson.loads(batch.encode())["v"] == 2
    assert decode_raw_chunks(compressor(codec)(batch.encode())) == [one, two]
    assert decode_raw_chunks(RawBatch(5, []).encode()) == []


def test_a_multi_stream_record_is_not_read_as_one_stream() -> None:
    batch = RawBatch(5, [RawChunk({}, "a", 5, []), RawChunk({}, "b", 5, [])])
    with pytest.raises(ChunkFormatError, match="2 streams"):
        RawChunk.decode(batch.encode())


@pytest.mark.parametrize("record", [
    b'{"v":2,"t":"raw","ct":0}',
    b'{"v":2,"t":"raw","ct":0,"segs":{}}',
    b'{"v":2,"t":"raw","ct":0,"segs":[5]}',
    b'{"v":2,"t":"raw","ct":0,"segs":[{"src":{},"sid":"s"}]}',
    b'{"v":2,"t":"raw","ct":0,"segs":[{"src":{},"sid":1,"lines":[]}]}',
    b'{"v":2,"t":"raw","ct":0,"segs":[{"src":[],"sid":"s","lines":[]}]}',
    b'{"v":2,"t":"raw","ct":"0","segs":[{"src":{},"sid":"s","lines":[]}]}',
    b'{"v":2,"t":"raw","ct":"0","segs":[]}',
    b'{"v":2,"t":"raw","ct":99999999999999999999,"segs":[{"src":{},"sid":"s","lines":[]}]}',
    b'{"v":2,"t":"raw","segs":[{"src":{},"sid":"s","lines":[]}]}',
    b'{"v":2,"t":"parsed","srcs":[],"lines":[]}',
    b'{"v":3,"t":"raw","ct":0,"segs":[]}',
])
def test_a_hostile_multi_stream_record_is_a_chunk_format_error(record: bytes) -> None:
    with pytest.raises(ChunkFormatError):
        decode_raw_chunks(record)


def test_unknown_schema_version_is_a_clear_error() -> None:
    with pytest.raises(ChunkFormatError, match="version 99 is not supported"):
        RawChunk.decode(b'{"v":99,"t":"raw"}')
    with pytest.raises(ChunkFormatError, match="not JSON"):
        RawChunk.decode(b"garbage")


def test_line_id_is_stable_and_distinct() -> None:
    assert line_id("s", 1) == line_id("s", 1) != line_id("s", 2) != line_id("t", 1)


@pytest.mark.parametrize("text", ['{"a":1}', '{ "a" : [1,2] }', "{}", '{"logweave":"user value","b":2}'])
def test_splice_metadata_keeps_fields_and_adds_reserved_key(text: str) -> None:
    doc = orjson.loads(splice_metadata(text, "logweave", {"lid": "x"}))
    original = orjson.loads(text)
    original.pop("logweave", None)
    assert doc.pop("logweave") == {"lid": "x"}
    assert doc == original


@pytest.mark.parametrize("record", [
    b'{"v":1,"t":"raw","src":{},"sid":"s","ct":0,"lines":5}',
    b'{"v":1,"t":"raw","src":{},"sid":7,"ct":0,"lines":[]}',
    b'{"v":1,"t":"raw","src":[],"sid":"s","ct":0,"lines":[]}',
    b'{"v":1,"t":"raw","src":{},"sid":"s","ct":"0","lines":[]}',
    b'{"v":1,"t":"raw","src":{},"sid":"s","ct":99999999999999999999,"lines":[]}',
    b"\x04\x22\x4d\x18" + b"corrupt lz4 frame",
    b"\x28\xb5\x2f\xfd" + b"corrupt zstd frame",
])
def test_a_raw_chunk_of_the_wrong_shape_is_a_chunk_format_error(record: bytes) -> None:
    """Found by `make fuzz`: such records decoded, then crashed the parse stage with TypeError (or lz4's
    RuntimeError escaped the decoder), instead of becoming one `bad_chunk` dead letter."""
    with pytest.raises(ChunkFormatError):
        RawChunk.decode(record)
    with pytest.raises(ChunkFormatError):
        decode_raw_chunks(record)


@pytest.mark.parametrize("record", [b'{"v":1,"t":"parsed","srcs":{},"lines":[]}',
                                    b'{"v":1,"t":"parsed","srcs":[],"lines":"x"}'])
def test_a_parsed_chunk_of_the_wrong_shape_is_a_chunk_format_error(record: bytes) -> None:
    with pytest.raises(ChunkFormatError):
        ParsedChunk.decode(record)


entries = st.lists(st.builds(lambda pos, text, stream, ns, flags: [pos, text, stream, ns, flags],
                             st.integers(0, 1 << 40), st.text(max_size=30), st.sampled_from(["stdout", "stderr", ""]),
                             st.integers(-(1 << 63), (1 << 63) - 1), st.integers(0, 15)), max_size=6)
sources = st.dictionaries(st.text(max_size=8), st.text(max_size=12), max_size=4)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(sources, st.text(max_size=20), entries, st.booleans(), st.integers(1, 3)), min_size=1,
                max_size=5), st.integers(-(1 << 63), (1 << 63) - 1))
def test_encoded_lines_make_the_record_orjson_makes(segments: list[Any], collected: int) -> None:
    """A record whose segments hold their lines encoded (WireLines, in any number of pieces) is byte for
    byte the record of the same lines as entries, and decodes to them."""
    plain, wired = [], []
    for source, sid, lines, encode, pieces in segments:
        plain.append(RawChunk(source, sid, collected, lines))
        if encode and lines:
            cut = len(lines) * (pieces - 1) // pieces
            wire = wire_lines(lines[:cut])
            wire.extend(wire_lines(lines[cut:]))
            wired.append(RawChunk(source, sid, collected, wire=wire))
        else:
            wired.append(RawChunk(source, sid, collected, lines))
    assert RawBatch(collected, wired).encode() == RawBatch(collected, plain).encode()
    assert [c.entries() for c in decode_raw_chunks(RawBatch(collected, wired).encode())] == [c.lines for c in plain]
    for chunk, reference in zip(wired, plain, strict=True):
        assert chunk.encode() == reference.encode()
        assert (chunk.line_count, chunk.text_size(), chunk.entries()) == (
            len(reference.lines), sum(len(line[1]) for line in reference.lines), reference.lines)


def test_a_sources_remembered_segment_head_follows_its_stream_id() -> None:
    """A truncated file keeps its source object and gets a new stream id (a new generation)."""
    source = {"kind": "file", "path": "/var/log/pods/ns_pod_uid/app/0.log"}
    lines = [[0, "a \"quoted\" line", "stdout", 1, 0]]
    for sid in ("file:1:2:aa:0", "file:1:2:bb:1", "file:1:2:aa:0"):
        wired = RawBatch(9, [RawChunk(source, sid, 9, wire=wire_lines(lines))]).encode()
        assert wired == RawBatch(9, [RawChunk(source, sid, 9, lines)]).encode()
