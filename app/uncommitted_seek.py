"""Rewinding to the committed offsets also rewinds the partitions that have no committed offset yet.

faust's consumer thread takes records from aiokafka's fetcher and, while the stream flow is
suspended (a rebalance, a recovery), drops them and calls `perform_seek()` so that they are fetched
again once the flow resumes. aiokafka's `seek_to_committed()` seeks only partitions whose committed
offset is above 0 (`if offset and offset > 0`): a partition with no commit yet, or with 0 committed,
keeps the position past the dropped records, which are then never read again. faust's commits can
step over such a hole, and a record skipped in a stream's order also defeats the group stage's
per-stream dedupe: when the record is read again after a later rebalance, the stream's mark is past
it and its lines are dropped as duplicates.

Seen in tests/e2e/test_scale_out.py on a loaded machine: the workers' first rebalances came in a
burst (generations 2-4 within two seconds) while lines were fed, no `logs.raw` partition had a
commit yet, and 100-1,200 lines of the first records never reached the sink. A debug trace showed a
worker at generation 4 parse `logs.raw` partition 2 from offset 3 while offset 2 was never parsed.

`rewind_uncommitted_partitions()` makes the seek put each assigned partition without a committed
offset (or with 0) back where `consumer_auto_offset_reset` starts it: the log start for "earliest",
the end for "latest". Records read again are applied once (the dedupe marks, idempotent sinks).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread

_ORIGINAL = "_logweave_original_seek_to_committed"


def rewind_uncommitted_partitions() -> None:
    """Patch faust's aiokafka consumer thread once per process (idempotent)."""
    if hasattr(AIOKafkaConsumerThread, _ORIGINAL):
        return
    setattr(AIOKafkaConsumerThread, _ORIGINAL, AIOKafkaConsumerThread.seek_to_committed)
    AIOKafkaConsumerThread.seek_to_committed = seek_to_committed  # type: ignore[method-assign]


async def seek_to_committed(self: Any) -> Mapping[Any, int | None]:
    """faust's `seek_to_committed`, run in the consumer thread, plus the rewind of uncommitted partitions."""
    return await self.call_thread(seek_consumer_to_committed, self._ensure_consumer(),
                                  str(self.app.conf.consumer_auto_offset_reset))


async def seek_consumer_to_committed(consumer: Any, reset: str) -> Mapping[Any, int | None]:
    """Seek an aiokafka consumer's assigned partitions to their committed offsets, and those without
    one (or with 0) to where `reset` ("earliest" or "latest") starts them; returns the committed offsets."""
    committed: Mapping[Any, int | None] = await consumer.seek_to_committed()
    uncommitted = [tp for tp, offset in committed.items() if not offset]
    if uncommitted:
        if reset == "latest":
            await consumer.seek_to_end(*uncommitted)
        else:
            await consumer.seek_to_beginning(*uncommitted)
    return committed
