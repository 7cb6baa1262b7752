"""Syslog frames out of a TCP byte stream, many per read: RFC 6587 octet counting (`LEN SP MSG`) when
a frame starts with a digit, else LF framing (up to and including the LF). LF and CR between frames
(a sender's LF after an octet-counted frame, an empty line) are skipped.

Splitting whole reads in one pass, instead of awaiting the stream per frame, is what lets a syslog
connection run at tens of thousands of lines per second; the pass runs in C
(collectors/intake/_intakefast.c, split_frames) when built, `_split` here is its reference.
"""

from __future__ import annotations

from core.native import native_module

_DIGITS = frozenset(b"0123456789")
_COUNT_DIGITS = 10  # an octet count longer than this is not one


class FrameSplitter:
    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.buffer = b""

    def feed(self, data: bytes) -> list[bytes]:
        """The frames completed by `data`; ValueError for a frame over `max_bytes` or a bad count."""
        buf = self.buffer + data if self.buffer else data
        fast = native_module("intake_lines")
        frames, at = fast.split_frames(buf, self.max_bytes) if fast is not None else self._split(buf)
        self.buffer = buf[at:]
        return frames  # type: ignore[no-any-return]

    def _split(self, buf: bytes) -> tuple[list[bytes], int]:
        """The whole frames at the start of `buf` and the bytes they took."""
        frames: list[bytes] = []
        at, end = 0, len(buf)
        while at < end:
            first = buf[at]
            if first in (10, 13):
                at += 1
                continue
            if first in _DIGITS:
                space = buf.find(b" ", at, at + _COUNT_DIGITS + 1)
                if space < 0:
                    if end - at > _COUNT_DIGITS:
                        raise ValueError("an octet-counted frame has no space after its length")
                    break
                digits = buf[at:space]
                if not digits.isdigit():
                    raise ValueError(f"octet count {digits[:20]!r} is not a number")
                length = int(digits)
                if length > self.max_bytes:
                    raise ValueError(f"octet-counted frame of {length} bytes is over intake.max_line_bytes")
                stop = space + 1 + length
                if stop > end:
                    break
                frames.append(buf[space + 1:stop])
                at = stop
            else:
                newline = buf.find(b"\n", at)
                if newline < 0:
                    if end - at > self.max_bytes:
                        raise ValueError("a line is over intake.max_line_bytes without LF")
                    break
                frames.append(buf[at:newline + 1])
                at = newline + 1
        return frames, at

    def close(self) -> bytes | None:
        """At the end of the stream: the last line if it had no LF; ValueError for a cut octet-counted frame."""
        rest, self.buffer = self.buffer.strip(b"\r\n"), b""
        if not rest:
            return None
        if rest[0] in _DIGITS:
            raise ValueError("the connection closed inside an octet-counted frame")
        return rest
