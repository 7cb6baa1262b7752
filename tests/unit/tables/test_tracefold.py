"""The C fold (tables/_tracefold.c) gives exactly the reference fold, and takes the common chunk.

Differential: every generated chunk is folded by the C loop and by `fold_reference`; the results
must be equal, or the C loop must decline (None) a chunk holding a line it was not written for.
The generators aim at what the loop decides itself: empty and non-ASCII trace ids, times at the
int64 edges, level spellings, empty/None/repeated services past the name bound, repeated sources,
texts around the sample cut in every string width.
"""

from __future__ import annotations

import os
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tables.trace_state as trace_state_module
from core.models import ParsedChunk
from core.native import native_module
from tables.trace_state import _MAX_NAMES, _SAMPLE_CHARS, fold_reference, fold_traces

_tracefold = pytest.importorskip("tables._tracefold", reason="C extension not built (pure-Python install)")
_linescan = pytest.importorskip("agents._linescan", reason="C extension not built (pure-Python install)")
if native_module("trace_fold") is None:
    pytest.skip("the C fold is off in this process (LOGWEAVE_PURE=1)", allow_module_level=True)

INT64 = 2**63
EXAMPLES = int(os.environ.get("TRACEFOLD_EXAMPLES", "300"))
WIDE_TEXT = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=8)
LONG_TEXT = st.builds(lambda unit, n: unit * n, st.sampled_from(["a", "é", "€", "🎉", '{"x":1}']),
                      st.integers(_SAMPLE_CHARS - 2, _SAMPLE_CHARS + 2))


def fold_both(lines: list[Any], sample_lines: int) -> tuple[dict[str, Any] | None, dict[str, Any]]:
    return _tracefold.fold(lines, sample_lines, _SAMPLE_CHARS, 2 * _MAX_NAMES), fold_reference(lines, sample_lines)


lines_strategy = st.lists(st.builds(
    lambda src, pos, time, trace, level, service, text: [src, "s1", pos, time, trace, level, service, text, "stdout"],
    st.integers(0, 4), st.integers(0, 10**6),
    st.one_of(st.integers(-INT64, INT64 - 1), st.sampled_from([0, 1_749_543_941_000_000_000, -INT64, INT64 - 1])),
    st.one_of(st.sampled_from(["", "t1", "t2", "ü-trace", "🎉"]), WIDE_TEXT),
    st.one_of(st.sampled_from(["trace", "debug", "info", "warn", "error", "fatal", "INFO", "", "notice", "érror"]),
              WIDE_TEXT),
    st.one_of(st.none(), st.sampled_from(["", "svc", "db", "ü"]), st.builds(lambda n: f"s{n}", st.integers(0, 40)),
              WIDE_TEXT),
    st.one_of(WIDE_TEXT, LONG_TEXT)), max_size=120)


@settings(max_examples=EXAMPLES, deadline=None)
@given(lines_strategy, st.integers(0, 6))
def test_the_c_fold_equals_the_reference(lines: list[Any], sample_lines: int) -> None:
    folded, reference = fold_both(lines, sample_lines)
    assert folded is not None, "the C loop declined lines it was written for"
    assert folded == reference
    assert list(folded) == list(reference)  # first-seen order


ODD_VALUES = [
    (3, INT64), (3, -INT64 - 1), (3, 1.5), (3, None), (3, True),  # times past int64 or not ints
    (5, None), (5, 1),  # levels that are not strings
    (6, 7), (6, b"svc"),  # services neither strings nor None
    (0, "0"), (0, INT64), (0, False),  # source indices that are not ints
    (7, None), (7, b"{}"),  # texts that are not strings
    (4, 12), (4, None),  # trace ids that are not strings
]


@pytest.mark.parametrize(("field", "value"), ODD_VALUES)
def test_a_line_the_c_loop_was_not_written_for_declines_the_chunk(field: int, value: Any) -> None:
    lines = [[0, "s1", 1, 10, "t1", "info", "svc", "{}", "stdout"] for _ in range(3)]
    lines[1][field] = value
    assert _tracefold.fold(lines, 2, _SAMPLE_CHARS, 2 * _MAX_NAMES) is None
    try:
        expected = fold_reference(lines, 2)
    except TypeError:  # e.g. a None time: the reference's error reaches the caller, as before the C loop
        with pytest.raises(TypeError):
            fold_traces(lines, 2)
    else:
        assert fold_traces(lines, 2) == expected


def test_short_lines_and_non_lists_decline_the_chunk() -> None:
    assert _tracefold.fold([[0, "s1", 1, 10, "t1", "info", "svc"]], 2, _SAMPLE_CHARS, 32) is None
    assert _tracefold.fold([(0, "s1", 1, 10, "t1", "info", "svc", "{}", "x")], 2, _SAMPLE_CHARS, 32) is None


def test_common_lines_are_folded_in_c(monkeypatch: pytest.MonkeyPatch) -> None:
    start = 1_749_543_941_000_000_000
    lines = [[n % 3, "s1", n, start + n, f"trace-{n // 10}", "info", "checkout", "{}", "stdout"] for n in range(100)]
    monkeypatch.setattr(trace_state_module, "fold_reference", lambda *args: pytest.fail("fell back"))
    folded = fold_traces(lines, 5)
    assert len(folded) == 10 and folded["trace-3"][:5] == [10, start + 30, start + 39, 2, 0]
    assert folded["trace-3"][6] == [0, 1, 2]


def test_services_are_bounded_and_untraced_lines_left_out() -> None:
    lines = [[0, "s1", n, n, "t1" if n % 2 else "", "error", f"svc{n}", "x" * 600, "stdout"] for n in range(100)]
    folded, reference = fold_both(lines, 3)
    assert folded == reference and list(folded or {}) == ["t1"]
    count, _, _, rank, errors, services, _, sample = reference["t1"]
    assert (count, rank, errors, len(services)) == (50, 4, 50, 2 * _MAX_NAMES)
    assert [len(text) for text in sample] == [_SAMPLE_CHARS] * 3


def test_argument_errors() -> None:
    with pytest.raises(TypeError):
        _tracefold.fold("lines", 1, 1, 1)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="must be >= 0"):
        _tracefold.fold([], -1, 1, 1)


# ---- fold_raw: the same folds read from the record's bytes (orjson's encoding of a parsed chunk) -------

def layout_of(lines: list[Any], sources: int = 5) -> tuple[bytes, int, int]:
    payload = ParsedChunk([{"pod": f"p{n}"} for n in range(sources)], lines, True, 7).encode()
    layout = _linescan.chunk_layout(payload)
    assert layout is not None
    return payload, layout[2], layout[3]


def fold_raw(lines: list[Any], sample_lines: int, sources: int = 5) -> Any:
    payload, start, end = layout_of(lines, sources)
    return _tracefold.fold_raw(payload, start, end, sources, sample_lines, _SAMPLE_CHARS, 2 * _MAX_NAMES)


def as_json(folds: dict[str, Any]) -> bytes:
    """Folds as the trace states store them: the raw fold's samples may be orjson Fragments of their literal."""
    return orjson.dumps(folds)


def streams_reference(lines: list[Any]) -> list[list[Any]] | None:
    """[stream id, first, last position] first seen first, or None if a stream's positions do not rise."""
    streams: dict[str, list[Any]] = {}
    for line in lines:
        entry = streams.get(line[1])
        if entry is None:
            streams[line[1]] = [line[1], line[2], line[2]]
        elif line[2] <= entry[2]:
            return None
        else:
            entry[2] = line[2]
    return list(streams.values())


raw_lines_strategy = st.lists(st.builds(
    lambda src, sid, step, time, trace, level, service, text: [src, sid, step, time, trace, level, service, text,
                                                               "stdout"],
    st.integers(0, 4), st.sampled_from(["s1", "s2", "ü-stream", 's"q', "s\\b", "s\n"]), st.integers(1, 3),
    st.one_of(st.integers(-INT64, INT64 - 1), st.sampled_from([0, 1_749_543_941_000_000_000, -INT64, INT64 - 1])),
    st.one_of(st.sampled_from(["", "t1", "t2", "ü-trace", "🎉", 't"3', "t\x01"]), WIDE_TEXT),
    st.one_of(st.sampled_from(["trace", "debug", "info", "warn", "error", "fatal", "INFO", "", "notice", "érror"]),
              WIDE_TEXT),
    st.one_of(st.sampled_from(["", "svc", "db", "ü", 'q"s']), WIDE_TEXT),
    st.one_of(WIDE_TEXT, LONG_TEXT, st.sampled_from(['{"msg":"a \\"quoted\\" word\\n"}', "tab\there", "\x7f\x1f"]))),
    max_size=80)
# what makes the C reader decline a chunk, each in some examples: a position repeated or going back (a
# replay), a null service
odd_line = st.one_of(st.none(), st.tuples(st.integers(0, 79), st.sampled_from(["repeat", "back", "null service"])))


def positions_from_steps(lines: list[Any], odd: tuple[int, str] | None = None) -> list[Any]:
    """Field 2 holds a step: positions rise per stream by it; `odd` makes one line repeat its stream's last
    position, go back, or have a null service."""
    if odd is not None and odd[0] < len(lines):
        line = lines[odd[0]]
        if odd[1] == "null service":
            line[6] = None
        else:
            line[2] = 0 if odd[1] == "repeat" else -1
    at: dict[str, int] = {}
    for line in lines:
        at[line[1]] = line[2] = at.get(line[1], 100) + line[2]
    return lines


@settings(max_examples=EXAMPLES, deadline=None)
@given(raw_lines_strategy, odd_line, st.integers(0, 6))
def test_the_raw_fold_equals_the_reference_or_declines_for_a_reason(lines: list[Any], odd: tuple[int, str] | None,
                                                                    sample_lines: int) -> None:
    lines = positions_from_steps(lines, odd)
    read = fold_raw(lines, sample_lines)
    streams = streams_reference(lines)
    # declined: a stream whose positions do not rise, a null service, a level orjson escapes
    if streams is None or any(line[6] is None or b"\\" in orjson.dumps(line[5]) for line in lines):
        assert read is None
        return
    assert read is not None, "the raw fold declined a chunk it was written for"
    count, read_streams, folds = read
    reference = fold_reference(lines, sample_lines)
    assert count == len(lines) and read_streams == streams
    assert as_json(folds) == as_json(reference) and list(folds) == list(reference)


def test_the_raw_fold_declines_what_it_does_not_read() -> None:
    line = [0, "s1", 1, 10, "t1", "info", "svc", '{"a":1}', "stdout"]
    assert fold_raw([line, [*line[:2], 2, *line[3:]]], 2) is not None
    assert fold_raw([line, line], 2) is None  # a position repeated: replayed lines are deduped one by one
    assert fold_raw([[4, *line[1:]]], 2, sources=4) is None  # a source index past the sources
    assert fold_raw([[*line[:6], None, *line[7:]]], 2) is None  # a null service
    payload, start, end = layout_of([line])
    spaced = payload[:start] + b"[ " + payload[start + 1:]
    assert _tracefold.fold_raw(spaced, start, end + 1, 5, 2, _SAMPLE_CHARS, 32) is None  # not orjson's form
    assert _tracefold.fold_raw(payload, start, end - 1, 5, 2, _SAMPLE_CHARS, 32) is None  # cut short
    assert _tracefold.fold_raw(payload, start, end + 5, 5, 2, _SAMPLE_CHARS, 32) is None  # past the end
    assert _tracefold.fold_raw(payload, start, start + 2, 5, 2, _SAMPLE_CHARS, 32) is None  # `[{` is no array
    with pytest.raises(ValueError, match="must be >= 0"):
        _tracefold.fold_raw(payload, start, end, 5, -1, _SAMPLE_CHARS, 32)


def test_an_empty_lines_array_reads_as_no_lines() -> None:
    payload = b'{"v":1,"t":"parsed","srcs":[],"lines":[]}'
    layout = _linescan.chunk_layout(payload)
    assert layout is not None and layout[5] is None
    assert _tracefold.fold_raw(payload, layout[2], layout[3], 0, 2, _SAMPLE_CHARS, 32) == (0, [], {})


def test_many_traces_grow_the_folds_past_their_first_room() -> None:
    lines = [[0, "s1", n, n, f"t{n}", "info", "svc", "x", "stdout"] for n in range(1000)]
    count, _, folds = fold_raw(lines, 1)
    assert count == 1000 and as_json(folds) == as_json(fold_reference(lines, 1))


def test_samples_that_fit_are_their_literal_and_longer_ones_are_cut() -> None:
    fits, long = '{"msg":"a \\"quoted\\" word"}', "é" * (_SAMPLE_CHARS + 1)
    lines = [[0, "s1", n, n, "t1", "info", "svc", text, "stdout"] for n, text in enumerate([fits, long])]
    _, _, folds = fold_raw(lines, 2)
    literal, cut = folds["t1"][7]
    assert isinstance(literal, orjson.Fragment) and orjson.dumps(literal) == orjson.dumps(fits)
    assert cut == long[:_SAMPLE_CHARS]


@pytest.mark.parametrize("escape", ['"', "\\", "\n", "\\\"", "\"\\", "é", "\x01", "\t\""])
def test_escapes_at_every_offset_of_a_sixteen_byte_block(escape: str) -> None:
    """The raw reader takes texts sixteen bytes at a time: an escape (or a byte it leaves to the byte loop)
    at each offset, also as a block's last byte, whose escaped byte opens the next block."""
    texts = [f"{'a' * n}{escape}{'b' * (40 - n)}{escape}" for n in range(40)]
    lines = [[0, "s1", n, n, "t1", "info", "svc", text, "stdout"] for n, text in enumerate(texts)]
    read = fold_raw(lines, len(lines))
    assert read is not None
    assert as_json(read[2]) == as_json(fold_reference(lines, len(lines)))
