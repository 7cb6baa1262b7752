"""One real broker (noida-db) for a whole intake test module; tests keep apart by topic prefix."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from commands.broker import EmbeddedBroker
from tests.support.kafka import start_broker


@pytest.fixture(scope="module")
def intake_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedBroker]:
    embedded = start_broker(Path(tmp_path_factory.mktemp("intake")) / "broker")
    try:
        yield embedded
    finally:
        embedded.stop(kill=True)
