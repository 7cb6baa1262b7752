"""Merges the parse outputs of many raw chunks into one parsed chunk per trace partition.

The parse stage's split gives, per raw chunk (one stream), its encoded entries per destination
partition (agents/encoded_lines.py). The parse stage gathers those of every record it takes
(agents/parse.py) so `logs.parsed` carries large records even when each raw record holds a few
lines. Entries are moved, never re-encoded: each run of them gets its source's place in the merged
chunk (a stream's source is listed once per chunk) when the record is joined. Each partition keeps
its lines in arrival order, so each stream's lines stay in position order. With live rules,
outputs routed by different rules versions never share a chunk: a merged chunk carries one
collection time (`ct`), by which the group stage picks the version (docs/rules.md).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any

from agents.encoded_lines import EncodedChunk, EncodedLines
from agents.forwarding import SOURCE_COST


@dataclass(slots=True)
class _Pending:
    sources: list[dict[str, Any]] = field(default_factory=list)
    by_stream: dict[str, int] = field(default_factory=dict)  # stream id -> index of its source
    parts: list[tuple[int, EncodedLines]] = field(default_factory=list)
    lines: int = 0
    size: int = 0
    collected_ns: int | None = None  # the first merged output's collection time
    epoch: Hashable = None  # the rules version its lines are routed by

    def add(self, source: dict[str, Any], stream_id: str, lines: EncodedLines) -> None:
        index = self.by_stream.get(stream_id)
        cost = lines.size
        if index is None or self.sources[index] != source:
            index = self.by_stream[stream_id] = len(self.sources)
            self.sources.append(source)
            cost += SOURCE_COST
        self.parts.append((index, lines))
        self.lines += lines.count
        self.size += cost

    def chunk(self) -> EncodedChunk:
        return EncodedChunk(self.sources, self.parts, self.collected_ns)


class MergedChunks:
    """Parsed lines per partition, from many raw chunks, as chunks under `limit_bytes` and `max_lines`.

    `ready` holds chunks already full (send them first, in order); `take` empties everything.
    """

    def __init__(self, limit_bytes: int, max_lines: int,
                 epoch_of: Callable[[int | None], Hashable] | None = None) -> None:
        self.limit, self.max_lines = limit_bytes, max_lines
        self.epoch_of = epoch_of  # collection time -> rules version; None: one version (settings only)
        self.ready: list[tuple[int, EncodedChunk]] = []
        self._pending: dict[int, _Pending] = {}
        self.lines = 0

    def add(self, source: dict[str, Any], stream_id: str, outputs: dict[int, EncodedLines],
            collected_ns: int | None = None) -> None:
        """Add one raw chunk's encoded entries per partition (each pointing at `source`), parsed by the
        rules version in effect at `collected_ns` (None: the only version)."""
        epoch = self.epoch_of(collected_ns) if self.epoch_of is not None else None
        for partition, lines in outputs.items():
            cost = lines.size
            pending = self._pending.get(partition)
            if pending is None:
                pending = self._pending[partition] = _Pending(collected_ns=collected_ns, epoch=epoch)
            elif pending.lines and (pending.size + cost + SOURCE_COST > self.limit or pending.epoch != epoch):
                self.ready.append((partition, pending.chunk()))
                pending = self._pending[partition] = _Pending(collected_ns=collected_ns, epoch=epoch)
            elif not pending.lines:
                pending.collected_ns, pending.epoch = collected_ns, epoch
            if cost + SOURCE_COST > self.limit:  # one chunk's lines alone: split them
                self.ready.extend((partition, EncodedChunk([source], [(0, piece)], collected_ns))
                                  for piece in lines.pieces(self.limit - SOURCE_COST, self.max_lines))
                del self._pending[partition]
            else:
                pending.add(source, stream_id, lines)
                if pending.lines >= self.max_lines:
                    self.ready.append((partition, pending.chunk()))
                    del self._pending[partition]
            self.lines += lines.count

    def take_ready(self) -> list[tuple[int, EncodedChunk]]:
        ready, self.ready = self.ready, []
        return ready

    def take(self) -> list[tuple[int, EncodedChunk]]:
        """Every chunk, full ones first: per partition, in the order the lines came."""
        out = self.take_ready()
        out.extend((partition, pending.chunk()) for partition, pending in self._pending.items() if pending.lines)
        self._pending, self.lines = {}, 0
        return out
