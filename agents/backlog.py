"""How far this worker's stages have processed their source partitions, and whether any is behind.

The idle gap may only count while nothing is queued for a partition (agents/idle_clock.py). The
consumer's own read offset runs ahead of processing (records wait in faust's stream buffers), so
each stage records the offset it has finished with; a partition is caught up when that reaches the
high watermark of the consumer's last fetch. A partition this worker has processed nothing of since
it was assigned is caught up only if its committed offset already is the high watermark.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from faust.types import TP


class SourceProgress:
    """Next offset to process, per source topic-partition, as the stages report it."""

    def __init__(self) -> None:
        self.next_offset: dict[TP, int] = {}

    def processed(self, tp: TP, offset: int) -> None:
        self.next_offset[tp] = offset + 1

    def forget(self, tps: Iterable[TP]) -> None:
        for tp in tps:
            self.next_offset.pop(tp, None)

    def lag(self, consumer: Any, tp: TP) -> int | None:
        """Records of `tp` not yet processed, or None while the consumer has not fetched it yet."""
        highwater: int | None = consumer.highwater(tp)
        if highwater is None:
            return None
        done = self.next_offset.get(tp)
        if done is None:
            committed: int | None = consumer._committed_offset.get(tp)
            done = committed or 0
        return max(0, highwater - done)

    def caught_up(self, consumer: Any, tps: Iterable[TP]) -> bool:
        return all(self.lag(consumer, tp) == 0 for tp in tps)
