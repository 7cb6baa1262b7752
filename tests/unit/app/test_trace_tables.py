"""The trace table is fenced when a revoke reaches the event loop, before faust's own revoke handling,
and a persist waits while the consumer thread has begun a rebalance the fence has not handled yet.

The App is real (create_app); faust's own `_on_partitions_revoked` (which needs a running consumer)
is replaced by a recorder, and the table by a stand-in that records its fence: what the table does
when fenced is tested in tests/unit/tables/test_trace_table_commits.py, and on real workers in
tests/e2e/test_scale_out.py.
"""

from __future__ import annotations

from typing import Any

import faust
import pytest
from faust.types import TP

from app.faust_app import create_app
from app.trace_tables import fence_table_on_revoke
from core.settings import Settings


class FenceRecorder:
    def __init__(self) -> None:
        self.fenced: list[set[int]] = []
        self.rebalance_unhandled: Any = None

    def partitions_unpersisted(self) -> set[int]:
        return {7}

    def fence(self, partitions: set[int]) -> None:
        self.fenced.append(set(partitions))


async def test_a_revoke_fences_the_table_before_faust_handles_it(monkeypatch: pytest.MonkeyPatch) -> None:
    app = create_app(Settings())
    table = FenceRecorder()
    fence_table_on_revoke(app, table)  # type: ignore[arg-type]
    order: list[str] = []

    async def faust_revoke(self: Any, revoked: set[TP]) -> None:
        order.append(f"faust saw the fence: {bool(table.fenced)}")

    monkeypatch.setattr(faust.App, "_on_partitions_revoked", faust_revoke)
    await app._on_partitions_revoked({TP("logs.parsed", 1), TP("logs.raw", 3)})
    assert table.fenced == [{1, 3, 7}]  # the revoked partitions and any holding unpersisted updates
    assert order == ["faust saw the fence: True"]


def test_a_persist_waits_while_the_consumer_thread_began_a_rebalance_the_fence_has_not_handled() -> None:
    app = create_app(Settings())
    table = FenceRecorder()
    fence_table_on_revoke(app, table)  # type: ignore[arg-type]
    assert table.rebalance_unhandled() is False
    app.on_rebalance_start()  # what the consumer thread calls first when a rebalance begins
    assert table.rebalance_unhandled() is True
    app.revoke_hooks[-1]({TP("logs.parsed", 0)})  # the revoke reached the event loop
    assert table.rebalance_unhandled() is False
    app.on_rebalance_end()
    assert table.rebalance_unhandled() is False
