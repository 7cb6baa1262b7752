"""SourceProgress: a partition is caught up only when what the stage processed reaches the high watermark."""

from __future__ import annotations

from collections import defaultdict

from faust.types import TP

from agents.backlog import SourceProgress

A, B = TP("logs.parsed", 0), TP("logs.parsed", 1)


class Consumer:
    """The two things SourceProgress reads from faust's consumer."""

    def __init__(self, highwaters: dict[TP, int | None], committed: dict[TP, int]) -> None:
        self.highwaters = highwaters
        self._committed_offset: defaultdict[TP, int | None] = defaultdict(lambda: None, committed)

    def highwater(self, tp: TP) -> int | None:
        return self.highwaters.get(tp)


def test_lag_from_processed_offsets_then_committed_then_unknown() -> None:
    progress = SourceProgress()
    consumer = Consumer({A: 10, B: 7}, {B: 7})
    assert progress.lag(consumer, A) == 10  # nothing processed or committed: from the start
    assert progress.caught_up(consumer, [B])  # nothing new since the committed offset
    progress.processed(A, 8)
    assert progress.lag(consumer, A) == 1 and not progress.caught_up(consumer, [A, B])
    progress.processed(A, 9)
    assert progress.caught_up(consumer, [A, B])
    assert progress.lag(Consumer({}, {}), A) is None and not progress.caught_up(Consumer({}, {}), [A])


def test_a_revoked_partition_forgets_its_progress() -> None:
    progress = SourceProgress()
    progress.processed(A, 9)
    progress.forget([A])
    assert progress.lag(Consumer({A: 12}, {A: 11}), A) == 1
