"""Records faust fetched but never handed to a stream are fetched again: no record is skipped.

faust's `Consumer.getmany` takes a batch of records from aiokafka's fetcher (which moves each
partition's position past them) and hands them one by one to its streams. It drops the rest of the
batch when the stream flow is suspended (a rebalance began) or the group generation changed while
it iterated, and skips records of partitions that are not active at that moment. Only for a batch
that arrives while the flow is already suspended does it seek back, and that seek is aiokafka's
`seek_to_committed()`, which moves only partitions whose committed offset is above 0 (`if offset
and offset > 0`). A partition with no commit yet, or with records dropped in any other case, kept
its position past records no stream ever saw: they were never read again, faust's commits stepped
over them, and when a later owner read them again the group stage's per-stream dedupe mark was past
them. Seen in tests/e2e/test_scale_out.py on a loaded machine (first rebalances in a burst,
generations 2-4 within two seconds, no `logs.raw` partition committed yet): 100-1,200 lines lost;
a debug trace showed a worker parse partition 2 from offset 3 while offset 2 was never parsed.

`rewind_unhanded_records()` wraps `getmany`: when a batch ends, every partition whose records were
not all handed to the streams is put back at the first one not handed, if its position is still
past it (a seek to committed offsets, or the reset of a new assignment, that already moved it back
is left alone). Records already handed are never fetched again by this; nothing else changes.

The same wrapper tells the batch's tracker (agents/fetched_batch.py) what is still to be handed, so
parse and group take a whole fetch before they flush.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

from faust.transport.drivers.aiokafka import Consumer

from agents.fetched_batch import fetched_batch

log = logging.getLogger(__name__)

ORIGINAL_GETMANY = "_logweave_original_getmany"
_ORIGINAL_WAIT = "_logweave_original_wait_next_records"
_LAST_BATCH = "_logweave_last_batch"


def rewind_unhanded_records() -> None:
    """Patch faust's aiokafka Consumer once per process (idempotent)."""
    if hasattr(Consumer, ORIGINAL_GETMANY):
        return
    original_getmany = Consumer.getmany
    original_wait = Consumer._wait_next_records

    async def _wait_next_records(self: Any, timeout: float) -> Any:
        records, active_partitions = await original_wait(self, timeout)
        setattr(self, _LAST_BATCH, records)
        if records:
            fetched_batch(self).taken(records)
        return records, active_partitions

    async def getmany(self: Any, timeout: float) -> AsyncIterator[tuple[Any, Any]]:
        setattr(self, _LAST_BATCH, None)
        last_handed: dict[Any, int] = {}
        handing = fetched_batch(self)
        try:
            async for tp, message in original_getmany(self, timeout):
                last_handed[tp] = message.offset
                handing.handed(tp.topic)
                yield tp, message
        finally:
            handing.ended()
        targets = first_unhanded_offsets(getattr(self, _LAST_BATCH, None) or {}, last_handed)
        setattr(self, _LAST_BATCH, None)
        if targets:
            rewound = await self._thread.call_thread(
                rewind_positions, self._thread._ensure_consumer(), targets)
            if rewound:
                log.info("fetching again records taken from Kafka but not handed to a stream "
                         "(a rebalance or a paused partition): %s",
                         ", ".join(f"{tp.topic}[{tp.partition}] from offset {offset}"
                                   for tp, offset in sorted(rewound.items())))

    setattr(Consumer, ORIGINAL_GETMANY, original_getmany)
    setattr(Consumer, _ORIGINAL_WAIT, original_wait)
    Consumer._wait_next_records = _wait_next_records  # type: ignore[method-assign]
    Consumer.getmany = getmany  # type: ignore[method-assign]


def first_unhanded_offsets(batch: Mapping[Any, Sequence[Any]],
                           last_handed: Mapping[Any, int]) -> dict[Any, int]:
    """For each partition of `batch` with records after the last one handed (or none handed), the
    offset of the first of them."""
    targets: dict[Any, int] = {}
    for tp, records in batch.items():
        handed = last_handed.get(tp, -1)
        if not records or records[-1].offset <= handed:
            continue  # the common case: every record handed
        for record in records:
            if record.offset > handed:
                targets[tp] = record.offset
                break
    return targets


async def rewind_positions(consumer: Any, targets: Mapping[Any, int]) -> dict[Any, int]:
    """On the consumer's own thread: seek each assigned partition whose position is past its
    target back to it; returns the partitions moved. A partition no longer assigned, or whose
    position is being reset (a new assignment), is left alone."""
    assignment = consumer._subscription.subscription.assignment if (
        consumer._subscription.subscription is not None) else None
    if assignment is None:
        return {}
    rewound: dict[Any, int] = {}
    for tp, offset in targets.items():
        state = assignment.state_value(tp)
        if state is None or not state.has_valid_position or state.position <= offset:
            continue
        consumer.seek(tp, offset)
        rewound[tp] = offset
    return rewound
