"""Parsed entries kept in orjson's encoding from the parse stage's split to the `logs.parsed` record.

Why: the parse stage's C split of a raw record's bytes (agents/_rawsplit.h, `split_raw`) writes each
parsed entry as orjson writes it, copying the line's literals from the raw record; keeping the entries
as bytes until their record is joined saves a Python list per line and orjson's encoding of it. An
entry is kept without its `[<source index>`: the merge (agents/parsed_merge.py) learns the index only
when it places a stream's lines in a record. The joined record is byte for byte `ParsedChunk.encode`
of the same lines (tests/unit/agents/test_encoded_lines.py).
"""

from __future__ import annotations

from array import array
from dataclasses import dataclass
from itertools import accumulate
from typing import Any

import orjson

from core.models import SCHEMA_VERSION
from core.native import native_module

ENTRY_OVERHEAD = 8  # bytes an entry takes in a record beyond its body: `,` `[` and the source index
_scan = native_module("line_scan")


@dataclass(slots=True, frozen=True)
class EncodedLines:
    """Parsed entries, in order: `body` holds them back to back, each as orjson writes it without its
    leading `[<source index>`; `ends` where each ends in `body` (native uint32)."""

    body: bytes
    ends: bytes

    @property
    def count(self) -> int:
        return len(self.ends) // 4

    @property
    def size(self) -> int:
        """The bytes these entries take in a record."""
        return len(self.body) + ENTRY_OVERHEAD * self.count

    @classmethod
    def from_entries(cls, lines: list[list[Any]]) -> EncodedLines:
        """The entries of the reference parse (`LineParser.parse_chunk`, source index 0) encoded."""
        pieces = [orjson.dumps(line) for line in lines]
        if any(not piece.startswith(b"[0,") for piece in pieces):
            raise ValueError("parsed entries to encode must point at source 0")
        return cls(b"".join([piece[2:] for piece in pieces]),
                   array("I", accumulate(len(piece) - 2 for piece in pieces)).tobytes())

    def bounds(self) -> list[tuple[int, int]]:
        """Where each entry is in `body`."""
        ends = array("I")
        ends.frombytes(self.ends)
        return list(zip([0, *ends[:-1]] if ends else [], ends, strict=True))

    def pieces(self, limit: int, max_lines: int) -> list[EncodedLines]:
        """These entries in consecutive runs of at most `max_lines` entries whose `size` stays within
        `limit` (an entry larger than the limit makes a run of its own)."""
        runs: list[EncodedLines] = []
        first, size, count = 0, 0, 0
        kept = array("I")
        for start, stop in self.bounds():
            cost = stop - start + ENTRY_OVERHEAD
            if count and (size + cost > limit or count >= max_lines):
                runs.append(EncodedLines(self.body[first:start], kept.tobytes()))
                first, size, count, kept = start, 0, 0, array("I")
            kept.append(stop - first)
            size += cost
            count += 1
        if count:
            runs.append(EncodedLines(self.body[first:], kept.tobytes()))
        return runs


def join_entries(head: bytes, parts: list[tuple[int, EncodedLines]], tail: bytes) -> bytes:
    """`head`, the entries of `parts` [(source index, lines)] each opened with `[<source index>` and
    separated by commas, then `tail` (`join_parsed` in C; this is its reference)."""
    if _scan is not None:
        joined: bytes = _scan.join_parsed(head, [(index, lines.body, lines.ends) for index, lines in parts], tail)
        return joined
    body = b",".join([b"[%d%s" % (index, lines.body[start:stop])
                      for index, lines in parts for start, stop in lines.bounds()])
    return head + body + tail


@dataclass(slots=True)
class EncodedChunk:
    """A `logs.parsed` record of encoded entries: what the parse stage sends."""

    sources: list[dict[str, Any]]
    parts: list[tuple[int, EncodedLines]]  # (index of the lines' source in `sources`, lines)
    collected_ns: int | None = None

    @property
    def line_count(self) -> int:
        return sum(lines.count for _, lines in self.parts)

    def encode(self) -> bytes:
        """The record as `ParsedChunk(sources, lines, collected_ns=...).encode()` writes it."""
        head = b'{"v":%d,"t":"parsed","srcs":%s,"lines":[' % (SCHEMA_VERSION, orjson.dumps(self.sources))
        tail = b"]}" if self.collected_ns is None else b'],"ct":%d}' % self.collected_ns
        return join_entries(head, self.parts, tail)
