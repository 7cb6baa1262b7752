"""Encoded parsed entries: a joined record is byte for byte `ParsedChunk.encode`, in C and in Python, and
runs cut by size keep every entry once, in order."""

from __future__ import annotations

import os
from array import array
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import agents.encoded_lines as encoded_lines
from agents.encoded_lines import ENTRY_OVERHEAD, EncodedChunk, EncodedLines
from core.models import ParsedChunk

EXAMPLES = int(os.environ.get("LINESCAN_EXAMPLES", "600"))
entries = st.builds(lambda sid, pos, when, trace, text: [0, sid, pos, when, trace, "info", "svc", text, "stdout"],
                    st.text(max_size=6), st.integers(0, 2**63 - 1), st.integers(-2**63, 2**63 - 1),
                    st.text(max_size=8), st.text(max_size=40))
runs = st.lists(st.tuples(st.integers(0, 12), st.lists(entries, max_size=6)), max_size=5)


def reindexed(index: int, lines: list[list[Any]]) -> list[list[Any]]:
    return [[index, *line[1:]] for line in lines]


@settings(max_examples=EXAMPLES, deadline=None)
@given(runs, st.one_of(st.none(), st.integers(-2**63, 2**63 - 1)))
def test_joined_record_is_parsed_chunk_encode(parts: list[tuple[int, list[list[Any]]]], ct: int | None) -> None:
    for name in ("C", "Python"):
        saved = encoded_lines._scan
        if name == "Python":
            encoded_lines._scan = None
        elif saved is None:
            continue
        try:
            sources = [{"n": n} for n in range(13)]
            chunk = EncodedChunk(sources, [(index, EncodedLines.from_entries(lines)) for index, lines in parts], ct)
            expected = ParsedChunk(sources, [e for index, lines in parts for e in reindexed(index, lines)],
                                   collected_ns=ct)
            assert chunk.encode() == expected.encode(), name
            assert chunk.line_count == len(expected.lines)
        finally:
            encoded_lines._scan = saved


@settings(max_examples=EXAMPLES, deadline=None)
@given(st.lists(entries, max_size=30), st.integers(1, 400), st.integers(1, 7))
def test_pieces_keep_every_entry_in_order_within_bounds(lines: list[list[Any]], limit: int, max_lines: int) -> None:
    whole = EncodedLines.from_entries(lines)
    pieces = whole.pieces(limit, max_lines)
    assert b"".join(piece.body for piece in pieces) == whole.body
    assert [piece.body[start:stop] for piece in pieces for start, stop in piece.bounds()] == \
        [whole.body[start:stop] for start, stop in whole.bounds()]
    for piece in pieces:
        assert 1 <= piece.count <= max_lines
        assert piece.size <= limit or piece.count == 1, "only an entry larger than the limit stands alone over it"
        assert piece.size == len(piece.body) + ENTRY_OVERHEAD * piece.count


def test_entries_not_of_source_zero_are_refused() -> None:
    with pytest.raises(ValueError, match="source 0"):
        EncodedLines.from_entries([[1, "s", 0, 0, "t", "", "", "{}", ""]])


def test_c_join_refuses_ends_outside_the_body() -> None:
    """The C join copies by the ends it is given: one past the body must raise, not read past it."""
    if encoded_lines._scan is None:
        pytest.skip("C extension not built or off (LOGWEAVE_PURE=1)")
    with pytest.raises(ValueError, match="outside"):
        encoded_lines.join_entries(b"", [(0, EncodedLines(b"ab", array("I", [1, 3]).tobytes()))], b"")
