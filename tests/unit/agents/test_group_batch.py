"""The group agent's batches: consecutive small chunks of a partition applied as one, in order."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, cast

from agents.backlog import SourceProgress
from agents.group import MERGE_BELOW, GroupBatch, InputAcks, merge_chunks, runs
from core.models import P_SRC, ParsedChunk


def chunk(source: str, count: int, ordered: bool = True) -> ParsedChunk:
    return ParsedChunk([{"pod": source}], [[0, source, n, n, "t", "info", "", "{}", "stdout"] for n in range(count)],
                       ordered)


def test_merged_lines_point_at_their_own_source_and_keep_order() -> None:
    sources, lines = merge_chunks([chunk("a", 2), chunk("b", 3), chunk("c", 1)])
    assert sources == [{"pod": "a"}, {"pod": "b"}, {"pod": "c"}]
    assert [sources[line[P_SRC]]["pod"] for line in lines] == ["a", "a", "b", "b", "b", "c"]
    assert [line[2] for line in lines] == [0, 1, 0, 1, 2, 0]


def test_large_and_unordered_chunks_stay_on_their_own() -> None:
    items = [(n, c) for n, c in enumerate([chunk("a", 3), chunk("b", 3), chunk("big", MERGE_BELOW),
                                           chunk("c", 3), chunk("u", 3, ordered=False), chunk("d", 3)])]
    assert [[n for n, _ in run] for run in runs(items)] == [[0, 1], [2], [3], [4], [5]]


class Event:
    def __init__(self, partition: int, value: bytes) -> None:
        self.message, self.value = SimpleNamespace(partition=partition), value
        self.acks = 0

    def ack(self) -> None:
        self.acks += 1


def test_a_revoke_lets_go_unacked_every_record_held_or_waiting_for_its_persist() -> None:
    """What a fence drops (tables/trace_table.py): the records a batch holds and those whose update
    waits to be persisted are let go (faust's revoke would wait for their acks for ever), never acked."""
    let_go: list[Event] = []
    grouper = SimpleNamespace(traces=SimpleNamespace(sample_lines=5))  # what `add` reads of it
    batch = GroupBatch(cast(Any, grouper), SourceProgress(), 100, let_go=let_go.append)
    held = [Event(p, chunk("a", 2).encode()) for p in (0, 1)]
    for event in held:
        batch.add(event)
    assert batch.lines == 4
    batch.drop()
    assert let_go == held and batch.pending == {} and batch.lines == 0

    waiting = [Event(0, b""), Event(0, b"")]
    acks = InputAcks(cast(Any, waiting), let_go.append)
    acks.dropped()
    assert let_go[2:] == waiting and all(event.acks == 0 for event in held + waiting)
    acks()  # persisted instead: acked
    assert [event.acks for event in waiting] == [1, 1]
