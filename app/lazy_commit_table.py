"""faust's commit no longer draws a table of its offsets for a debug line that is never written.

faust's `Consumer._commit_offsets` renders every commit's offsets as a terminal table
(terminaltables, column widths measured cell by cell) and hands it to a `dev`-level log call, which
a worker never writes. On the live bench (200 pods x 20 lines/s) that drawing was 2.9% of the
worker's busy samples (py-spy), paid on each of the several commits a second.

`draw_commit_tables_lazily()` gives faust's consumer module a `terminal` whose `logtable` returns an
object that draws the table when the log line is formatted, so only a written line pays for it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import faust.transport.consumer as faust_consumer
from faust.utils import terminal


class LazyTable:
    """`terminal.logtable(data, **options)`, drawn when turned into text."""

    def __init__(self, data: Sequence[Any], options: dict[str, Any]) -> None:
        self.data, self.options = data, options

    def __str__(self) -> str:
        return str(terminal.logtable(self.data, **self.options))


class LazyTerminal:
    """faust.utils.terminal with a `logtable` that defers its drawing."""

    def __getattr__(self, name: str) -> Any:
        return getattr(terminal, name)

    @staticmethod
    def logtable(data: Sequence[Any], **options: Any) -> LazyTable:
        return LazyTable(data, options)


def draw_commit_tables_lazily() -> None:
    """Swap the `terminal` faust's consumer module uses (idempotent)."""
    faust_consumer.terminal = LazyTerminal()  # type: ignore[assignment,attr-defined]
