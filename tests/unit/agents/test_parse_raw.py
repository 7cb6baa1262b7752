"""The parse stage reading a raw record's bytes (`LineParser.parse_raw`, agents/_rawsplit.h `split_raw`)
gives byte for byte the records of the decoded path, or declines.

Differential: every generated `logs.raw` record (version 1 or 2, many streams, the line generator of the
C scan's own differential test) is parsed from its bytes, and decoded and parsed by the reference alone;
each segment's record per partition must encode to the same bytes and the dead letters must be equal.
Records that are not exactly as orjson writes them (white space, other escapes, other key order, a field
of another type, cut or flipped bytes) must be declined (None) or, when the bytes still mean an orjson
record, give the reference's answer; declining must leave nothing behind.
"""

from __future__ import annotations

import os
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agents.encoded_lines import EncodedChunk
from agents.line_parser import LineParser
from core.errors import ChunkFormatError
from core.models import FLAG_BASE64, FLAG_TRUNCATED, ParsedChunk, RawBatch, RawChunk, raw_chunks_of
from core.native import native_module
from core.settings import ParseSettings
from tests.bench.bench_worker import make_doc
from tests.unit.agents.test_linescan import parse_settings, raw_lines, reference_only

pytest.importorskip("agents._linescan", reason="C extension not built (pure-Python install)")
if native_module("line_scan") is None:
    pytest.skip("the C scan is off in this process (LOGWEAVE_PURE=1)", allow_module_level=True)

EXAMPLES = int(os.environ.get("LINESCAN_EXAMPLES", "200"))  # a record holds many lines: 200 make ~1,000 of them
COLLECTED = 1_700_000_000_000_000_000
SOURCES = [{"kind": "file", "pod": "p"}, {"kind": "pod", "namespace": "n\u00e9", "container": "c\"q"}, {}]
Outputs = list[tuple[dict[str, Any], str, dict[int, bytes]]]


def from_bytes(parser: LineParser, data: bytes, partitions: int) -> tuple[Outputs, list[dict[str, Any]]] | None:
    got = parser.parse_raw(data, partitions)
    if got is None:
        return None
    out = [(source, sid, {part: EncodedChunk([source], [(0, lines)]).encode() for part, lines in encoded.items()})
           for source, sid, encoded in got.segments]
    return out, [d.as_dict() for d in got.dead]


def decoded(parser: LineParser, data: bytes, partitions: int) -> tuple[Outputs, list[dict[str, Any]]]:
    out: Outputs = []
    dead: list[dict[str, Any]] = []
    with reference_only(parser):
        for chunk in raw_chunks_of(data):
            parts, lost = parser.parse_chunk(chunk, partitions)
            out.append((chunk.source, chunk.stream_id,
                        {part: ParsedChunk([chunk.source], parsed.lines).encode() for part, parsed in parts.items()}))
            dead += [d.as_dict() for d in lost]
    return out, dead


def record(segments: list[tuple[int, str, list[list[Any]]]], version: int) -> bytes:
    chunks = [RawChunk(SOURCES[source], sid, COLLECTED, lines) for source, sid, lines in segments]
    return chunks[0].encode() if version == 1 else RawBatch(COLLECTED, chunks).encode()


segments = st.lists(st.tuples(st.integers(0, len(SOURCES) - 1), st.sampled_from(["file:1:2:x:0", "s\u00e9", "t\"q"]),
                              st.lists(raw_lines, max_size=8)), min_size=1, max_size=3)


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(segments, st.sampled_from([1, 2]), parse_settings, st.integers(1, 8))
def test_records_equal_the_decoded_path(segs: list[tuple[int, str, list[list[Any]]]], version: int,
                                        parse: ParseSettings, partitions: int) -> None:
    data = record(segs[:1] if version == 1 else segs, version)
    parser = LineParser(parse)
    got = from_bytes(parser, data, partitions)
    assert got is not None, "orjson's own record is read"
    assert got == decoded(parser, data, partitions)


# Spellings of the same record that orjson would not write, and broken ones.
def respelled(data: bytes, how: str, at: int) -> bytes:
    if how == "space":
        return data[:at] + b" " + data[at:]
    if how == "cut":
        return data[:at]
    if how == "flip":
        return data[:at] + bytes([data[at] ^ 0x21]) + data[at + 1:]
    if how == "slash":  # "\/" is a legal escape orjson never writes
        return data.replace(b"/", b"\\/", 1)
    if how == "unicode":  # "\u0041" for "A"
        return data.replace(b"A", b"\\u0041", 1)
    if how == "reorder":
        doc = orjson.loads(data)
        return orjson.dumps(dict(reversed(list(doc.items()))))
    if how == "float":
        return data.replace(b',0,0]', b',0.0,0]', 1)
    raise AssertionError(how)


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(segments, st.sampled_from([1, 2]),
       st.sampled_from(["space", "cut", "flip", "slash", "unicode", "reorder", "float"]), st.integers(0, 10**6))
def test_other_spellings_are_declined_or_equal(segs: list[tuple[int, str, list[list[Any]]]], version: int,
                                               how: str, where: int) -> None:
    data = record(segs[:1] if version == 1 else segs, version)
    data = respelled(data, how, where % len(data))
    parser = LineParser(ParseSettings())
    got = from_bytes(parser, data, 4)
    if got is None:
        return
    try:
        expected = decoded(parser, data, 4)
    except ChunkFormatError:
        pytest.fail("a record the decoded path refuses was read")
    assert got == expected


@pytest.mark.parametrize(("data", "why"), [
    (b'{"v":1,"t":"raw","src":{},"sid":"s","ct":1,"lines":[[0,"{}","",0,0]] }', "white space"),
    (b'{"v":1,"t":"raw","sid":"s","src":{},"ct":1,"lines":[]}', "key order"),
    (b'{"v":1,"t":"raw","src":[],"sid":"s","ct":1,"lines":[]}', "source not an object"),
    (b'{"v":1,"t":"raw","src":{},"sid":"s","ct":1,"lines":[[0,"{}","",0]]}', "four fields"),
    (b'{"v":1,"t":"raw","src":{},"sid":"s","ct":1,"lines":[[0,"{}",null,0,0]]}', "stream not a string"),
    (b'{"v":1,"t":"raw","src":{},"sid":"s","ct":99999999999999999999,"lines":[]}', "ct past 64 bits"),
    (b'{"v":1,"t":"raw","src":{},"sid":"s","ct":1,"lines":[[01,"{}","",0,0]]}', "leading zero"),
    (b'{"v":2,"t":"raw","ct":1,"segs":[{"src":{},"sid":"s","lines":[]},]}', "trailing comma"),
    (b'{"v":3,"t":"raw","ct":1,"segs":[]}', "unknown version"),
    (b'{"v":1,"t":"raw","src":{},"sid":"s\xff","ct":1,"lines":[]}', "invalid UTF-8"),
])
def test_hand_written_declines(data: bytes, why: str) -> None:
    assert LineParser(ParseSettings()).parse_raw(data, 4) is None, why


def test_a_declined_record_leaves_no_dead_letter_behind() -> None:
    """A line handed to the reference (a dead letter) before a malformed entry further on: the record
    is declined, and the dead letter is not kept twice once the decoded path parses it."""
    good = [0, make_doc(0, 1).decode(), "", 0, 0]
    data = RawChunk(SOURCES[0], "s", COLLECTED, [[1, "not json", "", 0, 0], good]).encode()
    broken = data.replace(b"]]}", b"] ]}")
    parser = LineParser(ParseSettings())
    assert parser.parse_raw(broken, 4) is None
    got = parser.parse_raw(data, 4)
    assert got is not None and [d.reason for d in got.dead] == ["not_json"]


def test_common_lines_take_no_reference_and_sources_are_shared() -> None:
    lines = [[n, make_doc(n, 1_749_543_941_000_000_000 + n).decode(), "stdout", 0, 0] for n in range(300)]
    data = RawBatch(COLLECTED, [RawChunk(SOURCES[0], f"s{k}", COLLECTED, lines[k::3]) for k in range(3)]).encode()
    parser = LineParser(ParseSettings())
    parser.line_parsers = None  # type: ignore[assignment]  # any line handed back would fail
    first, second = parser.parse_raw(data, 4), parser.parse_raw(data, 4)
    assert first is not None and second is not None
    assert first.line_count == 300 and sum(lines.count for _, _, out in first.segments for lines in out.values()) == 300
    assert first.segments[0][0] is second.segments[2][0], "one source object per spelling"


def test_sources_with_text_parsers_are_decoded() -> None:
    parse = ParseSettings(sources=[{"parsers": ["nginx"], "namespaces": ["web"]}])
    web = RawChunk({"namespace": "web"}, "s", COLLECTED, [[0, "GET /", "", 0, 0]])
    api = RawChunk({"namespace": "api"}, "t", COLLECTED, [[0, "{}", "", 0, 0]])
    assert LineParser(parse).parse_raw(RawBatch(COLLECTED, [api, web]).encode(), 4) is None
    assert LineParser(parse).parse_raw(api.encode(), 4) is not None


# The raw text is checked and unescaped sixteen bytes at a time, and the line's strings are skipped sixteen
# bytes at a time: a stop (an escape, a quote, a control character, a multi-byte character) at any offset of
# a block must be found exactly where the reference finds it.
@pytest.mark.parametrize("offset", range(34))
def test_stops_at_every_block_offset(offset: int) -> None:
    texts = []
    for stop in ['\\"', "\\\\", "\\n", "\\u00e9", "\u00e9", "\u20ac", "\U0001f600", "\x7f", "\x01", '"', "\\", "\t"]:
        body = "a" * offset + stop + "b" * (33 - offset)
        texts += [f'{{"traceId":"t{body}","msg":"{body}","service":"s{body}","level":"info"}}',
                  f'{{"m{body}":1,"traceId":"t","time":"2025-06-10T08:25:41.5Z"}}',
                  f'{{"traceId":"{body}"}}', f"{body}{{}}"[offset:]]
    data = RawChunk(SOURCES[1], "s", COLLECTED, [[n, text, "stdout", 0, 0] for n, text in enumerate(texts)]).encode()
    parser = LineParser(ParseSettings())
    assert from_bytes(parser, data, 4) == decoded(parser, data, 4)


# logfmt sources: their common lines are read in C as their records' JSON (agents/parsers/_logfmt.h), every
# other line goes to the source's chain; the records must equal the decoded path's, which runs the chain alone.
LOGFMT_SOURCES = [{"kind": "file", "annotations": {"logweave.io/parser": "logfmt"}},
                  {"kind": "file", "annotations": {"logweave.io/parser": "json,logfmt"}},
                  {"kind": "file", "annotations": {"logweave.io/parser": "logfmt,json"}}, {"kind": "file"}]
LOGFMT_PIECES = ["a", "k=v", "=", '"', " ", "\t", "\\", "{", "}", "é", "\r\n", 'msg="x y"', "traceId=t-1",
                 "trace_id=t-2", "time=2025-06-10T08:25:41.5Z", "time=1749543941", "time=bad", "level=WARN",
                 "service=web", "ts=2025-06-10T08:25:41Z", "severity=error", "app=shop"]
logfmt_lines = st.builds(lambda text, flags, source_ns, pos: [pos, text, "stdout", source_ns, flags],
                         st.one_of(st.lists(st.sampled_from(LOGFMT_PIECES), max_size=10).map("".join),
                                   st.sampled_from(['{"traceId":"j","level":"info"}', "{a=1}", '{"x":', "plain text"])),
                         st.sampled_from([0, 0, 0, FLAG_TRUNCATED, FLAG_BASE64]),
                         st.sampled_from([0, 1_700_000_000_123_456_789]), st.integers(0, 2**40))
logfmt_settings = st.sampled_from([
    ParseSettings(), ParseSettings(untraced="pass"), ParseSettings(untraced="pass", max_line_bytes=64),
    ParseSettings(untraced="pass", time_fields=["ts"], level_fields=["severity"], service_fields=["app"],
                  message_fields=["msg"])])


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.integers(0, len(LOGFMT_SOURCES) - 1), st.lists(logfmt_lines, max_size=8)),
                min_size=1, max_size=3), st.sampled_from([1, 2]), logfmt_settings, st.integers(1, 8))
def test_logfmt_records_equal_the_decoded_path(segs: list[tuple[int, list[list[Any]]]], version: int,
                                               parse: ParseSettings, partitions: int) -> None:
    chunks = [RawChunk(LOGFMT_SOURCES[source], f"s{n}", COLLECTED, lines) for n, (source, lines) in enumerate(segs)]
    data = chunks[0].encode() if version == 1 else RawBatch(COLLECTED, chunks).encode()
    parser = LineParser(parse)
    got = from_bytes(parser, data, partitions)
    assert got is not None, "a record of logfmt and JSON sources is read"
    assert got == decoded(parser, data, partitions)


def test_logfmt_lines_are_read_without_the_chain() -> None:
    """The common logfmt line takes no Python: the chain is never built for a record of such lines."""
    lines = [[n, f'time=2025-06-10T08:25:41.5Z level=info msg="a b" traceId=t-{n % 7} n={n}', "stdout", 0, 0]
             for n in range(50)]
    parser = LineParser(ParseSettings())
    built: list[object] = []
    original = parser.line_parsers
    parser.line_parsers = lambda *args: built.append(args) or original(*args)  # type: ignore[method-assign]
    got = parser.parse_raw(RawChunk(LOGFMT_SOURCES[0], "s", COLLECTED, lines).encode(), 4)
    assert got is not None and got.line_count == 50 and not built and not got.dead
    entries = [e for _, _, out in got.segments for encoded in out.values() for e in encoded.bounds()]
    assert len(entries) == 50
