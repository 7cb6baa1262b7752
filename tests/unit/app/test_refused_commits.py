"""Which remembered commits a refused commit takes back (app/refused_commits.py)."""

from __future__ import annotations

from typing import Any

from faust.types import TP

from app.refused_commits import forget_offsets

MINE, OTHER = TP("t", 0), TP("t", 1)


def test_only_offsets_the_refused_commit_tried_are_forgotten() -> None:
    committed: dict[Any, int | None] = {MINE: 4, OTHER: 9}
    assert forget_offsets(committed, {MINE: 4, OTHER: 7, TP("t", 2): 3}) == {MINE: 4}
    assert committed == {OTHER: 9}  # a commit that succeeded since (9) stays; an unknown partition stays unknown
