"""What waits for the rules topic at start (a worker's stages, a collector's reads) is let go when it is read,
warned about while it is not, and, given a bound or a stop, not held past them."""

from __future__ import annotations

import asyncio
import logging

import pytest

from kafka_io.rules_topic import ReadAtStart


@pytest.fixture()
def quick_warnings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ReadAtStart, "WARN_EVERY", 0.05)


async def test_a_waiter_is_let_go_once_the_topic_is_read(quick_warnings: None,
                                                         caplog: pytest.LogCaptureFixture) -> None:
    read = ReadAtStart()
    waiting = asyncio.ensure_future(read.wait("parse stage"))
    with caplog.at_level(logging.WARNING, logger="kafka_io.rules_topic"):
        for _ in range(100):  # two warnings, however slow the machine
            if len(caplog.records) >= 2:
                break
            await asyncio.sleep(0.05)
        assert not waiting.done() and not read.done
        read.mark()
        assert await asyncio.wait_for(waiting, 1) is True
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) >= 2 and all(w.startswith("parse stage: still reading the rules topic") for w in warnings)


async def test_a_bound_gives_up_with_one_line(quick_warnings: None, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="kafka_io.rules_topic"):
        assert await asyncio.wait_for(ReadAtStart().wait("collector", bound=0.12), 1) is False
    assert "collector: the rules topic was not read within 0.12 s" in caplog.records[-1].getMessage()


async def test_a_stop_ends_the_wait_at_once() -> None:
    stop = asyncio.Event()
    waiting = asyncio.ensure_future(ReadAtStart().wait("collector", bound=60, stop=stop))
    await asyncio.sleep(0.01)
    stop.set()
    assert await asyncio.wait_for(waiting, 1) is False


async def test_read_before_the_wait_returns_at_once() -> None:
    read = ReadAtStart()
    read.mark()
    assert await asyncio.wait_for(read.wait("group stage", bound=0), 1) is True
