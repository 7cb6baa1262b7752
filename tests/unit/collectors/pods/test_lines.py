"""LineSplitter: response chunks are not lines; any split of the bytes yields the same lines."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from collectors.pods.lines import LineSplitter


def test_chunk_with_several_lines_and_a_partial_one() -> None:
    splitter = LineSplitter(1024)
    assert splitter.feed(b"a\nbb\nccc") == [(b"a", False), (b"bb", False)]
    assert splitter.remainder == b"ccc"
    assert splitter.feed(b"c") == []
    assert splitter.feed(b"\n") == [(b"cccc", False)]
    assert splitter.remainder == b""


def test_empty_lines_are_lines() -> None:
    assert LineSplitter(10).feed(b"\n\nx\n") == [(b"", False), (b"", False), (b"x", False)]


def test_long_line_is_cut_and_the_rest_skipped_to_its_newline() -> None:
    splitter = LineSplitter(5)
    assert splitter.feed(b"0123456789\nok\n") == [(b"01234", True), (b"ok", False)]
    assert splitter.feed(b"abc") == []
    assert splitter.feed(b"defghij") == []
    assert splitter.remainder == b"abcde" and splitter.remainder_truncated
    assert splitter.feed(b"klm\nnext\n") == [(b"abcde", True), (b"next", False)]


def test_reset_drops_an_unfinished_line() -> None:
    splitter = LineSplitter(100)
    splitter.feed(b"half a li")
    splitter.reset()
    assert splitter.feed(b"whole\n") == [(b"whole", False)]


@given(st.lists(st.binary(max_size=30).map(lambda b: b.replace(b"\n", b"")), max_size=30),
       st.lists(st.integers(min_value=1, max_value=40), min_size=1, max_size=50))
def test_any_chunking_yields_the_same_lines(lines: list[bytes], sizes: list[int]) -> None:
    data = b"".join(line + b"\n" for line in lines) + b"tail"
    splitter = LineSplitter(64)
    out: list[bytes] = []
    start, i = 0, 0
    while start < len(data):
        size = sizes[i % len(sizes)]
        out += [line for line, _ in splitter.feed(data[start:start + size])]
        start += size
        i += 1
    assert out == lines
    assert splitter.remainder == b"tail"


@given(st.lists(st.binary(max_size=30).map(lambda b: b.replace(b"\n", b"")), max_size=30),
       st.lists(st.integers(min_value=1, max_value=90), min_size=1, max_size=50))
def test_blocks_hold_the_same_lines_in_the_same_order_as_feed(lines: list[bytes], sizes: list[int]) -> None:
    data = b"".join(line + b"\n" for line in lines) + b"tail"
    by_feed, by_block = LineSplitter(20), LineSplitter(20)  # lines and reads both over and under the limit
    expected: list[tuple[bytes, bool]] = []
    got: list[tuple[bytes, bool]] = []
    start, i = 0, 0
    while start < len(data):
        piece = data[start:start + sizes[i % len(sizes)]]
        expected += by_feed.feed(piece)
        head, block = by_block.feed_block(piece)
        assert not block or block.endswith(b"\n")
        got += head + [(line, False) for line in block.split(b"\n")[:-1]]
        start += len(piece)
        i += 1
    assert got == expected
    assert (by_block.remainder, by_block.remainder_truncated) == (by_feed.remainder, by_feed.remainder_truncated)
