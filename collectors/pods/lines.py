"""Turns the byte chunks of a followed log response into whole lines.

An HTTP chunk of a log stream is not a line: it may hold several lines, or part of one, and a
line may span many chunks. Only newline-terminated lines are complete; the rest is kept until
more bytes arrive (or dropped when the stream breaks, because a resumed stream replays it).
A line longer than the limit keeps only its first `max_line_bytes` bytes (flagged truncated);
the rest is skipped up to its newline, so one huge line cannot grow memory without bound.
"""

from __future__ import annotations


class LineSplitter:
    """Feeds byte chunks, returns complete lines (without the newline) with a truncation flag."""

    __slots__ = ("_max", "_partial", "_truncated")

    def __init__(self, max_line_bytes: int) -> None:
        self._max = max_line_bytes
        self._partial = bytearray()
        self._truncated = False

    @property
    def remainder(self) -> bytes:
        """Bytes of an unfinished line (empty when the stream ended on a newline)."""
        return bytes(self._partial)

    @property
    def remainder_truncated(self) -> bool:
        return self._truncated

    @property
    def holds_nothing(self) -> bool:
        """Whether no unfinished line waits: the next bytes start a line."""
        return not self._partial and not self._truncated

    def reset(self) -> None:
        self._partial.clear()
        self._truncated = False

    def feed(self, data: bytes) -> list[tuple[bytes, bool]]:
        out: list[tuple[bytes, bool]] = []
        start = 0
        size = len(data)
        limit = self._max
        while start < size:
            end = data.find(b"\n", start)
            if end < 0:
                self._keep(data, start, size)
                break
            if self._partial or self._truncated:
                self._keep(data, start, end)
                out.append((bytes(self._partial), self._truncated))
                self.reset()
            elif end - start > limit:
                out.append((data[start:start + limit], True))
            else:
                out.append((data[start:end], False))
            start = end + 1
        return out

    def feed_block(self, data: bytes) -> tuple[list[tuple[bytes, bool]], bytes]:
        """The same lines as `feed`, most of them as one block: (the line completing the unfinished one
        when it is over the limit, or every line when one could be; then whole lines as a block of bytes
        ending with a newline, possibly empty, led by the completed unfinished line when within the
        limit). Lines come in that order: the list first, then the block.
        The block spares a bytes object and a tuple per line: a stream's reads are mostly whole lines."""
        if len(data) > self._max:
            return self.feed(data), b""
        head: list[tuple[bytes, bool]] = []
        start = 0
        prefix = b""
        if self._partial or self._truncated:
            first = data.find(b"\n")
            if first < 0:
                self._keep(data, 0, len(data))
                return head, b""
            if self._truncated or len(self._partial) + first > self._max:
                head = self.feed(data[:first + 1])
                start = first + 1
            else:  # the unfinished line, completed, leads the block: reads seldom end on a newline
                prefix = bytes(self._partial)
                self.reset()
        end = data.rfind(b"\n", start)
        if end < 0:
            self._keep(data, start, len(data))
            return head, b""
        if end + 1 < len(data):
            self._keep(data, end + 1, len(data))
        if prefix:
            return head, prefix + data[:end + 1]
        return head, data[start:end + 1] if start or end + 1 < len(data) else data

    def _keep(self, data: bytes, start: int, end: int) -> None:
        room = self._max - len(self._partial)
        if end - start > room:
            self._partial += data[start:start + room]
            self._truncated = True
        else:
            self._partial += data[start:end]
