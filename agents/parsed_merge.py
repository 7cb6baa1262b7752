"""Merges the parse outputs of many raw chunks into one parsed chunk per trace partition.

`LineParser.parse_chunk` gives, per raw chunk (one stream), a parsed chunk per destination
partition whose lines all point at source 0. The parse stage gathers those of every record it
takes (agents/parse.py) so `logs.parsed` carries large records even when each raw record holds a
few lines. Lines are moved, never re-encoded: a line keeps its list and only its source index
changes, to its source's place in the merged chunk (a stream's source is listed once per chunk).
Each partition keeps its lines in arrival order, so each stream's lines stay in position order.
With live rules, outputs routed by different rules versions never share a chunk: a merged chunk
carries one collection time (`ct`), by which the group stage picks the version (docs/rules.md).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any

from agents.forwarding import SOURCE_COST, lines_cost
from core.models import P_SRC, ParsedChunk


@dataclass(slots=True)
class _Pending:
    sources: list[dict[str, Any]] = field(default_factory=list)
    by_stream: dict[str, int] = field(default_factory=dict)  # stream id -> index of its source
    lines: list[list[Any]] = field(default_factory=list)
    size: int = 0
    collected_ns: int | None = None  # the first merged output's collection time
    epoch: Hashable = None  # the rules version its lines are routed by

    def add(self, source: dict[str, Any], stream_id: str, lines: list[list[Any]], cost: int) -> None:
        index = self.by_stream.get(stream_id)
        if index is None or self.sources[index] != source:
            index = self.by_stream[stream_id] = len(self.sources)
            self.sources.append(source)
            cost += SOURCE_COST
        if index:
            for line in lines:
                line[P_SRC] = index
        self.lines.extend(lines)
        self.size += cost

    def chunk(self) -> ParsedChunk:
        return ParsedChunk(self.sources, self.lines, collected_ns=self.collected_ns)


class MergedChunks:
    """Parsed lines per partition, from many raw chunks, as chunks under `limit_bytes` and `max_lines`.

    `ready` holds chunks already full (send them first, in order); `take` empties everything.
    """

    def __init__(self, limit_bytes: int, max_lines: int,
                 epoch_of: Callable[[int | None], Hashable] | None = None) -> None:
        self.limit, self.max_lines = limit_bytes, max_lines
        self.epoch_of = epoch_of  # collection time -> rules version; None: one version (settings only)
        self.ready: list[tuple[int, ParsedChunk]] = []
        self._pending: dict[int, _Pending] = {}
        self.lines = 0

    def add(self, source: dict[str, Any], stream_id: str, outputs: dict[int, ParsedChunk]) -> None:
        """Add one raw chunk's parse outputs (`LineParser.parse_chunk`: source 0 is `source`)."""
        for partition, parsed in outputs.items():
            lines = parsed.lines
            cost = lines_cost(lines)
            collected = parsed.collected_ns
            epoch = self.epoch_of(collected) if self.epoch_of is not None else None
            pending = self._pending.get(partition)
            if pending is None:
                pending = self._pending[partition] = _Pending(collected_ns=collected, epoch=epoch)
            elif pending.lines and (pending.size + cost + SOURCE_COST > self.limit or pending.epoch != epoch):
                self.ready.append((partition, pending.chunk()))
                pending = self._pending[partition] = _Pending(collected_ns=collected, epoch=epoch)
            elif not pending.lines:
                pending.collected_ns, pending.epoch = collected, epoch
            if cost + SOURCE_COST > self.limit:  # one chunk's lines alone: split them
                self.ready.extend((partition, ParsedChunk([source], piece, collected_ns=collected))
                                  for piece in self._split(lines))
                del self._pending[partition]
            else:
                pending.add(source, stream_id, lines, cost)
                if len(pending.lines) >= self.max_lines:
                    self.ready.append((partition, pending.chunk()))
                    del self._pending[partition]
            self.lines += len(lines)

    def _split(self, lines: list[list[Any]]) -> list[list[list[Any]]]:
        pieces: list[list[list[Any]]] = [[]]
        size = SOURCE_COST
        for line in lines:
            cost = lines_cost([line])
            if pieces[-1] and (size + cost > self.limit or len(pieces[-1]) >= self.max_lines):
                pieces.append([])
                size = SOURCE_COST
            line[P_SRC] = 0
            pieces[-1].append(line)
            size += cost
        return pieces

    def take_ready(self) -> list[tuple[int, ParsedChunk]]:
        ready, self.ready = self.ready, []
        return ready

    def take(self) -> list[tuple[int, ParsedChunk]]:
        """Every chunk, full ones first: per partition, in the order the lines came."""
        out = self.take_ready()
        out.extend((partition, pending.chunk()) for partition, pending in self._pending.items() if pending.lines)
        self._pending, self.lines = {}, 0
        return out
