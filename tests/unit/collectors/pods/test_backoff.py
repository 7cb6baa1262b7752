"""Backoff: doubles to a cap, jittered within [d/2, d], reset by success."""

from __future__ import annotations

import random

from collectors.pods.backoff import Backoff


def test_doubles_with_jitter_up_to_the_cap_and_resets() -> None:
    backoff = Backoff(0.5, 8.0, random.Random(1))
    delays = [backoff.next_delay() for _ in range(8)]
    ceilings = [0.5, 1.0, 2.0, 4.0, 8.0, 8.0, 8.0, 8.0]
    assert all(c / 2 <= d <= c for d, c in zip(delays, ceilings, strict=True))
    backoff.reset()
    assert 0.25 <= backoff.next_delay() <= 0.5


def test_jitter_spreads_simultaneous_reconnects() -> None:
    rng = random.Random(3)
    delays = {round(Backoff(1.0, 30.0, rng).next_delay(), 6) for _ in range(100)}
    assert len(delays) > 90


def test_many_failures_do_not_overflow() -> None:
    backoff = Backoff(0.1, 5.0)
    backoff.failures = 10_000
    assert 2.5 <= backoff.next_delay() <= 5.0
