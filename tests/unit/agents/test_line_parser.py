"""The parser's edge cases: nanosecond times, missing fields, non-objects, bad UTF-8, huge lines."""

from __future__ import annotations

import json

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agents.line_parser import LineParser, normalize_level
from core.models import (
    FLAG_BAD_PREFIX,
    FLAG_BAD_TIME,
    P_LEVEL,
    P_SERVICE,
    P_TEXT,
    P_TIME,
    P_TRACE,
    RawChunk,
    make_raw_line,
    trace_partition,
)
from core.settings import ParseSettings

SOURCE = {"kind": "file", "pod": "p", "namespace": "ns"}


def chunk(*payloads: bytes, source_time: int = 0) -> RawChunk:
    lines = [make_raw_line(i * 10, p, "stdout", source_time) for i, p in enumerate(payloads)]
    return RawChunk(SOURCE, "file:1:1:f:0", 1_700_000_000_000_000_000, lines)


def parse(*payloads: bytes, settings: ParseSettings | None = None, source_time: int = 0) -> tuple[list, list]:
    outputs, dead = LineParser(settings or ParseSettings()).parse_chunk(chunk(*payloads, source_time=source_time), 4)
    lines = [line for out in outputs.values() for line in out.lines]
    return lines, dead


def test_nanosecond_time_and_fields_extracted() -> None:
    lines, dead = parse(b'{"time":"2025-06-10T08:25:41.63070246Z","traceId":"abc","level":"WARNING","service":"api"}')
    assert not dead
    (line,) = lines
    assert line[P_TIME] == 1749543941_630702460
    assert line[P_TRACE] == "abc" and line[P_LEVEL] == "warn" and line[P_SERVICE] == "api"
    assert orjson.loads(line[P_TEXT])["time"] == "2025-06-10T08:25:41.63070246Z"  # original kept


@pytest.mark.parametrize(("value", "expected"), [
    ("2025-06-10T10:25:41.000000001+02:00", 1749543941_000000001),
    ("2025-06-10 08:25:41Z", 1749543941_000000000),
    ("2025-06-10T08:25:41.123", 1749543941_123000000),
    (1749543941, 1749543941_000000000),
    (1749543941123, 1749543941_123000000),
    ("1749543941.5", 1749543941_500000000),
])
def test_time_forms(value: object, expected: int) -> None:
    lines, dead = parse(orjson.dumps({"time": value, "traceId": "t"}))
    assert not dead and lines[0][P_TIME] == expected


def test_alias_fields_and_epoch_ms_setting() -> None:
    s = ParseSettings(time_format="epoch_ms")
    lines, dead = parse(b'{"@timestamp": 1000, "trace_id": "x"}', settings=s)
    assert not dead and lines[0][P_TIME] == 1_000_000_000 and lines[0][P_TRACE] == "x"


@pytest.mark.parametrize(("payload", "reason"), [
    (b"plain text", "not_json"),
    (b"[1,2,3]", "not_object"),
    (b'"just a string"', "not_object"),
    (b'{"time":"2025-06-10T08:25:41Z"}', "missing_trace_id"),
    (b'{"traceId":{"nested":1}}', "bad_trace_id"),
    (b'{"traceId":"t","time":"yesterday"}', "bad_time"),
    (b'{"traceId":"t","time":"2025-13-40T99:00:00Z"}', "bad_time"),
    (b"\xff\xfe{\"traceId\":\"t\"}", "invalid_utf8"),
])
def test_bad_lines_are_dead_lettered_with_reason_and_source(payload: bytes, reason: str) -> None:
    lines, dead = parse(payload)
    assert not lines
    (item,) = dead
    assert item.reason == reason
    assert item.source == SOURCE and item.stream_id == "file:1:1:f:0" and item.position == 0
    if reason == "invalid_utf8":
        assert item.base64


def test_missing_time_falls_back_to_source_time() -> None:
    lines, dead = parse(b'{"traceId":"t"}', source_time=123)
    assert not dead and lines[0][P_TIME] == 123


def test_two_megabyte_line_is_dead_lettered_as_oversize_not_crashed() -> None:
    big = orjson.dumps({"traceId": "t", "msg": "x" * (2 * 1024 * 1024)})
    lines, dead = parse(big, b'{"traceId":"u"}')
    assert [d.reason for d in dead] == ["oversize"]
    assert [line[P_TRACE] for line in lines] == ["u"]


def test_untraced_pass_policy_keeps_lines() -> None:
    lines, dead = parse(b'{"msg":"no trace"}', settings=ParseSettings(untraced="pass"))
    assert not dead and lines[0][P_TRACE] == ""


def test_lines_partitioned_by_trace_hash() -> None:
    payloads = [orjson.dumps({"traceId": f"trace-{i}"}) for i in range(50)]
    outputs, _ = LineParser(ParseSettings()).parse_chunk(chunk(*payloads), 4)
    for partition, out in outputs.items():
        assert all(trace_partition(line[P_TRACE], 4) == partition for line in out.lines)


def test_levels() -> None:
    assert normalize_level("ERR") == "error" and normalize_level(50) == "error"
    assert normalize_level("crit") == "fatal" and normalize_level("nonsense") == ""


def _dumps(value: object) -> bytes:
    return json.dumps(value).encode()  # stdlib: big integers too, which orjson refuses to write


json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
                           lambda inner: st.lists(inner) | st.dictionaries(st.text(), inner), max_leaves=10)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=200) | json_values.map(_dumps)
                | st.dictionaries(st.sampled_from(["traceId", "time", "level", "msg"]), json_values).map(_dumps),
                max_size=20))
def test_every_input_is_delivered_or_dead_lettered(payloads: list[bytes]) -> None:
    lines, dead = parse(*payloads)
    assert len(lines) + len(dead) == len(payloads)
    positions = sorted([line[2] for line in lines] + [d.position for d in dead])
    assert positions == [i * 10 for i in range(len(payloads))]


@pytest.mark.parametrize("entry", [5, "x", None, [0, "{}"], [0, "{}", "", 0, 0, 9], [0, 5, "", 0, 0],
                                   ["0", "{}", "", 0, 0], [0, "{}", "", 0, "1"], [0, "{}", "", None, 0]])
def test_an_entry_that_is_not_a_raw_line_is_dead_lettered_not_raised(entry: object) -> None:
    """Found by `make fuzz`: a chunk from a foreign or corrupted producer crashed the parse stage."""
    good = make_raw_line(1, b'{"traceId":"t","time":"2026-12-02T10:00:00Z"}')
    out, dead = LineParser(ParseSettings()).parse_chunk(RawChunk({}, "s", 0, [entry, good]), 4)
    assert [d.reason for d in dead] == ["bad_entry"] and dead[0].text == repr(entry)
    assert sum(len(c.lines) for c in out.values()) == 1


def test_a_line_without_its_cri_prefix_is_dead_lettered_as_bad_cri_prefix() -> None:
    """The file collector flags lines of a CRI file that lack the prefix; the reason says so (not not_json)."""
    lines = [make_raw_line(0, b"2025-06-10 garbage prefix {\"traceId\":", "", 0, FLAG_BAD_PREFIX),
             make_raw_line(10, b"plain text", "stdout", 0)]
    outputs, dead = LineParser(ParseSettings()).parse_chunk(RawChunk(SOURCE, "file:1:1:f:0", 1, lines), 4)
    assert [(d.reason, d.position) for d in dead] == [("bad_cri_prefix", 0), ("not_json", 10)]
    assert not outputs


def test_a_flagged_cri_time_keeps_the_line_at_the_collection_time() -> None:
    lines = [make_raw_line(0, b'{"traceId":"t"}', "stdout", 0, FLAG_BAD_TIME)]
    outputs, dead = LineParser(ParseSettings()).parse_chunk(RawChunk(SOURCE, "file:1:1:f:0", 77, lines), 4)
    assert not dead
    assert [line[P_TIME] for out in outputs.values() for line in out.lines] == [77]
