"""How the Kafka sink cuts a trace's lines into records that fit a message."""

from __future__ import annotations

from sinks.base import SinkLine
from sinks.kafka import _fit


def line(n: int, size: int) -> SinkLine:
    return SinkLine(f"l-{n:x}", "t", 0, "info", "svc", b"x" * size, n, 0)


def test_runs_stay_within_the_budget_and_keep_order() -> None:
    lines = [line(n, 99) for n in range(25)]  # 100 bytes each with its newline
    parts = list(_fit(lines, 1000))
    assert [len(p) for p in parts] == [10, 10, 5]
    assert [x.offset for p in parts for x in p] == list(range(25))


def test_a_line_longer_than_the_budget_goes_alone() -> None:
    parts = list(_fit([line(0, 10), line(1, 5000), line(2, 10)], 1000))
    assert [[x.offset for x in p] for p in parts] == [[0], [1], [2]]
