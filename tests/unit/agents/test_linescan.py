"""The C scan (agents/_linescan.c) gives exactly the reference parser's answers, and takes the common line.

Differential: every generated chunk is parsed twice, once through the C scan with the reference
as its fallback and once through the reference alone, and the partitioned entries and dead letters
must be equal. The generators aim at what the scan decides itself: field aliases, duplicate and
escaped keys, nested values, numbers near orjson's limits, RFC 3339 times with offsets and bad
dates, level spellings, trace ids at the edges of what is usable.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agents.line_parser import _EXACT_LEVELS, LineParser
from core.models import FLAG_BASE64, FLAG_TRUNCATED, RawChunk
from core.native import native_module
from core.settings import ParseSettings
from tests.bench.bench_worker import make_doc

_linescan = pytest.importorskip("agents._linescan", reason="C extension not built (pure-Python install)")
if native_module("line_scan") is None:
    pytest.skip("the C scan is off in this process (LOGWEAVE_PURE=1)", allow_module_level=True)

FIELD_NAMES = ["traceId", "trace_id", "traceID", "time", "timestamp", "@timestamp", "ts", "level", "severity",
               "lvl", "service", "app", "msg", "trace.id", "trace", "@l", "@mt", "@m", "@t", "log.level", "log",
               "SeverityNumber", "severityNumber", "SeverityText", "instant", "service.name", "Resource", "otelTraceID",
               "Level", "mdc", "levelname", "asctime", "dd"]


@contextmanager
def reference_only(parser: LineParser) -> Iterator[None]:
    saved = parser._scan
    parser._scan = None
    try:
        yield
    finally:
        parser._scan = saved


def both(chunk: RawChunk, parse: ParseSettings, partitions: int = 4) -> tuple[Any, Any]:
    parser = LineParser(parse)
    fast_out, fast_dead = parser.parse_chunk(chunk, partitions)
    with reference_only(parser):
        ref_out, ref_dead = parser.parse_chunk(chunk, partitions)
    fast = ({p: (c.sources, c.lines) for p, c in fast_out.items()}, [d.as_dict() for d in fast_dead])
    ref = ({p: (c.sources, c.lines) for p, c in ref_out.items()}, [d.as_dict() for d in ref_dead])
    return fast, ref


digits = st.integers(0, 9).map(str)
times = st.one_of(
    st.builds(lambda y, mo, d, h, mi, s, frac, zone, sep: f"{y:04d}-{mo:02d}-{d:02d}{sep}{h:02d}:{mi:02d}:{s:02d}"
              f"{frac}{zone}",
              st.integers(0, 2100), st.integers(0, 13), st.integers(0, 32), st.integers(0, 24), st.integers(0, 60),
              st.integers(0, 61),
              st.one_of(st.just(""), st.text("0123456789", min_size=0, max_size=12).map(lambda f: "." + f),
                        st.just(",5")),
              st.sampled_from(["Z", "z", "+02:00", "-05:30", "+0200", "+99:99", "", " Z", "+02"]),
              st.sampled_from(["T", "T", "T", " ", "t"])),
    st.integers(-10**15, 10**15), st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=30),
    st.sampled_from([0, -1, 1_700_000_000, 1_700_000_000_123, 1_700_000_000_123_456_789, 9_223_372_036,
                     9_223_372_037, 99_999_999_999, 100_000_000_000, 99_999_999_999_999, 100_000_000_000_000,
                     -9_223_372_036_854_775_808, 9_223_372_036_854_775_807, 10**18 - 1, 10**18, 10**19, -10**18]),
    st.none(),
)
levels = st.one_of(st.sampled_from(sorted(_EXACT_LEVELS)), st.sampled_from(["Info ", "WaRn", "notice", "x", ""]),
                   st.integers(-100, 100), st.sampled_from([10**18 - 1, 10**18, -10**18 + 1, 10**20, -0.0, 30.0]),
                   st.none(), st.booleans())
usable_traces = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), min_size=1, max_size=40)
traces = st.one_of(usable_traces, usable_traces, usable_traces,
                   st.text(max_size=20), st.just("x" * 256), st.just("x" * 257), st.just("a\u00e9b"),
                   st.just("tab\there"), st.integers(), st.floats(allow_nan=False, allow_infinity=False), st.none(),
                   st.booleans(), st.just(""))
json_leaf = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70),
                      st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=20))
json_values = st.recursive(
    json_leaf, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8)


@st.composite
def documents(draw: st.DrawFn) -> str:
    """A JSON object line written in one of several styles, or something close to one."""
    fields: list[tuple[str, Any]] = []
    wanted = {"traceId": traces, "time": times, "level": levels, "service": st.one_of(st.text(max_size=12), json_leaf)}
    for name, strategy in wanted.items():
        if draw(st.integers(0, 9)) > 0:
            fields.append((name, draw(strategy)))
    for _ in range(draw(st.integers(0, 4))):
        fields.append((draw(st.sampled_from(FIELD_NAMES)), draw(st.one_of(traces, times, levels, json_values))))
    fields = draw(st.permutations(fields))
    style = draw(st.sampled_from(["orjson", "spaced", "ascii", "escaped-key", "dup", "nested-trace", "nested-ecs",
                                  "mangled"]))
    if style == "orjson":
        try:
            return orjson.dumps(dict(fields)).decode()
        except TypeError:  # an integer past 64 bits: json writes it
            pass
    if style in ("orjson", "spaced"):
        return json.dumps(dict(fields), indent=draw(st.sampled_from([None, 1])), ensure_ascii=False) \
            .replace("{", "{ ", 1)
    if style == "ascii":
        return json.dumps(dict(fields), ensure_ascii=True)
    if style == "escaped-key":  # "\u0074raceId" is "traceId"
        return json.dumps(dict(fields)).replace('"traceId"', '"\\u0074raceId"').replace('"level"', '"lev\\u0065l"')
    if style == "dup":  # duplicate keys: orjson keeps the last
        body = ",".join(f"{json.dumps(k)}:{json.dumps(v)}" for k, v in fields + fields[:1])
        return "{" + body + "}"
    if style == "nested-trace":
        return json.dumps({**dict(fields), "trace": {"id": draw(traces)}})
    if style == "nested-ecs":  # ECS objects, the OpenTelemetry Resource, log4j2's instant
        nested = {"service": {"name": draw(st.one_of(st.text(max_size=8), json_leaf))},
                  "log": {"level": draw(levels)}, "Resource": {"service.name": draw(st.text(max_size=8))},
                  "instant": {"epochSecond": draw(st.integers(-10**10, 10**10)),
                              "nanoOfSecond": draw(st.integers(-1, 10**9))},
                  "mdc": {"traceId": draw(traces)}}
        keep = draw(st.lists(st.sampled_from(sorted(nested)), unique=True))
        return json.dumps({**dict(fields), **{k: nested[k] for k in keep}})
    text = json.dumps(dict(fields))
    cut = draw(st.integers(0, max(0, len(text) - 1)))
    return text[:cut] + draw(st.sampled_from(["", "}", ",}", "\x01", "\\", '"', " ", "\\ud800", "1e400"])) + text[cut:]


raw_lines = st.builds(lambda text, flags, source_ns, pos: [pos, text, "stdout", source_ns, flags],
                      st.one_of(documents(), st.text(max_size=40), st.just("  {\"traceId\":\"x\"}\n")),
                      st.sampled_from([0, 0, 0, FLAG_TRUNCATED, FLAG_BASE64]),
                      st.sampled_from([0, 1_700_000_000_123_456_789]), st.integers(0, 2**40))
parse_settings = st.builds(
    lambda time_format, untraced, max_bytes, extra: ParseSettings(
        time_format=time_format, untraced=untraced, max_line_bytes=max_bytes,
        **({} if extra is None else {"trace_id_fields": ["traceId", "trace_id", "traceID", *extra]})),
    st.sampled_from(["auto", "auto", "rfc3339", "epoch_s", "epoch_ms"]), st.sampled_from(["deadletter", "pass"]),
    st.sampled_from([1 << 20, 64]), st.sampled_from([None, None, [], ["trace.id"]]))


@settings(max_examples=int(os.environ.get("LINESCAN_EXAMPLES", "600")), deadline=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(raw_lines, min_size=1, max_size=12), parse_settings, st.integers(1, 8))
def test_scan_equals_reference(lines: list[list[Any]], parse: ParseSettings, partitions: int) -> None:
    chunk = RawChunk({"kind": "file", "pod": "p"}, "file:1:2:x:0", 1_700_000_000_000_000_000, lines)
    fast, ref = both(chunk, parse, partitions)
    assert fast == ref


@pytest.mark.parametrize("text", [
    '{"traceId":"a","time":"2024-02-29T23:59:60.5+01:00","level":"ERROR","service":"s"}',
    '{"traceId":"a","time":"2023-02-29T00:00:00Z"}',       # no such day: bad_time
    '{"traceId":"a","time":"0000-01-01T00:00:00Z"}',
    '{"traceId":"a","time":"2025-06-10T08:25:41.1234567891Z"}',  # ten fraction digits
    '{"traceId":"a","n":123456789012345678901234567890,"f":1e308,"g":-0.0e-5}',
    '{"traceId":"a","n":' + "1" * 300 + "}",
    '{"traceId":"a","deep":' + "[" * 70 + "]" * 70 + "}",
    '{"traceId":"a","s":"\\u0000\\ud83d\\ude00"}',
    '{"traceId":"a"}{"traceId":"b"}',
    '{"traceId":"a",}',
    '{"traceId" : "a" , "level" : "warning" }',
    '{"traceId":"a","level":"Warning"}',
    '{"traceId":"a","time":null}',
    '{"traceId":null,"trace_id":"b"}',
    '{"trace_id":"b","time":"2025-06-10T08:25:41Z"}',
    '{"traceId":"a\\"b"}',
    # the first alias absent, a watched key present: only the reference finds the field
    '{"traceId":"a","Resource":{"service.name":"r"}}',
    '{"traceId":"a","service":{"name":"s"}}',
    '{"traceId":"a","dd":{"service":"d"},"log":{"level":"error"}}',
    '{"traceId":"a","@mt":"Hello, {User}","User":"u"}',
    '{"traceId":"a","@m":"Hello"}',
    '{"mdc":{"traceId":"m"}}',
    '{"traceId":"a","instant":{"epochSecond":1,"nanoOfSecond":2}}',
    *[f'{{"traceId":"a","time":{when}}}' for when in (
        0, -0, -1, 9_223_372_036, 9_223_372_037, 10_000_000_000, 99_999_999_999, 100_000_000_000,
        99_999_999_999_999, 100_000_000_000_000, 999_999_999_999_999_999, -999_999_999_999_999_999,
        1_000_000_000_000_000_000)],
    *[f'{{"traceId":"a","level":{level}}}' for level in (-11, -10, -1, 0, 9, 10, 19, 20, 30, 59, 60, 61, 1000,
                                                          999_999_999_999_999_999, 1.5, "-0")],
])
@pytest.mark.parametrize("time_format", ["auto", "rfc3339", "epoch_s", "epoch_ms"])
def test_edge_lines_equal(text: str, time_format: str) -> None:
    chunk = RawChunk({}, "s", 5, [[1, text, "stdout", 0, 0]])
    fast, ref = both(chunk, ParseSettings(time_format=time_format))
    assert fast == ref


def test_common_lines_never_take_the_reference() -> None:
    """The scan must actually do the work: a typical line reaches `slow` only when it is unusual."""
    lines = [[n, make_doc(n, 1_749_543_941_000_000_000 + n).decode(), "stdout", 0, 0] for n in range(500)]
    lines.append([500, '{"traceId":"t","level":"INFO "}', "stdout", 0, 0])  # not an exact level spelling
    lines += [[501 + n, f'{{"level":{level},"time":{when},"traceId":"p{n}","msg":"pino"}}', "stdout", 0, 0]
              for n, (level, when) in enumerate([(30, 1_700_000_000_123), (50, 1_700_000_000), (-5, 0)])]
    taken: list[Any] = []
    s = ParseSettings()
    out = _linescan.split(lines, (s.trace_id_fields, s.time_fields, s.level_fields, s.service_fields),
                          _EXACT_LEVELS, 4, s.max_line_bytes, 1, "sid", True, 0, lambda raw: taken.append(raw))
    assert [raw[0] for raw in taken] == [500]
    assert sum(len(v) for v in out.values()) == 503
    pino = sorted((entry for part in out.values() for entry in part if entry[4].startswith("p")), key=lambda e: e[2])
    assert [(entry[5], entry[3]) for entry in pino] == [
        ("info", 1_700_000_000_123_000_000), ("error", 1_700_000_000_000_000_000), ("trace", 0)]


def test_bad_arguments_raise() -> None:
    with pytest.raises(ValueError, match="partitions"):
        _linescan.split([], (["a"], ["b"], ["c"], ["d"]), {}, 0, 10, 0, "s", True, 0, lambda raw: None)
    with pytest.raises(ValueError, match="4 name lists"):
        _linescan.split([], (["a"],), {}, 1, 10, 0, "s", True, 0, lambda raw: None)
    with pytest.raises(TypeError, match="9 fields"):
        _linescan.split([[0, "x", "", 0, 0]], (["a"], ["b"], ["c"], ["d"]), {}, 1, 10, 0, "s", True, 0,
                        lambda raw: [1])


def test_more_aliases_than_the_scan_takes_leave_lines_to_the_reference() -> None:
    parse = ParseSettings(trace_id_fields=["traceId", *[f"alias{n}" for n in range(20)]])
    chunk = RawChunk({}, "s", 5, [[1, '{"alias19":"t","level":"info"}', "stdout", 0, 0],
                                  [2, '{"traceId":"u"}', "stdout", 0, 0]])
    fast, ref = both(chunk, parse)
    assert fast == ref and sum(len(lines) for _, lines in fast[0].values()) == 2


# The scan skips plain string bytes eight at a time: a stop byte (quote, backslash, control character)
# or a multi-byte character at any offset of a word must be found exactly where the reference finds it.
@pytest.mark.parametrize("offset", range(18))
@pytest.mark.parametrize("stop", ['\\"', "\\\\", "\\n", "\\u00e9", "\u00e9", "\u20ac", "\U0001f600", "\x7f", "\x01",
                                  '"', "\\"])
def test_string_stops_at_every_word_offset(offset: int, stop: str) -> None:
    body = "a" * offset + stop + "b" * (17 - offset)
    texts = [f'{{"traceId":"t{body}","msg":"{body}","service":"s{body}","level":"info"}}',
             f'{{"m{body}":1,"traceId":"t","time":"2025-06-10T08:25:41.5Z"}}',
             f'{{"traceId":"{body}"}}']
    chunk = RawChunk({}, "s", 5, [[n, text, "stdout", 0, 0] for n, text in enumerate(texts)])
    fast, ref = both(chunk, ParseSettings())
    assert fast == ref


# Consecutive lines repeating a trace id or service reuse the previous line's objects and partition:
# whatever the order of repeats, breaks and untraced lines, the entries and their partitions are the reference's.
def pooled_line(trace: object, service: object, level: object, pos: int) -> list[Any]:
    fields = {"traceId": trace, "service": service, "level": level}
    return [pos, json.dumps({k: v for k, v in fields.items() if v is not None}, ensure_ascii=False), "stdout", 0, 0]


pooled_lines = st.builds(pooled_line, st.sampled_from(["a", "a", "b", "ab", "\u00e9", "", None, 7]),
                         st.sampled_from(["s", "s", "t", "\u00e9t", "", None]), st.sampled_from(["info", "warn", None]),
                         st.integers(0, 100))


@settings(max_examples=int(os.environ.get("LINESCAN_EXAMPLES", "600")), deadline=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(pooled_lines, min_size=1, max_size=20), st.sampled_from(["deadletter", "pass"]), st.integers(1, 5))
def test_repeated_traces_and_services_equal_reference(lines: list[list[Any]], untraced: str, partitions: int) -> None:
    chunk = RawChunk({}, "stream-x", 5, lines)
    fast, ref = both(chunk, ParseSettings(untraced=untraced), partitions)
    assert fast == ref


@pytest.mark.parametrize("key", ["traceID", "tracEId", "traceIx", "xraceId", "t", "", "levels", "leve", "servicE"])
def test_keys_near_field_names_equal_reference(key: str) -> None:
    """Keys sharing a field name's first byte or length are compared in full, never taken for it."""
    texts = [json.dumps({key: "k", "traceId": "a", "level": "warn", "service": "s"}),
             json.dumps({"traceId": "a", key: "k"}), json.dumps({key: "k"})]
    chunk = RawChunk({}, "s", 5, [[n, text, "stdout", 0, 0] for n, text in enumerate(texts)])
    fast, ref = both(chunk, ParseSettings(untraced="pass"))
    assert fast == ref
