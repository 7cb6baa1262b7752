"""A partition restored from the changelog after its deadline index was built: the index is dropped
and rebuilt from the restored store, so a stored trace is never taken for a new one.

Seen in tests/e2e/test_scale_out.py: a close check during a rebalance (faust's recovery `completed`
stays set after the first recovery) built partition 1's index while its store was still empty; the
restored trace was then absent from it, the next line started a fresh state, and the summary counted
4 of the trace's 5 lines. Two tables on real RocksDB stand for the old and the new owner; the
changelog record the old one sends is the one the new one restores (no faust App: object.__new__).
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import orjson

from agents.grouper import TraceGrouper
from agents.routing import Router
from core.settings import Settings
from tables.trace_table import CHANGELOG_KEY, TraceWindowTable
from tests.unit.tables.test_trace_table_cache import table_on

SOURCES = [{"kind": "file", "pod": "p1"}]


class Sent:
    def done(self) -> bool:
        return True


def grouper_of(table: TraceWindowTable) -> TraceGrouper:
    settings = Settings(traces={"gap": 30, "allowed_lateness": 5})
    return TraceGrouper(table, Router(settings.routing, ["file"]), settings,
                        lambda sink, value, partition: Sent(), lambda value, partition: Sent())


def line(pos: int, trace: str) -> list[Any]:
    return [0, "s1", pos, 1_700_000_000_000_000_000 + pos, trace, "info", "svc", f'{{"n":{pos}}}', "stdout"]


def test_a_trace_restored_after_the_deadline_index_was_built_keeps_counting(tmp_path: Path) -> None:
    old_owner, _, changelog = table_on(tmp_path / "old")
    grouper_of(old_owner).process_chunk(0, SOURCES, [line(100, "t1")])  # persisted at once (outputs acked)
    assert [partition for partition, _ in changelog] == [0]

    new_owner, _, _ = table_on(tmp_path / "new")
    grouper = grouper_of(new_owner)
    grouper.deadline_index(0)  # a close check while the partition is restored: its store is still empty
    record = SimpleNamespace(message=SimpleNamespace(tp=("changelog", 0), offset=0, partition=0, key=CHANGELOG_KEY,
                                                     value=changelog[0][1]))
    new_owner.apply_changelog_batch([cast(Any, record)])
    grouper.process_chunk(0, SOURCES, [line(200, "t1")])

    state = orjson.loads(new_owner.read(0, b"t1") or b"{}")
    assert state["count"] == 2
