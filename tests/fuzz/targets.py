"""The fuzz targets: each takes one input of bytes and fails (raises or crashes) only on a real defect.

Every target reads its input through `Reader`, so the same function runs under atheris (`make fuzz`,
coverage-guided, C code under ASan/UBSan) and under hypothesis (the short smoke in `make test`).
- `linescan`: raw chunks through the parse stage twice, the C scan (with the reference as its
  fallback) and the reference alone; both must agree, and neither may raise.
- `parse_raw`: raw records as orjson writes them (version 1 or 2; JSON and logfmt sources), sometimes cut
  or flipped, read from their bytes by the C split (split_raw); where it reads one, its parsed records
  are byte for byte the decoded reference's, with the same dead letters, and the decoder accepts the record.
- `linescan_api`: the C scan's own entry point with hostile arguments (odd line entries, field
  names from generators, a fallback that mutates the list); only a Python exception is allowed.
- `tracefold`: parsed lines of any shape through the C group fold; where it answers, it must equal
  the reference fold.
- `tracefold_raw`: parsed records as orjson writes them, then cut, flipped or replaced by arbitrary bytes,
  through the C fold that reads a record's bytes (fold_raw), sometimes with hostile bounds; where it
  answers, the lines it read are valid JSON and it equals the reference fold of them, and its folds
  opened as new traces in C (new_states, with hostile pods) equal the reference step's states.
- `formats`: the CRI and docker json-file line readers on arbitrary bytes: a tuple or None, never an
  exception.
- `chunks`: RawChunk/ParsedChunk.decode on arbitrary records (plain, lz4, zstd): a chunk or
  ChunkFormatError; a raw chunk that decodes must then parse (lines it cannot use become dead letters).
- `intake`: the intake's C conversion (collectors/intake/_intakefast.c) on arbitrary bytes as syslog
  framing, syslog frames and PackedForward entries; where it answers, it must equal the reference.
- `fieldscan`: the metric rules' C field reader on lines of any shape: where it answers for a line
  orjson decodes, it answers as the decoded line does; its histogram pass on hostile lines, keys and
  series (a callback that clears the lines) raises at most a Python exception.
- `filescan`: the file collector's C scan of CRI lines (collectors/files/_filescan.c) on arbitrary
  bytes, with lines built from CRI pieces, any line limit and sometimes hostile bounds: every line it
  answers for is the reference's common line; bad bounds raise ValueError, nothing else.
- `logfmt`: the logfmt-to-JSON pass (agents/parsers/_logfmt.h, `logfmt_json`) on lines built from logfmt pieces and
  arbitrary text, odd line entries and renamed-key tuples of any length: every line it rewrites is
  `orjson.dumps(parse_logfmt(line))`; every other entry is the same object; bad arguments raise at most
  a Python exception.
"""

from __future__ import annotations

import contextlib
import json
import struct
from collections.abc import Callable, Iterator
from types import ModuleType
from typing import Any

import msgpack
import orjson

import agents.encoded_lines as encoded_lines
import tables.trace_state as trace_state_module
from agents.encoded_lines import EncodedChunk
from agents.line_parser import _EXACT_LEVELS, LineParser
from agents.log_metrics import reference_number
from agents.parsers.logfmt import parse_logfmt
from collectors.files import formats
from collectors.intake.forward import entry_lines
from collectors.intake.forward_messages import decode_message
from collectors.intake.lines import RequestLines
from collectors.intake.syslog_frames import FrameSplitter
from collectors.intake.syslog_parse import parse_syslog
from core.codec import compressor
from core.errors import ChunkFormatError
from core.models import ParsedChunk, RawBatch, RawChunk, decode_raw_chunks, raw_chunks_of
from core.settings import ParseSettings
from tables.trace_state import fold_reference

NAMES = ["traceId", "trace_id", "time", "ts", "level", "lvl", "service", "app", "msg", "trace.id", "a.b", "", "x"]
TOKENS = ['{', '}', '[', ']', ',', ':', '"', '\\', '\\u00e9', '\\ud800', '"traceId"', '"time"', '"level"',
          '"service"', '"ts"', '"2026-12-02T10:00:00.123456789Z"', '"1970-01-01T00:00:00+01:00"',
          '"9999-12-31T23:59:60Z"',
          '"2024-02-29T24:00:00Z"', '1733133600', '1733133600123', '-9223372036854775808', '99999999999999999999',
          '1e400', '-0', '0.5', 'true', 'false', 'null', '"info"', '"WARN"', '"Error"', '50', '-1', ' ', '\n', '\t',
          '"t-1"', '"t\\u0001"', '"é"', '"\U0001f600"', '\x00', '"a.b"', '{"id":"x"}']


class Reader:
    """Deterministic choices drawn from the input bytes; an exhausted input yields zeros."""

    def __init__(self, data: bytes) -> None:
        self.data, self.at = data, 0

    def byte(self) -> int:
        if self.at >= len(self.data):
            return 0
        self.at += 1
        return self.data[self.at - 1]

    def int(self, low: int, high: int) -> int:
        span = high - low + 1
        value = 0
        for _ in range(max(1, (span.bit_length() + 7) // 8)):
            value = value << 8 | self.byte()
        return low + value % span

    def pick(self, options: list[Any]) -> Any:
        return options[self.int(0, len(options) - 1)]

    def bytes(self, most: int) -> bytes:
        size = self.int(0, most)
        chunk = self.data[self.at:self.at + size]
        self.at += len(chunk)
        return chunk

    def text(self, most: int) -> str:
        return self.bytes(most).decode("utf-8", "replace")

    def big_int(self) -> int:
        return self.pick([0, 1, -1, 2**63 - 1, -(2**63), 2**63, 2**70, self.int(-(2**40), 2**40),
                          struct.unpack("<q", bytes(self.byte() for _ in range(8)))[0]])


def json_line(r: Reader) -> str:
    """Mostly well-formed JSON objects with the fields the scan reads, sometimes broken on purpose."""
    fields = []
    for _ in range(r.int(0, 6)):
        key = r.pick(['"traceId"', '"trace_id"', '"time"', '"ts"', '"level"', '"lvl"', '"service"', '"app"',
                      '"msg"', '"trace"', '"trace\\u0049d"', '"a"'])
        value = "".join(r.pick(TOKENS) for _ in range(r.int(1, 3))) if r.byte() < 64 else r.pick(TOKENS[10:])
        fields.append(f"{key}{r.pick([':', ' : ', ':'])}{value}")
    body = "{" + r.pick([",", ", ", ",\n"]).join(fields) + "}"
    mode = r.byte()
    if mode < 24:
        return body[: r.int(0, len(body))]
    if mode < 40:
        return r.text(64)
    if mode < 48:
        return "{" + "[" * r.int(60, 70) + "]" * r.int(60, 70) + "}"
    return body


_PARSERS: dict[tuple[Any, ...], LineParser] = {}


def line_parser(r: Reader) -> LineParser:
    """A parser for settings drawn from the input (cached: building settings costs more than a parse)."""
    def names(default: str) -> tuple[str, ...]:
        return (default, *(r.pick(NAMES) or "x" for _ in range(r.int(0, 2)))) if r.byte() < 200 else (default,)

    key = (names("traceId"), names("time"), names("level"), names("service"),
           r.pick(["auto", "rfc3339", "epoch_s", "epoch_ms"]), r.pick(["deadletter", "pass"]),
           r.pick([64, 1024, 1 << 20]))
    parser = _PARSERS.get(key)
    if parser is None:
        parser = _PARSERS[key] = LineParser(ParseSettings(
            trace_id_fields=list(key[0]), time_fields=list(key[1]), level_fields=list(key[2]),
            service_fields=list(key[3]), time_format=key[4], untraced=key[5], max_line_bytes=key[6]))
    return parser


def raw_line(r: Reader, position: int) -> Any:
    return [position if r.byte() < 250 else r.big_int(), json_line(r), r.pick(["stdout", "stderr", ""]),
            r.big_int() if r.byte() < 40 else 0, r.pick([0, 0, 0, 1, 2, 3])]


def _with_module(owner: Any, attribute: str, module: ModuleType | None) -> Callable[[], Any]:
    saved = getattr(owner, attribute)
    setattr(owner, attribute, module)
    return lambda: setattr(owner, attribute, saved)


def linescan(data: bytes, native: ModuleType) -> None:
    r = Reader(data)
    parser = line_parser(r)
    chunk = RawChunk({"kind": "file"}, r.pick(["s1", "stream-é", ""]), r.big_int() if r.byte() < 30 else 5,
                     [raw_line(r, n) for n in range(r.int(0, 12))])
    partitions = r.int(1, 8)
    restore = _with_module(parser, "_scan", native)
    try:
        fast_out, fast_dead = parser.parse_chunk(chunk, partitions)
    finally:
        restore()
    restore = _with_module(parser, "_scan", None)
    try:
        ref_out, ref_dead = parser.parse_chunk(chunk, partitions)
    finally:
        restore()
    fast = ({p: c.lines for p, c in fast_out.items()}, [d.as_dict() for d in fast_dead])
    ref = ({p: c.lines for p, c in ref_out.items()}, [d.as_dict() for d in ref_dead])
    assert fast == ref, f"C scan and reference disagree on {chunk.lines!r} with {parser.settings!r}"


# sources of the raw split: JSON alone, and logfmt chains (read in C as their records' JSON, agents/_rawsplit.h)
RAW_SOURCES = [{"kind": "file"}, {"pod": "p\u00e9"}, {}, {"annotations": {"logweave.io/parser": "logfmt"}},
               {"annotations": {"logweave.io/parser": "json,logfmt"}}]


def logfmt_text(r: Reader) -> str:
    return "".join(r.pick(LOGFMT_PIECES) for _ in range(r.int(0, 12))) if r.byte() < 200 else r.text(60)


def parse_raw(data: bytes, native: ModuleType) -> None:
    """The raw-bytes split against the decoded reference: a record it reads gives the reference's
    records byte for byte, and nothing the decoded path refuses is read."""
    r = Reader(data)
    parser = line_parser(r)
    segments = [RawChunk(r.pick(RAW_SOURCES), r.pick(["s1", "stream-\u00e9", "", 'q"']), 5,
                         [raw_line(r, n) if r.byte() < 170 else [n, logfmt_text(r), "stdout", 0, r.pick([0, 0, 1])]
                          for n in range(r.int(0, 6))]) for _ in range(r.int(1, 3))]
    collected = r.big_int() if r.byte() < 30 else 5
    try:
        payload = segments[0].encode() if r.byte() < 80 else RawBatch(collected, segments).encode()
    except (TypeError, orjson.JSONEncodeError):  # an int past 64 bits, a lone surrogate
        payload = data
    how = r.byte() % 4
    if how == 1 and payload:
        flipped = bytearray(payload)
        for _ in range(r.int(1, 4)):
            flipped[r.int(0, len(flipped) - 1)] = r.byte()
        payload = bytes(flipped)
    elif how == 2:
        payload = payload[: r.int(0, len(payload))]
    partitions = r.int(1, 8)
    restore = _with_module(parser, "_scan", native)
    restore_join = _with_module(encoded_lines, "_scan", native)
    try:
        read = parser.parse_raw(payload, partitions)
        if read is None:
            return
        fast = [(source, sid, {p: EncodedChunk([source], [(0, lines)]).encode() for p, lines in out.items()})
                for source, sid, out in read.segments]
    finally:
        restore()
        restore_join()
    restore = _with_module(parser, "_scan", None)
    try:
        chunks = raw_chunks_of(payload)  # a ChunkFormatError here: the C read a record the decoder refuses
        ref, dead = [], []
        for chunk in chunks:
            outputs, lost = parser.parse_chunk(chunk, partitions)
            ref.append((chunk.source, chunk.stream_id,
                        {p: ParsedChunk([chunk.source], c.lines).encode() for p, c in outputs.items()}))
            dead += [d.as_dict() for d in lost]
    finally:
        restore()
    assert fast == ref and [d.as_dict() for d in read.dead] == dead, f"raw split and reference disagree on {payload!r}"


def _names(r: Reader) -> Any:
    names = [f"{r.pick(NAMES)}{r.int(0, 9)}" for _ in range(r.int(1, 3))]  # built at run time: not interned
    shape = r.byte() % 4
    if shape == 0:
        return iter(names)
    if shape == 1:
        return (name for name in names)
    return tuple(names) if shape == 2 else names


def linescan_api(data: bytes, native: ModuleType) -> None:
    r = Reader(data)
    lines: list[Any] = []
    for n in range(r.int(0, 8)):
        kind = r.byte() % 8
        if kind == 0:
            lines.append(r.pick([None, 1, "x", b"{}", {"a": 1}, (n, "{}", "", 0, 0)]))
        elif kind == 1:
            lines.append([n, json_line(r), "stdout", 0, 0][: r.int(0, 6)])
        elif kind == 2:
            lines.append([r.big_int(), r.pick([None, 5, b"{}", json_line(r)]), r.pick([None, 1]), r.big_int(),
                          r.big_int()])
        else:
            lines.append([n, json_line(r), "stdout", 0, 0])
    fields = [_names(r) for _ in range(4)]
    mutate = r.byte()

    def slow(raw: Any) -> Any:
        if mutate < 20 and lines:
            lines.pop()
        if mutate < 40:
            return r.pick([None, [0] * 9, [0] * 3, "x", [None, "s", 0, 0, r.pick([None, "", "t", 7]), "", "", "", ""]])
        return None

    with contextlib.suppress(TypeError, ValueError, RuntimeError, OverflowError):  # refused cleanly is fine
        native.split(lines, fields, _EXACT_LEVELS, r.int(-1, 8), r.pick([0, 2, 1 << 20, -1]), r.big_int(),
                     r.pick(["sid", "", 5]), r.byte() & 1, r.pick([0, -1, 1, 1_000_000, 2**62]), slow)


def parsed_line(r: Reader, traces: list[str]) -> Any:
    line = [r.int(0, 3), "sid", r.int(0, 100), r.big_int(), r.pick(traces), r.pick(["", "info", "error", "fatal", "é",
            "warn", "x"]), r.pick(["", "svc", "svc2", None, "é"]), r.text(40), "stdout"]
    if r.byte() < 24:
        line[r.int(0, 8)] = r.pick([None, 1.5, b"x", -1, 2**70, "t", ["l"], "\U0001f600"])
    if r.byte() < 8:
        line = line[: r.int(0, 9)]
    return line


def tracefold(data: bytes, native: ModuleType) -> None:
    r = Reader(data)
    traces = ["t1", "t2", "", "é", "\U0001f600", "t" * 300]
    lines = [parsed_line(r, traces) for _ in range(r.int(0, 16))]
    sample_lines = r.int(0, 5)
    folded = native.fold(lines, sample_lines, trace_state_module._SAMPLE_CHARS, 2 * trace_state_module._MAX_NAMES)
    if folded is None:
        return
    expected = fold_reference(lines, sample_lines)
    assert folded == expected, (lines, folded, expected)


def tracefold_raw(data: bytes, native: ModuleType) -> None:
    r = Reader(data)
    traces = ["t1", "t2", "", "é", 't"q', "t\x01"]
    lines = [parsed_line(r, traces) for _ in range(r.int(0, 12))]
    sample_lines, sources = r.int(0, 5), r.int(0, 4)
    try:
        payload = ParsedChunk([{"pod": "p"}] * sources, lines, True, r.big_int()).encode()
    except (TypeError, orjson.JSONEncodeError):  # a field orjson cannot write (an int past 64 bits)
        payload = b'{"v":1,"t":"parsed","srcs":[],"lines":[]}'
    how = r.byte() % 4
    if how == 1 and payload:  # flip bytes
        flipped = bytearray(payload)
        for _ in range(r.int(1, 4)):
            flipped[r.int(0, len(flipped) - 1)] = r.byte()
        payload = bytes(flipped)
    elif how == 2:  # cut short
        payload = payload[: r.int(0, len(payload))]
    elif how == 3:
        payload = data[r.at:]
    layout = _linescan_layout(payload)
    start, end = (layout[2], layout[3]) if layout is not None else (r.int(-2, len(payload) + 2),
                                                                      r.int(-2, len(payload) + 2))
    read = native.fold_raw(payload, start, end, sources, sample_lines, trace_state_module._SAMPLE_CHARS,
                           2 * trace_state_module._MAX_NAMES)
    if read is None:
        return
    decoded = orjson.loads(payload[start:end])  # what it read must be JSON
    count, streams, folds = read
    # samples may be orjson Fragments of their literal: what the trace states store must be the same JSON
    assert count == len(decoded) and orjson.dumps(folds) == orjson.dumps(fold_reference(decoded, sample_lines)), (
        decoded, read)
    assert [s[0] for s in streams] == list(dict.fromkeys(line[1] for line in decoded))
    _new_states_equal_reference(r, native, folds, sources, sample_lines)


def _new_states_equal_reference(r: Reader, native: ModuleType, folds: dict[str, Any], sources: int,
                                sample_lines: int) -> None:
    """The folds read, opened as new traces in C (new_states), beside the reference step: the same states
    and deadlines for every trace it writes; it leaves only known traces, ids with a NUL and deadlines past
    64 bits."""
    pods = [r.pick(["p", "", None, "ü", 't"q', 7]) for _ in range(sources)]
    known = [trace_id for trace_id in folds if r.byte() % 4 == 0]
    opened, updated = r.int(-(2**63), 2**63 - 1), r.int(-(2**63), 2**63 - 1)  # clocks in ns: 64 bits
    gap, longest = r.int(0, 10**12), r.int(0, 10**13)
    due = {trace_id: (0, 0) for trace_id in known}
    wall: list[tuple[int, str]] = []
    event: list[tuple[int, str]] = []
    updates: dict[bytes, bytes | None] = {}
    rest, _ = native.new_states(folds, due, pods, sample_lines, opened, updated, gap, longest, updates, wall, event)
    source_dicts = [{"pod": pod} for pod in pods]
    for trace_id, fold in folds.items():
        if trace_id in rest:
            continue
        state = trace_state_module.new_state(trace_id, opened)
        trace_state_module.apply_fold(state, fold, source_dicts, sample_lines, updated)
        assert updates.pop(trace_id.encode()) == trace_state_module.encode_state(state), (trace_id, fold)
        assert due[trace_id] == trace_state_module.deadlines_ns(state, gap, longest)
    assert not updates and len(wall) == len(event) == len(due) - len(known)


def _linescan_layout(payload: bytes) -> Any:
    from agents import _linescan  # the layout is not what this target fuzzes: the installed build reads it

    return _linescan.chunk_layout(payload)


def formats_target(data: bytes, native: ModuleType | None = None) -> None:
    for parse in (formats.parse_cri, formats.parse_docker):
        result = parse(data)
        assert result is None or (type(result[0]) is int and type(result[1]) is str and type(result[2]) is bool
                                  and type(result[3]) is bytes), result
    assert formats.detect_format(data) in ("cri", "docker", "plain")
    stamp = data.split(b" ", 1)[0]
    assert type(formats.cri_time_ns(stamp)) is int


def chunks(data: bytes, native: ModuleType | None = None) -> None:
    r = Reader(data)
    how = r.byte() % 6
    if how == 0:
        record = data
    else:
        doc: dict[str, Any] = {"v": r.pick([1, 1, 1, 2, "1", None]), "t": r.pick(["raw", "raw", "parsed", "dead"])}
        for key in ("src", "sid", "ct", "lines", "srcs"):
            if r.byte() < 230:
                doc[key] = r.pick([{}, {"kind": "file"}, "s", 5, 2**70, None, [], [[0, "{}", "", 0, 0]], 1.5])
        if r.byte() < 128 and isinstance(doc.get("lines"), list):
            doc["lines"] = [raw_line(r, n) if r.byte() < 200 else r.pick([None, 1, "x", [1, 2]])
                            for n in range(r.int(0, 6))]
        record = json.dumps(doc).encode()  # stdlib: big integers are valid JSON, orjson refuses to write them
        if how == 4:
            record = compressor(r.pick(["lz4", "zstd"]))(record)
        elif how == 5:
            record = compressor(r.pick(["lz4", "zstd"]))(record)[: r.int(0, 40)] + r.bytes(8)
    try:
        for chunk in decode_raw_chunks(record):
            LineParser(ParseSettings()).parse_chunk(chunk, 4)
    except ChunkFormatError:
        pass
    with contextlib.suppress(ChunkFormatError):
        ParsedChunk.decode(record)


def _normal(text: str | bytes) -> bytes:
    return orjson.dumps(orjson.loads(text))


def intake(data: bytes, native: ModuleType) -> None:
    r = Reader(data)
    mode, limit, first = r.int(0, 2), r.pick([16, 300, 1 << 20]), r.int(0, 1000)
    rest = data[r.at:]
    if mode == 0:
        def split(run: Callable[[], Any]) -> Any:
            try:
                return run()
            except ValueError as exc:
                return str(exc)
        splitter = FrameSplitter(limit)
        assert split(lambda: native.split_frames(rest, limit)) == split(lambda: splitter._split(rest))
    elif mode == 1:
        frames = rest.split(b"\x00\x01")
        now = 1_764_669_600_123_456_789
        for index, (frame, line) in enumerate(zip(frames, native.syslog_lines(frames, first, now, limit),
                                                  strict=True), first):
            if line is not None:
                text, time_ns = parse_syslog(frame, now)
                assert len(text) <= limit and [line[0], line[2], line[3], line[4]] == [index, "", time_ns, 0]
                assert _normal(line[1]) == _normal(text)
    else:
        found = native.forward_lines(rest, first, limit)
        if found is not None:
            lines, size = found
            _, entries, _ = decode_message(["t", rest, {}], 1 << 30)
            want = RequestLines()
            entry_lines(entries, first, limit, want)
            assert not want.rejections and len(want.lines) == len(lines)
            assert size == sum(len(line[1].encode()) for line in lines)
            for got, line in zip(lines, want.lines, strict=True):
                assert got[0] == line[0] and got[3] == line[3] and _normal(got[1]) == _normal(line[1])
def fieldscan(data: bytes, native: ModuleType) -> None:
    r = Reader(data)
    field = r.pick(["traceId", "time", "level", "a", "trace"])  # keys json_line writes
    texts = [json_line(r) for _ in range(r.int(0, 8))]
    for text in texts:
        found = native.top_number(text, field)
        if found is True:
            continue
        try:
            doc = orjson.loads(text)
        except orjson.JSONDecodeError:
            continue  # the reader takes lines the parse stage accepted; on others it need only not crash
        assert type(doc) is dict and found == reference_number(doc, field), (text, found)
    lines: list[Any] = [[0, "s", n, 0, "t", "info", "svc", text, "stdout"] if r.byte() < 230
                        else r.pick([None, [], [0] * 8, [0] * 7 + [5], "x"]) for n, text in enumerate(texts)]
    skip = object()
    keys = [r.pick([skip, "a", "b", ("c", 1), None]) for _ in lines]
    if r.byte() < 16:
        keys = keys[: r.int(0, len(keys))]
    bounds = [float(b) for b in sorted({r.int(-5, 50) for _ in range(r.int(0, 4))})]
    series_of: dict[Any, Any] = {}
    if r.byte() < 40:
        series_of["a"] = r.pick([[0.0] * (len(bounds) + 2), [0.0], ["x"] * (len(bounds) + 2), "x"])
    misbehave = r.byte()

    def new_series(key: Any) -> Any:
        if misbehave < 20:
            return None  # puts nothing in series_of
        if misbehave < 40:
            lines.clear()
        series_of[key] = [0.0] * (len(bounds) + 2)
        return series_of[key]

    with contextlib.suppress(TypeError, KeyError, ValueError, RuntimeError):  # refused cleanly is fine
        native.histogram(lines, r.pick([7, 0, 20, -1]), field, bounds, keys, skip, series_of, new_series)


CRI_PIECES = [b"2026-12-02T10:00:00.123456789Z", b"2024-02-29T23:59:60.000000001Z", b"2023-02-29T00:00:00.000000000Z",
              b"1970-01-01T00:00:00.000000000Z", b"2026-12-02T10:00:00Z", b" ", b"stdout", b"stderr", b"F", b"P",
              b"\n", b"\r", b"\xff", b"\xc3\xa9", b"\xed\xa0\x80", b"{\"traceId\":\"t\"}", b"x" * 40]


def common_cri_line(line: bytes, room: int) -> tuple[bytes, str, int] | None:
    """What the file collector's Python path builds for a common CRI line (TailedFile._cri_common), or None."""
    parts = line.split(b" ", 3)
    if len(parts) != 4 or parts[2] != b"F" or len(parts[3]) > room or line.endswith(b"\r"):
        return None
    stream = formats.CRI_STREAMS.get(parts[1])
    ns = formats.cri_time_ns(parts[0]) if stream is not None else 0
    return (parts[3], stream, ns) if stream is not None and ns else None


def filescan(data: bytes, native: ModuleType) -> None:
    r = Reader(data)
    room = r.int(0, 64)
    buffer = r.bytes(300) + b"".join(r.pick(CRI_PIECES) for _ in range(r.int(0, 40))) + data[r.at:]
    stop = buffer.rfind(b"\n") + 1
    start = 0
    if r.byte() > 235:  # bounds of any kind: refused with ValueError, or scanned
        start, stop = r.int(-2, len(buffer) + 2), r.int(-2, len(buffer) + 2)
    out: list[Any] = []
    try:
        at = native.cri_lines(buffer, start, stop, 7, room, "stdout", "stderr", out)
    except ValueError:
        assert not 0 <= start <= stop <= len(buffer)
        return
    assert start <= at <= stop and (at == start or buffer[at - 1] == 0x0A)
    taken = buffer[start:at].split(b"\n")[:-1]
    assert len(taken) == len(out)
    position = start
    for line, entry in zip(taken, out, strict=True):
        common = common_cri_line(line, room)
        assert common is not None, line
        assert entry == [position + 7, common[0].decode(), common[1], common[2], 0], (line, entry)
        position += len(line) + 1


LOGFMT_PIECES = ["a", "k=v", "=", '"', " ", "\t", "\\", "{", "é", "\x00", 'q="x y"', "traceId=t-1", "trace_id=t",
                 "time=2026-12-02T10:00:00Z", "level=info", "\r\n"]


def logfmt(data: bytes, native: ModuleType) -> None:
    r = Reader(data)
    lines: list[Any] = []
    for n in range(r.int(0, 8)):
        text = logfmt_text(r)
        shape = r.byte()
        lines.append([n, text, "stdout", 0, r.pick([0, 0, 1, 2, 4, 2**70])] if shape < 230
                     else r.pick([None, (n, text, "", 0, 0), [n, text], [n, text.encode(), "", 0, 0], text]))
    json_first = r.byte() > 127
    renamed = tuple(r.pick(["trace_id", "message", "", "k", "é", 5]) for _ in range(r.int(0, 9)))
    try:
        out = native.logfmt_json(lines, json_first, renamed)
    except (TypeError, ValueError):
        assert len(renamed) > 8 or any(type(name) is not str for name in renamed)
        return
    check_logfmt_pass(lines, out, json_first, renamed)


def check_logfmt_pass(lines: list[Any], out: list[Any] | None, json_first: bool, renamed: tuple[Any, ...]) -> None:
    """What `to_json` gave for `lines`: None only without `json_first`; else each line the same object or
    rewritten as `orjson.dumps(parse_logfmt(line))`, with no renamed key (also tests/unit/agents/parsers)."""
    if out is None:
        assert not json_first
        return
    assert len(out) == len(lines)
    for raw, new in zip(lines, out, strict=True):
        if new is raw:
            continue
        line = raw[1].rstrip("\r\n ")
        record = parse_logfmt(line)
        assert record is not None and raw[4] == 0 and not set(record) & set(renamed), (raw, new)
        assert not (json_first and line.startswith("{")), (raw, new)
        assert new == [raw[0], orjson.dumps(record).decode(), *raw[2:]], (raw, new)


TARGETS: dict[str, Callable[[bytes, Any], None]] = {
    "linescan": linescan, "linescan_api": linescan_api, "parse_raw": parse_raw,
    "tracefold": tracefold, "tracefold_raw": tracefold_raw,
    "formats": formats_target,
    "chunks": chunks, "intake": intake, "fieldscan": fieldscan, "filescan": filescan, "logfmt": logfmt,
}
NATIVE_OF = {"tracefold": "tables._tracefold", "tracefold_raw": "tables._tracefold",
             "intake": "collectors.intake._intakefast",
             "fieldscan": "agents._fieldscan", "filescan": "collectors.files._filescan"}  # else agents._linescan


def seeds() -> Iterator[bytes]:
    """A few starting inputs for every target (libFuzzer grows its corpus from these)."""
    yield b""
    yield bytes(range(256))
    yield b'2026-12-02T10:00:00.5Z stdout F {"traceId":"t-1","time":"2026-12-02T10:00:00Z","level":"info"}'
    yield b'{"log":"{\\"traceId\\":\\"a\\"}\\n","stream":"stdout","time":"2026-12-02T10:00:00.000000001Z"}'
    yield RawChunk({"kind": "file"}, "s", 1, [[0, '{"traceId":"t","time":1733133600}', "stdout", 0, 0]]).encode()
    yield RawBatch(1, [RawChunk({"kind": "file"}, "s", 1, [[0, '{"traceId":"t"}', "stdout", 0, 0]]),
                       RawChunk({"kind": "pod-api"}, "p", 1, [[5, "{}", "", 0, 0]])]).encode()
    frame = b'<134>1 2026-12-02T10:00:00.5Z h app 42 - - {"traceId":"t","n":[1,2.5,null]}'
    cri = b'2026-12-02T10:00:00.123456789Z stdout F {"traceId":"t"}\n2024-02-29T23:59:60.000000001Z stderr F x\n'
    yield b"\x40" + len(cri).to_bytes(2, "big") + cri + b"\x00\x00"  # filescan: two lines the C scan builds
    yield b"\x00\x01\x00" + b"%d %s\n" % (len(frame), frame) + b"<13>1 - h a - - - plain\n"
    yield b"\x01\x01\x00" + frame + b"\x00\x01<13>1 - - - - - [x@1 k=\"v\"] sd"
    yield b"\x02\x02\x00" + msgpack.packb([1, {"log": "caf\u00e9", "n": -3, "f": 0.5, "a": [True, None, {}]}]) + \
        msgpack.packb([msgpack.ExtType(0, struct.pack(">II", 1_764_669_600, 5)), {"k": "v"}])
