"""Drops replayed lines: per partition and source stream, the highest position already applied.

Lines of one source stream reach a `logs.parsed` partition in stream order (one raw partition per
stream, one parse actor per raw partition), so any line at or below the stream's high-water mark
in that partition was applied before: a collector re-sending its in-flight window, or a worker
re-processing chunks after a crash. The marks live in the trace table's store under
`\\x00s<stream id>` (value `<position>:<last seen unix seconds>`), outliving the traces they fed,
and are forgotten after `traces.stream_retention` without a line.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from core.models import P_POS, P_SID

STREAM_PREFIX = b"\x00s"


def stream_key(stream_id: str) -> bytes:
    return STREAM_PREFIX + stream_id.encode()


def decode_mark(value: bytes) -> tuple[int, int]:
    position, _, seen = value.partition(b":")
    return int(position), int(seen or 0)


def fresh_lines(lines: list[list[Any]], read: Callable[[bytes], bytes | None], now_s: int,
                updates: dict[bytes, bytes | None]) -> list[list[Any]]:
    """Lines above their stream's mark; the new marks are added to `updates`.

    A chunk from the parse stage usually holds lines of one stream in rising positions: then one
    comparison with the stored mark decides for the whole chunk.
    """
    if lines and len({line[P_SID] for line in lines}) == 1:
        positions = [line[P_POS] for line in lines]
        if positions == sorted(positions) and len(set(positions)) == len(positions):  # strictly rising
            sid = lines[0][P_SID]
            stored = read(stream_key(sid))
            if not stored or positions[0] > decode_mark(stored)[0]:
                updates[stream_key(sid)] = b"%d:%d" % (positions[-1], now_s)
                return lines
    return fresh_lines_by_line(lines, read, now_s, updates)


def fresh_lines_by_line(lines: list[list[Any]], read: Callable[[bytes], bytes | None], now_s: int,
                        updates: dict[bytes, bytes | None]) -> list[list[Any]]:
    """The rule itself, one line at a time: a line is fresh above the highest position of its stream
    seen so far (stored, or earlier in the chunk); every stream's mark is written with `now_s`."""
    marks: dict[str, int] = {}
    fresh: list[list[Any]] = []
    for line in lines:
        sid, pos = line[P_SID], line[P_POS]
        mark = marks.get(sid)
        if mark is None:
            stored = read(stream_key(sid))
            mark = decode_mark(stored)[0] if stored else -1
        if pos <= mark:
            marks[sid] = mark
            continue
        marks[sid] = pos
        fresh.append(line)
    for sid, mark in marks.items():
        updates[stream_key(sid)] = b"%d:%d" % (mark, now_s)
    return fresh


def expired(items: Iterator[tuple[bytes, bytes]], now_s: int, retention_s: float) -> list[bytes]:
    """Keys of marks whose stream sent nothing for `retention_s`."""
    return [key for key, value in items if now_s - decode_mark(value)[1] > retention_s]
