"""A commit the broker refused is not remembered as made: a partition's acks keep counting after it.

faust remembers, per partition, the offset it last committed (`Consumer._committed_offset`) and
ignores every later ack of a record below it. `_commit_offsets` records the offsets it tried even when
the commit failed: faust's aiokafka driver returns False, without a word, for the `CommitFailedError`
of a group that "has already rebalanced". In a burst of rebalances that commit is typically still in
flight when the revoke clears faust's bookkeeping of the partitions it revoked, so its failed result
lands in the next generation. A partition this worker got back then kept a committed offset the broker
never stored: its records, read again from the broker's commit, were processed but every ack of them
was ignored, and nothing was committed until records above that offset arrived. Seen once in
tests/integration/monitoring/test_prometheus.py's two-worker test on a loaded machine: `logs.raw`
partition 1 at end offset 4 and never committed, every line delivered, the worker's log showing the
revoke, then five `OffsetCommit failed ... UnknownMemberIdError`.

`forget_refused_commits()` wraps `_commit_offsets`: when it reports no commit, each partition whose
remembered offset is the one this call tried goes back to "not known" (faust's state for a partition
not committed yet), so acks count and the next commit stores what was processed. A partition whose
remembered offset a successful commit has set since is left alone.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from faust.transport.consumer import Consumer

log = logging.getLogger(__name__)

ORIGINAL_COMMIT_OFFSETS = "_logweave_original_commit_offsets"


def forget_refused_commits() -> None:
    """Patch faust's Consumer once per process (idempotent)."""
    if hasattr(Consumer, ORIGINAL_COMMIT_OFFSETS):
        return
    original = Consumer._commit_offsets

    async def _commit_offsets(self: Any, offsets: Mapping[Any, int], start_new_transaction: bool = True) -> bool:
        did_commit: bool = await original(self, offsets, start_new_transaction=start_new_transaction)
        if not did_commit:
            forgotten = forget_offsets(self._committed_offset, offsets)
            if forgotten:
                tried = ", ".join(f"{tp.topic}[{tp.partition}] at {offset}" for tp, offset in sorted(forgotten.items()))
                log.info("the broker refused a commit (the group rebalanced): %s counted as not committed", tried)
        return did_commit

    setattr(Consumer, ORIGINAL_COMMIT_OFFSETS, original)
    Consumer._commit_offsets = _commit_offsets  # type: ignore[method-assign]


def forget_offsets(committed: dict[Any, int | None], tried: Mapping[Any, int]) -> dict[Any, int]:
    """Drop from `committed` each partition still remembered at the offset a failed commit tried;
    returns those dropped."""
    forgotten: dict[Any, int] = {}
    for tp, offset in tried.items():
        if committed.get(tp) == offset:  # .get: faust's defaultdict gains no entry
            del committed[tp]
            forgotten[tp] = offset
    return forgotten
