"""Event times the sinks cannot hold are unparseable, not a crash: the line is dead-lettered as bad_time."""

from __future__ import annotations

import pytest

from core.timeparse import parse_event_time, parse_rfc3339_ns


@pytest.mark.parametrize(("value", "time_format"), [
    (1e300, "epoch_s"),                     # an infinite product used to raise OverflowError
    (1e300, "auto"),
    ("1e300", "epoch_ms"),
    (10**20, "epoch_s"),                    # past 2262
    ("0001-01-01T00:00:00Z", "rfc3339"),    # before 1677
    ("9999-12-31T23:59:59.999999999Z", "auto"),
])
def test_times_outside_int64_nanoseconds_are_unparseable(value: object, time_format: str) -> None:
    assert parse_event_time(value, time_format) is None


def test_out_of_range_seconds_are_not_cached_for_the_fast_path() -> None:
    assert parse_event_time("0001-01-01T00:00:00.5Z", "auto") is None
    assert parse_event_time("0001-01-01T00:00:00.5Z", "auto") is None  # same second again
    assert parse_rfc3339_ns("2262-04-11T23:47:16.854775807Z") == (1 << 63) - 1
    assert parse_event_time("2262-04-11T23:47:16.854775807Z", "auto") == (1 << 63) - 1
