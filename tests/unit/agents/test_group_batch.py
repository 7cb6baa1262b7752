"""The group agent's batches: consecutive small chunks of a partition applied as one, in order."""

from __future__ import annotations

from agents.group import MERGE_BELOW, merge_chunks, runs
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
