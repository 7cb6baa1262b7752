"""Retry timing and a circuit breaker for one sink: stop hammering a dead server.

Closed: writes flow. After `failures` consecutive failed attempts the breaker opens and writes
wait `reset` seconds; then one half-open probe decides between closed and open again. Kafka holds
the backlog meanwhile, so waiting loses nothing.
"""

from __future__ import annotations

import random
import time
from enum import IntEnum


class BreakerState(IntEnum):
    CLOSED = 0
    HALF_OPEN = 1
    OPEN = 2


def backoff_delay(attempt: int, initial: float, cap: float) -> float:
    """Exponential backoff with full jitter: uniform in [initial/2, min(cap, initial * 2**attempt)]."""
    ceiling = min(cap, initial * (2 ** min(attempt, 30)))
    return random.uniform(min(initial / 2, ceiling), ceiling)


class CircuitBreaker:
    """Counts consecutive failures of one sink and says how long to wait before the next try."""

    def __init__(self, failures: int, reset_seconds: float) -> None:
        self.failures_to_open = failures
        self.reset_seconds = reset_seconds
        self.consecutive_failures = 0
        self.opened_at: float | None = None
        self.state = BreakerState.CLOSED
        self.opened_count = 0

    def wait_seconds(self, now: float | None = None) -> float:
        """Seconds to wait before the next attempt (0 when closed or ready to probe)."""
        if self.state is not BreakerState.OPEN or self.opened_at is None:
            return 0.0
        now = time.monotonic() if now is None else now
        remaining = self.opened_at + self.reset_seconds - now
        if remaining <= 0:
            self.state = BreakerState.HALF_OPEN
            return 0.0
        return remaining

    def record_success(self) -> None:
        self.consecutive_failures = 0
        self.state = BreakerState.CLOSED
        self.opened_at = None

    def record_failure(self, now: float | None = None) -> None:
        self.consecutive_failures += 1
        if self.state is BreakerState.HALF_OPEN or self.consecutive_failures >= self.failures_to_open:
            if self.state is not BreakerState.OPEN:
                self.opened_count += 1
            self.state = BreakerState.OPEN
            self.opened_at = time.monotonic() if now is None else now
