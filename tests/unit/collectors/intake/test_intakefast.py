"""The intake's C conversion (collectors/intake/_intakefast.c) against its Python references.

Where the C answers, its line is the reference's: same position, time and flags, and a text that
parses to the same object with the same key order (floats may be spelled differently, and a JSON
syslog MSG is kept as sent instead of re-serialised). Where it does not answer (None), the reference
decides; the common shapes (the bench's, Fluent Bit's) must be answered in C.
"""

from __future__ import annotations

import struct
import time
from typing import Any, cast

import msgpack
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from collectors.intake.auth import TenantDirectory
from collectors.intake.context import IntakeContext
from collectors.intake.delivery import Delivery
from collectors.intake.forward import entry_lines, packed_lines
from collectors.intake.forward_messages import decode_message
from collectors.intake.lines import RequestLines
from collectors.intake.metrics import IntakeMetrics
from collectors.intake.syslog_frames import FrameSplitter
from collectors.intake.syslog_parse import NotSyslog, parse_syslog
from collectors.intake.syslog_server import syslog_line, syslog_lines
from core.intake_settings import IntakeSettings
from core.models import RawLine
from core.native import native_module
from tests.bench.bench_intake import forward_message
from tests.bench.intake_syslog import syslog_frames

fast = pytest.importorskip("collectors.intake._intakefast", reason="C extension not built (pure-Python install)")
if native_module("intake_lines") is None:
    pytest.skip("LOGWEAVE_PURE=1: the intake runs its Python paths", allow_module_level=True)
NOW = 1_764_669_600_123_456_789  # 2025-12-02T10:00:00.123456789Z
SOME = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def normal(text: str | bytes) -> bytes:
    """The JSON text as orjson writes what it parses to: same values and key order, same bytes."""
    return orjson.dumps(orjson.loads(text))


def same_line(got: RawLine, want: RawLine) -> None:
    assert [got[0], got[2], got[3], got[4]] == [want[0], want[2], want[3], want[4]]
    assert normal(got[1]) == normal(want[1]), (got[1], want[1])


# ---------- syslog ----------

def reference_line(position: int, frame: bytes, max_line: int) -> RawLine | None:
    try:
        text, time_ns = parse_syslog(frame, NOW)
    except NotSyslog:
        return None
    return None if len(text) > max_line else [position, text.decode(), "", time_ns, 0]


_FIELD = st.sampled_from(["-", "", "host-1", "app.x", "42", "ID47", 'q"uote', "back\\slash", "tab\there", "é"])
_STAMP = st.sampled_from([
    "-", "-", "2026-12-02T10:00:00.123456Z", "2026-12-02T10:00:00.123456Z", "2003-10-11T22:14:15.003Z",
    "2026-12-02T10:00:00Z", "2026-12-02T10:00:00.123456789Z",
    "2026-12-02T10:00:00.1234567891Z", "2024-02-29T23:59:60Z", "2023-02-29T00:00:00Z", "1970-01-01T00:00:00Z",
    "1969-12-31T23:59:59Z", "2300-01-01T00:00:00Z", "2026-12-02T10:00:00+02:00", "2026-12-02t10:00:00z",
    "2026-12-02T24:00:00Z", "2026-13-02T10:00:00Z", "2026-12-02T10:00:00.Z", "not-a-time"])
_JSON_TEXT = st.sampled_from([
    '{"traceId":"t","msg":"m"}', '{}', '{ }', '{"time":"x","n":1}', '{"level":"warn"}', '{"syslog":1}',
    '{"a":1} ', ' {"a":1}', '{"a":[1,2.5,-0,{"b":null,"c":true,"d":false}]}', '{"a":1e5}',
    '{"a":12345678901234567890}', '{"a":123456789012345678}', '{"ti\\u006de":"x"}', '{"a":"\\ud800"}',
    '{"a":"\\u00e9\\n\\"\\/"}', '{"a":1,"a":2}', '{"a":1', '{"a":01}', '{"a":1.}', '{"a":tru}',
    '{"a":1}x', '{"a":"\x01"}', "{'a':1}", '{"a":-}', '[1,2]', '{"é":"ü"}', '{"a":{"b":{"c":[[[]]]}}}'])
_PLAIN = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=40)
_MSG = st.one_of(_JSON_TEXT, _PLAIN, st.sampled_from(["", "-x", "\ufeffbom", "\t{\"a\":1}", " lead"]))


@st.composite
def frames(draw: st.DrawFn) -> bytes:
    usual = draw(st.integers(0, 3)) > 0  # mostly frames the C should convert, to compare many lines
    pri = "<134>" if usual else draw(st.sampled_from(["<0>", "<191>", "<192>", "<007>", "<1234>", "<>", "134>"]))
    version = "1 " if usual else draw(st.sampled_from(["2 ", "", "1"]))
    header = [draw(_STAMP)] + [draw(_FIELD) for _ in range(4)]
    cut = 5 if usual else draw(st.sampled_from([4, 3]))
    sd = draw(st.sampled_from(["- ", "- ", "- ", "- ", "-", "", "[ex@1 k=\"v\"] ", "-x "]))
    text = pri + version + " ".join(header[:cut])
    if cut == 5 and draw(st.booleans()):
        text += " " + sd + draw(_MSG)
    data = text.encode()
    if draw(st.booleans()):
        data += draw(st.sampled_from([b"\n", b"\r\n", b"\x00", b"\xff\xfe", b" "]))
    return data


@SOME
@given(st.lists(frames(), min_size=1, max_size=8), st.sampled_from([1 << 20, 120]))
def test_syslog_lines_are_the_references(batch: list[bytes], max_line: int) -> None:
    got = fast.syslog_lines(batch, 10, NOW, max_line)
    assert len(got) == len(batch)
    for index, (frame, line) in enumerate(zip(batch, got, strict=True), 10):
        if line is not None:
            want = reference_line(index, frame, max_line)
            assert want is not None, frame
            same_line(line, want)


def test_common_syslog_frames_are_converted_in_c() -> None:
    batch = FrameSplitter(1 << 20).feed(syslog_frames(50, 250)) + [
        b"<14>1 - - - - - -", b"<13>1 2026-12-02T10:00:00Z web-1 nginx 77 - - GET /index.html 200\n",
        '<13>1 2026-12-02T10:00:00.5Z h app - - - \ufeffcaf\u00e9 {"a": 1}'.encode()]
    got = fast.syslog_lines(batch, 0, NOW, 1 << 20)
    assert None not in got
    for index, line in enumerate(got):
        want = reference_line(index, batch[index], 1 << 20)
        assert want is not None
        same_line(line, want)


def context(max_line: int) -> IntakeContext:
    cfg = IntakeSettings(max_line_bytes=max_line)
    return IntakeContext(cfg, cast(Delivery, None), IntakeMetrics(), TenantDirectory(cfg))


def test_syslog_lines_hand_the_rest_to_the_reference_in_order(monkeypatch: pytest.MonkeyPatch) -> None:
    batch = [b"<13>1 - h a - - - one", b"not syslog at all\n", b"<13>1 - h a - - [x@1 k=\"v\"] sd",
             b"<13>Dec  1 22:14:15 gw su[1]: bsd", b"<13>1 - h a - - - " + b"x" * 300, b"<13>1 - h a - - - last"]
    ctx = context(200)
    monkeypatch.setattr(time, "time_ns", lambda: NOW)
    got = syslog_lines(ctx, 5, batch)
    want = [line for index, frame in enumerate(batch, 5) if (line := syslog_line(ctx, index, frame))]
    assert [line[0] for line in got] == [5, 6, 7, 8, 10]  # the over-long line is rejected, its position kept
    for line, reference in zip(got, want, strict=True):
        same_line(line, reference)
    assert orjson.loads(got[2][1])["syslog"]["sd"] == {"x@1": {"k": "v"}}
    assert ctx.metrics.value("logweave_intake_rejections_total", protocol="syslog", reason="line_too_long") == 2
    assert ctx.metrics.value("logweave_intake_rejections_total", protocol="syslog", reason="not_syslog") == 2


# ---------- forward ----------

def reference_forward(message: list[Any], first: int, max_line: int) -> RequestLines:
    _, entries, _ = decode_message(message, 1 << 30)
    out = RequestLines()
    entry_lines(entries, first, max_line, out)
    return out


_SCALAR = st.one_of(
    st.none(), st.booleans(), st.integers(-(1 << 63), (1 << 64) - 1), st.floats(allow_nan=True),
    st.text(max_size=20), st.binary(max_size=4).map(lambda b: b if b else "empty"))
_VALUE = st.recursive(_SCALAR, lambda inner: st.one_of(
    st.lists(inner, max_size=4),
    st.dictionaries(st.text(max_size=8), inner, max_size=4),
    st.dictionaries(st.integers(0, 3), inner, min_size=1, max_size=2)), max_leaves=12)
_JSON = st.recursive(st.one_of(st.none(), st.booleans(), st.integers(-(1 << 63), (1 << 64) - 1),
                                st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=20)),
                      lambda inner: st.one_of(st.lists(inner, max_size=4),
                                              st.dictionaries(st.text(max_size=8), inner, max_size=4)), max_leaves=12)
_RECORD = st.one_of(st.dictionaries(st.text(max_size=10), _JSON, max_size=6),
                    st.dictionaries(st.text(max_size=10), _JSON, max_size=6),
                    st.dictionaries(st.text(max_size=10), _VALUE, max_size=6), _VALUE)


def event_time(seconds: int, nanos: int) -> msgpack.ExtType:
    return msgpack.ExtType(0, struct.pack(">II", seconds, nanos))


_TIME = st.one_of(st.integers(0, 1 << 33), st.integers(0, 1 << 33), st.integers(-(1 << 40), 1 << 40),
                  st.builds(event_time, st.integers(0, (1 << 32) - 1), st.integers(0, 999_999_999)),
                  st.floats(0, 2e9), st.booleans())


def pack(entry: list[Any], single: bool) -> bytes:
    try:
        return msgpack.packb(entry, use_single_float=single)
    except OverflowError:  # a float past float32
        return msgpack.packb(entry)


@SOME
@given(st.lists(st.tuples(_TIME, _RECORD), min_size=1, max_size=6), st.booleans(),
       st.sampled_from([1 << 20, 60]), st.integers(0, 1000))
def test_forward_lines_are_the_references(entries: list[tuple[Any, Any]], single: bool, max_line: int,
                                          first: int) -> None:
    packed = b"".join(pack([t, r], single) for t, r in entries)
    message = ["tag", packed, {"chunk": "c", "size": len(entries)}]
    got = packed_lines(message, first, 1 << 30, max_line)
    if got is None:
        return
    try:
        want = reference_forward(message, first, max_line)
    except Exception as exc:
        raise AssertionError(f"C answered, the reference raised {exc!r}") from exc
    tag, option, lines = got
    assert (tag, option, want.rejections) == ("tag", message[2], [])
    assert len(lines.lines) == len(want.lines)
    for line, reference in zip(lines.lines, want.lines, strict=True):
        same_line(line, reference)
    assert lines.size == sum(len(line[1].encode()) for line in lines.lines)


def test_common_forward_messages_are_converted_in_c_byte_for_byte() -> None:
    message = msgpack.unpackb(forward_message("f", 3, 250), raw=False)
    got = packed_lines(message, 0, 1 << 30, 1 << 20)
    assert got is not None
    want = reference_forward(message, 0, 1 << 20)
    assert (got[2].lines, got[2].size) == (want.lines, want.size)
    records = [[event_time(1_764_669_600, 5), {"log": "caf\u00e9 \"q\" \x01\n", "n": -3, "big": (1 << 64) - 1,
                                               "ok": True, "none": None, "nest": {"a": [1, {"b": "c"}]}}]]
    message = ["t", b"".join(map(msgpack.packb, records)), {}]
    got = packed_lines(message, 7, 1 << 30, 1 << 20)
    assert got is not None
    want = reference_forward(message, 7, 1 << 20)
    assert (got[2].lines, got[2].size) == (want.lines, want.size)


def test_forward_messages_it_cannot_convert_go_to_the_reference() -> None:
    def message(*records: Any) -> list[Any]:
        return ["t", b"".join(msgpack.packb([1, r]) for r in records), {}]

    assert packed_lines(message({"a": 1}, [1]), 0, 1 << 30, 1 << 20) is None  # not a map
    assert packed_lines(message({"a": b"\xff"}), 0, 1 << 30, 1 << 20) is None  # bytes
    assert packed_lines(message({1: "a"}), 0, 1 << 30, 1 << 20) is None  # a key that is not a string
    assert packed_lines(message({"a": "x" * 100}), 0, 1 << 30, 50) is None  # over the line limit
    assert packed_lines(message({"a": float("nan")}), 0, 1 << 30, 1 << 20) is None
    truncated = message({"a": 1}, {"b": 2})
    truncated[1] = truncated[1][:-1]
    assert packed_lines(truncated, 0, 1 << 30, 1 << 20) is None
    assert packed_lines(["t", [[1, {"a": 1}]], {}], 0, 1 << 30, 1 << 20) is None  # Forward mode


# ---------- syslog framing ----------

_PIECE = st.one_of(
    st.binary(max_size=30).map(lambda m: b"%d %s" % (len(m), m)),  # octet counted
    st.binary(max_size=30).map(lambda m: m.replace(b"\n", b"") + b"\n"),  # LF framed
    st.sampled_from([b"\n", b"\r\n", b"12345678901 x", b"1a3 xyz", b"99 short", b"5 ab", b"no newline",
                     b"0 ", b"007 abcdefg"]))


def split_both(splitter: FrameSplitter, buf: bytes) -> tuple[object, object]:
    def run(split: Any) -> object:
        try:
            return split()
        except ValueError as exc:
            return ("ValueError", str(exc))
    return run(lambda: fast.split_frames(buf, splitter.max_bytes)), run(lambda: splitter._split(buf))


@SOME
@given(st.lists(_PIECE, max_size=12), st.sampled_from([20, 1 << 20]))
def test_split_frames_is_the_reference(pieces: list[bytes], max_bytes: int) -> None:
    buf = b"".join(pieces)
    for cut in (len(buf), len(buf) // 2, len(buf) // 3):
        got, want = split_both(FrameSplitter(max_bytes), buf[:cut])
        assert got == want
