"""Shared fixtures: a real Kafka-protocol broker (noida-db) per test that asks for one."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from app.broker import EmbeddedBroker
from tests.support.kafka import start_broker


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[EmbeddedBroker]:
    """A fresh noida-db broker on a free port; SIGKILLed at teardown (SERVICES.md)."""
    embedded = start_broker(tmp_path / "broker")
    try:
        yield embedded
    finally:
        embedded.stop(kill=True)
