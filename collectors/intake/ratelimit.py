"""Per-token token buckets, counted in lines, so one tenant cannot starve the others.

A request of n lines passes when the bucket holds n tokens (or is full, for requests larger than
the bucket, which then goes negative and recovers at the refill rate); otherwise the caller answers
429 with Retry-After = the seconds until the bucket would hold enough.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable


class TokenBucket:
    __slots__ = ("_clock", "capacity", "rate", "stamp", "tokens")

    def __init__(self, rate: float, capacity: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self.capacity = max(capacity, 1.0)
        self.tokens = self.capacity
        self._clock = clock
        self.stamp = clock()

    def take(self, count: int) -> float:
        """Take `count` tokens and return 0, or take none and return the seconds to wait."""
        now = self._clock()
        self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        need = min(float(count), self.capacity)
        if self.tokens >= need:
            self.tokens -= count
            return 0.0
        return max((need - self.tokens) / self.rate, 0.001)


class RateLimiter:
    """Buckets keyed by credential (token digest); tenants without a rate are never limited."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._buckets: dict[str, TokenBucket] = {}
        self._clock = clock

    def check(self, key: str, rate: float, burst: int, count: int) -> int:
        """0 when `count` lines may pass now, else the whole seconds to put in Retry-After."""
        if rate <= 0:
            return 0
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = TokenBucket(rate, burst or rate, self._clock)
        wait = bucket.take(count)
        return math.ceil(wait) if wait else 0
