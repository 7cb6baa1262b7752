"""Sends routed lines to `sink.<name>` topics as chunks under the broker's message size limit."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from core.models import P_SRC, P_TEXT, ParsedChunk

_LINE_OVERHEAD = 160  # bytes of list framing and fields per line besides its text
SOURCE_COST = 256  # bytes a chunk's source entry is reckoned at


def lines_cost(lines: list[list[Any]]) -> int:
    """The reckoned encoded size of parsed `lines` (text twice: escaping and the stored copy)."""
    return sum([len(line[P_TEXT]) for line in lines]) * 2 + _LINE_OVERHEAD * len(lines)


def build_chunks(lines: list[list[Any]], sources: list[dict[str, Any]], limit_bytes: int,
                 ordered: bool = True) -> list[ParsedChunk]:
    """Pack `lines` (whose P_SRC index into `sources`) into chunks whose encoding stays under the limit.

    Lines that fit in one chunk go out as they are, with every source of the chunk they came from
    (a few unused source entries cost less than copying each line to re-index it).
    """
    if len(sources) <= 8:
        total = lines_cost(lines) + SOURCE_COST * len(sources)
        if total <= limit_bytes:
            return [ParsedChunk(sources, lines, ordered)]
    chunks: list[ParsedChunk] = []
    current = ParsedChunk(ordered=ordered)
    index: dict[int, int] = {}
    size = 0
    for line in lines:
        cost = len(line[P_TEXT]) * 2 + _LINE_OVERHEAD
        if current.lines and size + cost > limit_bytes:
            chunks.append(current)
            current, index, size = ParsedChunk(ordered=ordered), {}, 0
        src_index = line[P_SRC]
        local = index.get(src_index)
        if local is None:
            local = index[src_index] = len(current.sources)
            current.sources.append(sources[src_index])
            size += SOURCE_COST
        entry = list(line)
        entry[P_SRC] = local
        current.lines.append(entry)
        size += cost
    if current.lines:
        chunks.append(current)
    return chunks


def forward(lines_by_sink: dict[str, list[list[Any]]], sources: list[dict[str, Any]], partition: int,
            send: Callable[[str, bytes, int], Any], limit_bytes: int, ordered: bool = True) -> list[Any]:
    """Send each sink's lines as chunks to its topic partition; return the send futures."""
    futures = []
    for sink_name, lines in lines_by_sink.items():
        for chunk in build_chunks(lines, sources, limit_bytes, ordered):
            futures.append(send(sink_name, chunk.encode(), partition))
    return futures
