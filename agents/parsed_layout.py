"""Where a parsed chunk's parts are in a record's bytes, for the C loops that read it without decoding it.

The group stage reads a large `logs.parsed` record's folds from its bytes (agents/folded_chunk.py) and the
drain splices a sink record's documents from its bytes (agents/drain_runner.py). Both start the same
way: the C layout (agents/_sinksplice.h, `chunk_layout`) finds the sources, the lines, the order flag and
the collection time of a chunk written by orjson, and only the short source list is decoded.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from core.native import native_module


@dataclass(slots=True, frozen=True)
class ParsedLayout:
    sources: list[Any]  # the chunk's `srcs`, decoded
    lines_start: int  # its `lines` array: payload[lines_start:lines_end], brackets included
    lines_end: int
    ordered: bool
    collected_ns: int | None


def parsed_layout(payload: bytes) -> ParsedLayout | None:
    """The parts of a decompressed parsed chunk; None without the C loops, or for a chunk not exactly as
    orjson writes one (the caller decodes it, which also names what is wrong with it)."""
    module = native_module("line_scan")
    layout = module.chunk_layout(payload) if module is not None else None
    if layout is None:
        return None
    srcs_start, srcs_end, lines_start, lines_end, unordered, collected_ns = layout
    try:
        sources = orjson.loads(payload[srcs_start:srcs_end])
    except orjson.JSONDecodeError:
        return None
    if type(sources) is not list:
        return None
    return ParsedLayout(sources, lines_start, lines_end, not unordered, collected_ns)
