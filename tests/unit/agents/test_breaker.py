"""The circuit breaker opens after N failures, probes half-open after the reset, closes on success."""

from __future__ import annotations

from agents.breaker import BreakerState, CircuitBreaker, backoff_delay


def test_open_half_open_closed_cycle() -> None:
    breaker = CircuitBreaker(failures=3, reset_seconds=10)
    for _ in range(2):
        breaker.record_failure(now=0)
    assert breaker.state is BreakerState.CLOSED and breaker.wait_seconds(now=0) == 0
    breaker.record_failure(now=0)
    assert breaker.state is BreakerState.OPEN and breaker.wait_seconds(now=4) == 6
    assert breaker.wait_seconds(now=10) == 0 and breaker.state is BreakerState.HALF_OPEN
    breaker.record_failure(now=10)
    assert breaker.state is BreakerState.OPEN and breaker.opened_count == 2
    assert breaker.wait_seconds(now=20) == 0
    breaker.record_success()
    assert breaker.state is BreakerState.CLOSED


def test_backoff_grows_with_jitter_and_cap() -> None:
    delays = [backoff_delay(a, 0.2, 5.0) for a in range(12)]
    assert all(0.1 <= d <= 5.0 for d in delays)
    assert max(backoff_delay(10, 0.2, 5.0) for _ in range(50)) > 2.5
