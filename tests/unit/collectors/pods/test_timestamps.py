"""Kubelet RFC3339Nano timestamps to nanoseconds and back."""

from __future__ import annotations

import pytest

from collectors.pods.timestamps import TimestampError, TimestampParser, format_rfc3339nano, format_since_time


def test_parses_trimmed_fractions_and_zones() -> None:
    parse = TimestampParser().parse
    assert parse(b"2025-06-10T08:25:41.63070246Z") == 1749543941_630702460
    assert parse(b"2025-06-10T08:25:41Z") == 1749543941_000000000
    assert parse(b"2025-06-10T08:25:41.5Z") == 1749543941_500000000
    assert parse(b"2025-06-10T10:25:41.000000001+02:00") == 1749543941_000000001
    assert parse(b"2025-06-10T08:25:41.1234567891Z") == 1749543941_123456789  # beyond ns: cut


def test_cached_second_does_not_leak_between_zones() -> None:
    parser = TimestampParser()
    assert parser.parse(b"2025-06-10T08:25:41.1Z") == 1749543941_100000000
    assert parser.parse(b"2025-06-10T08:25:41.2+01:00") == 1749540341_200000000


@pytest.mark.parametrize("bad", [b"", b"hello world", b"2025-06-10 08:25:41Z", b"2025-06-10T08:25:41.Z",
                                 b"2025-06-10T08:25:41+0200", b"2025-13-10T08:25:41Z"])
def test_rejects_what_is_not_rfc3339(bad: bytes) -> None:
    with pytest.raises(TimestampError):
        TimestampParser().parse(bad)


def test_format_round_trips_like_go() -> None:
    parse = TimestampParser().parse
    for ns in (1749543941_630702460, 1749543941_000000000, 1749543941_000000001, 1749543941_100000000):
        assert parse(format_rfc3339nano(ns).encode()) == ns
    assert format_rfc3339nano(1749543941_630702460) == "2025-06-10T08:25:41.63070246Z"
    assert format_rfc3339nano(1749543941_000000000) == "2025-06-10T08:25:41Z"
    assert format_since_time(1749543941_630702460) == "2025-06-10T08:25:41.630702Z"
