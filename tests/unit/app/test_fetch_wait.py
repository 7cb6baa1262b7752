"""The worker's consumer lets a broker hold a fetch `kafka.fetch_max_wait`, not faust's fixed 1.5 s: a
record on a partition left out of a held fetch waits that long (app/fetch_wait.py)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from app.faust_app import create_app
from core.settings import Settings


@pytest.mark.parametrize(("configured", "expected_ms"), [(None, 100), ("250ms", 250), ("2s", 2000)])
async def test_the_worker_consumer_holds_fetches_for_the_setting(configured: str | None, expected_ms: int) -> None:
    settings = Settings(kafka={"fetch_max_wait": configured} if configured else {})
    app = create_app(settings)
    consumer = app.consumer._thread._create_worker_consumer(app.transport)  # what faust starts
    try:
        assert consumer._fetch_max_wait_ms == expected_ms  # handed to aiokafka's fetcher at start
    finally:
        await consumer.stop()


@pytest.mark.parametrize("wait", ["10s", "0s"])
def test_a_fetch_wait_out_of_range_is_refused_by_name(wait: str) -> None:
    with pytest.raises(ValidationError, match=r"kafka\.fetch_max_wait"):
        Settings(kafka={"fetch_max_wait": wait})
