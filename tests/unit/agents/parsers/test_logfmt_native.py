"""The C logfmt pass (agents/parsers/_logfmt.h, `logfmt_json`) writes a line's record exactly as
`orjson.dumps(parse_logfmt(line))` does, or leaves the line to the chain; and a logfmt source parses to the same
entries and dead letters with the pass as without it (the chain alone, as LOGWEAVE_PURE=1 runs it)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agents.line_parser import LineParser
from agents.parsers.chain import TextChain
from core.models import FLAG_BASE64, FLAG_TRUNCATED, RawChunk
from core.native import pure_requested
from core.settings import ParseSettings
from tests.fuzz.targets import check_logfmt_pass

_linescan = pytest.importorskip("agents._linescan", reason="C extension not built (pure-Python install)")

# the pieces logfmt's grammar turns on, the fields the parse stage reads, and what the C pass must leave alone
PIECES = ["a", "b1", "é", "=", '"', " ", "  ", "\t", "\r", "\n", "\\", '\\"', "{", "}", "k=v", 'q="x y"', 'e=""', "f",
          "traceId=t-1", "traceId=", "time=2025-06-10T08:25:41.5Z", "time=1749543941", "time=bad", "level=WARN",
          "level=7", "service=web", 'msg="a b"', "trace_id=t-2", "message=m", "\x00", "\x7f"]
LINES = st.lists(st.sampled_from(PIECES), max_size=14).map("".join)
RENAMED = ("trace_id", "message")  # canonical names a chain renames to their first configured alias


@settings(max_examples=2000, deadline=None)
@given(st.lists(LINES, max_size=8), st.booleans())
def test_each_line_is_written_as_orjson_writes_its_record_or_left_alone(texts: list[str], json_first: bool) -> None:
    lines = [[n, text, "stdout", 0, 0] for n, text in enumerate(texts)]
    check_logfmt_pass(lines, _linescan.logfmt_json(lines, json_first, RENAMED), json_first, RENAMED)


def test_a_chunk_whose_left_line_starts_with_a_brace_is_refused_when_logfmt_comes_first() -> None:
    lines = [[0, "a=1", "stdout", 0, 0], [1, '{"a":1}', "stdout", 0, 0]]
    assert _linescan.logfmt_json(lines, False, ()) is None  # the JSON scan would take it, where the chain tries logfmt
    out = _linescan.logfmt_json(lines, True, ())
    assert out is not None and out[0][1] == '{"a":"1"}' and out[1] is lines[1]


@pytest.mark.parametrize("raw", [
    [0, "a=1", "stdout", 0, FLAG_TRUNCATED], [0, "a=1", "stdout", 0, FLAG_BASE64], [0, b"a=1", "stdout", 0, 0],
    (0, "a=1", "stdout", 0, 0), [0, "a=1"], "a=1", [0, "a=1 a=2", "stdout", 0, 0],
    [0, "a=1 trace_id=x", "stdout", 0, 0],
    [0, " ".join(f"k{n}=v" for n in range(200)), "", 0, 0]])
def test_lines_it_is_not_sure_of_are_the_same_objects(raw: Any) -> None:
    out = _linescan.logfmt_json([raw], True, RENAMED)
    assert out is not None and out[0] is raw


def _parse(parser: LineParser, chunk: RawChunk) -> tuple[Any, Any]:
    parsed, dead = parser.parse_chunk(chunk, 4)
    return ({part: p.lines for part, p in parsed.items()},
            [d.as_dict() for d in dead])


def _assert_same_without_the_pass(parser: LineParser, chunk: RawChunk) -> None:
    """`chunk` parses the same with the C pass as with the chain alone (as LOGWEAVE_PURE=1 runs it)."""
    with_pass = _parse(parser, chunk)
    original = TextChain.as_json
    TextChain.as_json = lambda self, lines: None  # type: ignore[method-assign]
    try:
        without = _parse(parser, chunk)
    finally:
        TextChain.as_json = original  # type: ignore[method-assign]
    assert with_pass == without


SOURCES = [{"annotations": {"logweave.io/parser": "logfmt"}}, {"annotations": {"logweave.io/parser": "json,logfmt"}},
           {"annotations": {"logweave.io/parser": "logfmt,json"}}]


@settings(max_examples=600, deadline=None)
@given(st.lists(st.tuples(LINES | st.sampled_from(['{"traceId":"j","level":"info"}', "{a=1}", '{"x":']),
                          st.sampled_from([0, 0, 0, FLAG_TRUNCATED])), max_size=10),
       st.sampled_from(SOURCES), st.sampled_from(["pass", "deadletter"]))
def test_a_logfmt_source_parses_the_same_with_the_c_pass_as_without(lines: list[tuple[str, int]],
                                                                     source: dict[str, Any], untraced: str) -> None:
    parser = LineParser(ParseSettings(untraced=untraced))
    chunk = RawChunk(source, "sid", 1_749_543_941_000_000_000,
                     [[n, text, "stdout", n * 7, flags] for n, (text, flags) in enumerate(lines)])
    _assert_same_without_the_pass(parser, chunk)


@pytest.mark.skipif(pure_requested(), reason="LOGWEAVE_PURE=1 runs the chain alone")
def test_the_pass_runs_for_a_logfmt_source_and_a_rewritten_line_dead_letters_as_written() -> None:
    """A line the pass rewrites but the scan hands back (no trace id) is dead-lettered with its logfmt text."""
    parser = LineParser(ParseSettings())
    chunk = RawChunk(SOURCES[0], "sid", 1_749_543_941_000_000_000,
                     [[0, "traceId=t-1 level=warn msg=\"a b\" time=2025-06-10T08:25:41.5Z", "stdout", 0, 0],
                      [9, "level=info msg=untraced", "stdout", 0, 0]])
    chain = parser.sources.chain_for(SOURCES[0])
    assert chain is not None and chain.as_json(chunk.lines) is not None
    lines, dead = _parse(parser, chunk)
    entries = [entry for part in lines.values() for entry in part]
    written = '{"traceId":"t-1","level":"warn","msg":"a b","time":"2025-06-10T08:25:41.5Z"}'
    assert [e[2:8] for e in entries] == [[0, 1_749_543_941_500_000_000, "t-1", "warn", "", written]]
    assert [(d["reason"], d["line"], d["pos"]) for d in dead] == [
        ("missing_trace_id", "level=info msg=untraced", 9)]


@settings(max_examples=300, deadline=None)
@given(st.lists(LINES, max_size=8))
def test_renamed_fields_parse_the_same_with_the_c_pass_as_without(texts: list[str]) -> None:
    """Aliases other than the defaults: the chain renames `time`, `level`, `service` and `message` too."""
    parser = LineParser(ParseSettings(untraced="pass", time_fields=["ts"], level_fields=["severity"],
                                      service_fields=["app"], message_fields=["msg"]))
    chunk = RawChunk(SOURCES[0], "sid", 1, [[n, text, "stdout", 0, 0] for n, text in enumerate(texts)])
    _assert_same_without_the_pass(parser, chunk)
