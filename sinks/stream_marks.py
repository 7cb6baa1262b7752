"""Per source stream, the highest position a sink has written, read from the line id.

A line can reach a sink topic twice under different offsets: the group stage forwards, the
worker dies before its state is durable, and the re-processed chunk is forwarded again. Sinks that
upsert by line id (etcd, Elasticsearch) absorb that; sinks that append (files, S3 objects) keep these
marks beside their own position and skip lines at or below them. Lines of one source stream reach
one sink-topic partition in stream order, so one mark per stream suffices.

`unseen` runs once per delivered line, so its loop is in C (sinks/_marks.c) when this process runs the
C loops (core/native.py); `unseen_reference` is the Python reference it is tested against.
"""

from __future__ import annotations

from collections.abc import Callable

from core.models import parse_line_id
from core.native import native_module
from sinks.base import SinkLine


def stream_position(line: SinkLine) -> tuple[str, int]:
    """(stream digest, position) of a sink line, from its line id."""
    return parse_line_id(line.line_id)


def stream_key(line_id: str) -> tuple[str, int] | None:
    """(stream digest, position) of a Logweave line id, as `unseen` reads it; None for anything else."""
    digest, sep, hex_position = line_id.rpartition("-")
    if not sep or not digest:
        return None
    try:
        return digest, int(hex_position, 16)
    except ValueError:
        return None


def unseen(lines: list[SinkLine], marks: dict[str, int]) -> list[SinkLine]:
    """Lines above their stream's mark; `marks` is advanced to the lines returned."""
    native = _native_unseen()
    if native is not None:
        return native(lines, marks)
    return unseen_reference(lines, marks)


def _native_unseen() -> Callable[[list[SinkLine], dict[str, int]], list[SinkLine]] | None:
    module = native_module("stream_marks")
    found: Callable[[list[SinkLine], dict[str, int]], list[SinkLine]] | None = getattr(module, "unseen", None)
    return found


def unseen_reference(lines: list[SinkLine], marks: dict[str, int]) -> list[SinkLine]:
    """The Python reference of `unseen`. The line id is read inline (as `parse_line_id` reads it)."""
    out: list[SinkLine] = []
    append = out.append
    for line in lines:
        if not line.ordered:  # released held lines: no order to rely on; written (rare replay dups)
            append(line)
            continue
        digest, sep, hex_position = line.line_id.rpartition("-")
        try:
            position = int(hex_position, 16)
        except ValueError:  # not a Logweave line id: nothing to compare
            append(line)
            continue
        if not sep or not digest:
            append(line)
            continue
        if position <= marks.get(digest, -1):
            continue
        marks[digest] = position
        append(line)
    return out
