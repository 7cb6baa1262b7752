"""faust's commit table is drawn only when its log line is written (app/lazy_commit_table.py)."""

from __future__ import annotations

import logging

import faust.transport.consumer as faust_consumer
import pytest
from faust.utils import terminal

from app.faust_app import create_app
from app.lazy_commit_table import LazyTable
from core.settings import Settings

ROWS = [("logs.raw-0", "12"), ("logs.raw-1", "7")]


def test_the_worker_defers_faust_commit_tables() -> None:
    create_app(Settings())
    consumer_terminal = vars(faust_consumer)["terminal"]
    deferred = consumer_terminal.logtable(ROWS, title="Commit Offsets", headers=["TP", "Offset"])
    assert isinstance(deferred, LazyTable)
    assert consumer_terminal.table is terminal.table  # the rest of the module is faust's own


def test_a_written_line_shows_the_same_table_as_faust_draws(caplog: pytest.LogCaptureFixture) -> None:
    deferred = LazyTable(ROWS, {"title": "Commit Offsets", "headers": ["TP", "Offset"]})
    drawn = terminal.logtable(ROWS, title="Commit Offsets", headers=["TP", "Offset"])
    with caplog.at_level(logging.INFO):
        logging.getLogger("commit").info("COMMITTING OFFSETS:\n%s", deferred)
    assert caplog.records[0].getMessage() == f"COMMITTING OFFSETS:\n{drawn}"
    assert "logs.raw-1" in drawn and "12" in drawn


def test_an_unwritten_line_never_draws(monkeypatch: pytest.MonkeyPatch) -> None:
    def draw(*args: object, **kwargs: object) -> str:
        raise AssertionError("drawn for a line that is not written")

    monkeypatch.setattr(terminal, "logtable", draw)
    logger = logging.getLogger("commit.quiet")
    logger.setLevel(logging.WARNING)
    logger.debug("COMMITTING OFFSETS:\n%s", LazyTable(ROWS, {}))
