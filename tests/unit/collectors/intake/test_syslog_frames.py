"""Octet-counted and LF-framed syslog split from arbitrary reads, as a TCP stream delivers them."""

from __future__ import annotations

import random

import pytest

from collectors.intake.syslog_frames import FrameSplitter


def octet(message: bytes) -> bytes:
    return b"%d %s" % (len(message), message)


def test_frames_come_out_whole_however_the_stream_is_cut() -> None:
    messages = [b"<13>1 - h a - - - hello", b"<13>1 - h a - - - with\nnewline and 12 digits", b"<34>Oct 11 x: y"]
    stream = octet(messages[0]) + b"\n" + octet(messages[1]) + messages[2] + b"\n\r\n" + octet(messages[0])
    expected = [messages[0], messages[1], messages[2] + b"\n", messages[0]]
    rng = random.Random(1)
    for _ in range(200):
        splitter, frames, at = FrameSplitter(100), [], 0
        while at < len(stream):
            step = rng.randrange(1, 20)
            frames += splitter.feed(stream[at:at + step])
            at += step
        assert frames == expected and splitter.close() is None


def test_the_last_line_without_lf_counts_and_a_cut_count_frame_does_not() -> None:
    splitter = FrameSplitter(100)
    assert splitter.feed(b"<13>last line") == [] and splitter.close() == b"<13>last line"
    cut = FrameSplitter(100)
    assert cut.feed(b"20 <13>only part") == []
    with pytest.raises(ValueError, match="inside an octet-counted frame"):
        cut.close()


def test_oversize_and_malformed_frames_are_refused() -> None:
    with pytest.raises(ValueError, match="max_line_bytes"):
        FrameSplitter(10).feed(b"11 <13>abcdefgh")
    with pytest.raises(ValueError, match="max_line_bytes"):
        FrameSplitter(10).feed(b"<13>abcdefghijk")
    with pytest.raises(ValueError, match="no space"):
        FrameSplitter(100).feed(b"12345678901234567890")
    with pytest.raises(ValueError, match="not a number"):
        FrameSplitter(100).feed(b"12a45 x")
