"""refresh_lag over a rebalance: a partition revoked while the lag is being read is skipped, not a
crash. `make test-under-load` caught the stats sampler crashing a worker with aiokafka's "Partition is not
assigned" when a second worker joined during its await; the rebalance is stood in for by a consumer whose
assignment changes at that await, since a real one cannot be made to land at that exact point."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from faust.types import TP

from app.web import refresh_lag

KEPT, REVOKED = TP("logs.raw", 0), TP("logs.raw", 1)


class RebalancedConsumer:
    """Assigned KEPT and REVOKED; REVOKED is taken away while the earliest offsets are read. highwater
    asserts the partition is assigned, as aiokafka's does."""

    def __init__(self) -> None:
        self.assigned = {KEPT, REVOKED}
        self._committed_offset = {KEPT: 5}

    def assignment(self) -> set[TP]:
        return set(self.assigned)

    async def earliest_offsets(self, *partitions: TP) -> dict[TP, int]:
        self.assigned.discard(REVOKED)  # the rebalance lands here
        return {tp: 0 for tp in partitions}

    def highwater(self, tp: TP) -> int:
        assert tp in self.assigned, "Partition is not assigned"
        return 12


async def test_a_partition_revoked_while_lag_is_read_is_skipped() -> None:
    app: Any = SimpleNamespace(consumer=RebalancedConsumer())
    assert await refresh_lag(app) == {"logs.raw": 7}  # KEPT: highwater 12 - committed 5
