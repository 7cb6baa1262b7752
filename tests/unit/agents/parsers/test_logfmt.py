"""logfmt's fast path (str methods, for lines without escapes, tabs or control characters) reads every line
exactly as the general regex walk does: the same pairs, or the same refusal."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agents.parsers.logfmt import parse_logfmt, parse_logfmt_escaped

# lines made of the pieces logfmt's grammar turns on: keys, `=`, quotes, blanks, escapes, whole pairs
PIECES = ["a", "b1", "é", "=", '"', " ", "  ", "\t", "\n", "\\", '\\"', "k=v", 'q="x y"', 'e=""', "f"]
LINES = st.lists(st.sampled_from(PIECES), max_size=12).map("".join)


@settings(max_examples=1500, deadline=None)
@given(LINES)
def test_fast_path_reads_every_line_as_the_regex_walk(text: str) -> None:
    assert parse_logfmt(text) == parse_logfmt_escaped(text)


@pytest.mark.parametrize(("text", "expected"), [
    ('a="x"y=1', {"a": "x", "y": "1"}),
    ("a=b=c d= e", {"a": "b=c", "d": "", "e": True}),
    ('k="" z="sp ace"', {"k": "", "z": "sp ace"}),
    ("  a=1   b=2 ", {"a": "1", "b": "2"}),
])
def test_fast_path_cases(text: str, expected: dict[str, object]) -> None:
    assert parse_logfmt(text) == expected == parse_logfmt_escaped(text)


@pytest.mark.parametrize("text", ['a= "x"', 'a="x""y"', 'a="x"=y', "=x", 'a=b"c', 'a=b="c"', "flag only"])
def test_fast_path_refusals(text: str) -> None:
    assert parse_logfmt(text) is None and parse_logfmt_escaped(text) is None
